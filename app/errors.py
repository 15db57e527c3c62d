"""Every error leaves as JSON ``{"error": ..., "detail": ...}``: no HTML, no traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import BadRequest, HTTPException

from app.records import DatabaseUnavailable
from app.requestlog import RouteRecordingRequest
from app.responses import json_response
from app.state import get_state

log = logging.getLogger(__name__)


class MalformedJson(BadRequest):
    pass


class JsonRequest(RouteRecordingRequest):
    """Request whose JSON decoding failure says what is wrong (position, not the body)."""

    def on_json_loading_failed(self, error: Exception) -> Any:
        if isinstance(error, json.JSONDecodeError):
            raise MalformedJson(f"malformed JSON body: {error.msg} at position {error.pos}")
        raise MalformedJson("malformed JSON body")


def error_response(status: int, error: str, detail: Any, headers: Any = None) -> Response:
    response = json_response({"error": error, "detail": detail}, status)
    if headers:
        for name, value in headers:
            if name.lower() != "content-type":
                response.headers[name] = value
    return response


def field_problems(exc: Exception) -> list[dict[str, str]] | str:
    """Name the offending fields, never echo the rejected input (it may be huge or secret)."""
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            location = ".".join(str(part) for part in error["loc"]) or "body"
            problems.append({"field": location, "message": error["msg"]})
        return problems
    return "request body must be a JSON object"


def register_error_handlers(app: Quart) -> None:
    app.request_class = JsonRequest

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_violation(exc: RequestSchemaValidationError) -> Response:
        return error_response(422, "validation_error", field_problems(exc.validation_error))

    @app.errorhandler(MalformedJson)
    async def malformed_json(exc: MalformedJson) -> Response:
        return error_response(400, "malformed_json", exc.description)

    @app.errorhandler(DatabaseUnavailable)
    async def database_unavailable(exc: DatabaseUnavailable) -> Response:
        get_state().health.database_up = False
        log.warning("database unavailable", extra={"error": str(exc)})
        response = error_response(
            503, "database_unavailable", "the database is unavailable; retry later"
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        return error_response(code, name, exc.description, exc.get_headers())

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
