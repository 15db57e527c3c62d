"""/api/v1/data: create/replace, read and delete records through the cache."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache, wraps
from typing import Any

from quart import Blueprint, Response, request
from quart_schema import document_response, validate_request, validate_response
from werkzeug.exceptions import NotFound, UnsupportedMediaType

from app.cache import CacheService
from app.errors import error_response
from app.models import KEY_RE, DataIn, DataOut, ErrorOut, RecordOut
from app.records import DatabaseUnavailable, Record
from app.responses import json_response
from app.state import get_state

blueprint = Blueprint("data", __name__, url_prefix="/api/v1")


@lru_cache(maxsize=4096)  # hot keys are read far more often than written
def rfc3339(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def record_body(record: Record, now: float) -> dict[str, Any]:
    return {
        "key": record.key,
        "value": record.value,
        "timestamp": rfc3339(record.updated_at),
        "ttl": record.ttl_seconds(now),
    }


def require_json(view: Any) -> Any:
    """415 before any parsing when the body is not declared as JSON."""

    @wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not request.is_json:
            raise UnsupportedMediaType("Content-Type must be application/json")
        return await view(*args, **kwargs)

    return wrapper


def available_cache() -> CacheService:
    """The cache service, or 503 while the database is not (yet) reachable."""
    state = get_state()
    if state.cache is None or not state.health.schema_ready or not state.health.database_up:
        raise DatabaseUnavailable("not ready")
    return state.cache


def checked_key(key: str) -> str | Response:
    if KEY_RE.match(key):
        return key
    return error_response(
        422,
        "validation_error",
        [{"field": "key", "message": "must be 1-256 characters of [A-Za-z0-9:_.-]"}],
    )


@blueprint.post("/data")
@require_json
@validate_request(DataIn)
@validate_response(RecordOut, 201)
@validate_response(RecordOut, 200)
@document_response(ErrorOut, 422)
async def put_record(data: DataIn) -> tuple[dict[str, Any], int]:
    """Create (201) or replace (200) a record; the cache is invalidated before the reply."""
    record, created = await available_cache().write(data.key, data.value, data.ttl)
    return record_body(record, time.time()), 201 if created else 200


@blueprint.get("/data/<key>")
@document_response(DataOut, 200)
@document_response(ErrorOut, 404)
async def get_record(key: str) -> Any:
    """Read a record: Redis first, then the database (which then fills Redis)."""
    problem = checked_key(key)
    if isinstance(problem, Response):
        return problem
    result = await available_cache().read(key)
    if result.record is None:
        raise NotFound(f"no record with key {key!r}")
    body = record_body(result.record, time.time())
    body["cached"] = result.cached
    return json_response(body)


@blueprint.delete("/data/<key>")
@document_response(ErrorOut, 404)
async def delete_record(key: str) -> Any:
    """Delete a record (204), or 404 when there is none."""
    problem = checked_key(key)
    if isinstance(problem, Response):
        return problem
    if not await available_cache().delete(key):
        raise NotFound(f"no record with key {key!r}")
    return "", 204
