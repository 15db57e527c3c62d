"""JSON responses encoded with orjson and handed to Quart as finished ``Response`` objects.

Returning a dict makes quart-schema build a pydantic TypeAdapter for every response;
on the hot paths (GET data, probes, errors) that cost more than the Redis round trip.
"""

from __future__ import annotations

from typing import Any

import orjson
from quart import Response


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")
