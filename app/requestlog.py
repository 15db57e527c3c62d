"""Per-request bookkeeping: request id, one access-log line, and the HTTP metrics."""

from __future__ import annotations

import logging
import os
import re
import time

from quart import Quart, Response, g, request

from app.metrics import UNMATCHED_ROUTE
from app.state import get_state

log = logging.getLogger("app.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RAW = REQUEST_ID_HEADER.lower().encode()
# Accept a caller's id only if it is short and plain: it ends up in every log line.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def register_request_hooks(app: Quart) -> None:
    @app.before_request
    async def start_request() -> None:
        g.started = time.perf_counter()
        g.request_id = _incoming_request_id() or os.urandom(16).hex()

    @app.after_request
    async def finish_request(response: Response) -> Response:
        started = g.get("started")
        duration = time.perf_counter() - started if started is not None else 0.0
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED_ROUTE
        status = response.status_code
        get_state().metrics.observe_request(request.method, route, status, duration)
        request_id = g.get("request_id") or os.urandom(16).hex()
        response.headers[REQUEST_ID_HEADER] = request_id
        log.info(
            "%s %s %s",
            request.method,
            route,
            status,
            extra={
                "method": request.method,
                "route": route,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
                "request_id": request_id,
            },
        )
        return response


def _incoming_request_id() -> str | None:
    # Scans the raw ASGI headers: werkzeug's Headers.get raises and catches an
    # exception for every absent header, which is measurable on the hot path.
    for name, value in request.scope["headers"]:
        if name == _REQUEST_ID_RAW:
            candidate = value.decode("latin-1")
            return candidate if _SAFE_REQUEST_ID.match(candidate) else None
    return None
