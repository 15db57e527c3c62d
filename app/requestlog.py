"""Per-request bookkeeping as ASGI middleware: request id, one access-log line, HTTP metrics.

Middleware rather than Quart before/after-request hooks: the hooks' dispatch cost more
CPU per request than everything they did (measured with bench/api_bench.py). The route
template is handed over by the request class (``RouteRecordingRequest``) through the
ASGI scope, the status and the ``X-Request-ID`` header through the ``send`` channel.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

from quart import Quart, Request

from app.metrics import UNMATCHED_ROUTE, Metrics

log = logging.getLogger("app.access")

REQUEST_ID_HEADER = "X-Request-ID"
ROUTE_SCOPE_KEY = "cloudnative_journey.route"
REQUEST_ID_SCOPE_KEY = "cloudnative_journey.request_id"
_REQUEST_ID_RAW = REQUEST_ID_HEADER.lower().encode()
# Accept a caller's id only if it is short and plain: it ends up in every log line.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _RecordRouteOnSet:
    """Write-only descriptor: ``__set__`` without ``__get__`` lets reads of the attribute
    come straight from the instance ``__dict__`` at C speed; Quart reads ``url_rule``
    several times per request (endpoint, blueprint lookups) and sets it once."""

    def __set__(self, request: Request, rule: Any) -> None:
        request.__dict__["url_rule"] = rule
        if rule is not None:
            request.scope[ROUTE_SCOPE_KEY] = rule.rule


class RouteRecordingRequest(Request):
    """Copies the matched route template into the ASGI scope for the middleware."""

    url_rule = _RecordRouteOnSet()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Unmatched requests never set it; reads must then find None, not the descriptor.
        self.__dict__["url_rule"] = None


def incoming_request_id(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_RAW:
            candidate = value.decode("latin-1")
            return candidate if _SAFE_REQUEST_ID.match(candidate) else None
    return None


class RequestTelemetry:
    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # A correlation id, not a secret: Mersenne Twister bits, no syscall per request.
        request_id = incoming_request_id(scope) or f"{random.getrandbits(128):032x}"
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        header = (_REQUEST_ID_RAW, request_id.encode("latin-1"))
        status = 500

        async def send_with_request_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            duration = time.perf_counter() - started
            method = scope["method"]
            route = scope.get(ROUTE_SCOPE_KEY, UNMATCHED_ROUTE)
            self.metrics.observe_request(method, route, status, duration)
            log.info(
                "%s %s %s",
                method,
                route,
                status,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 3),
                    "request_id": request_id,
                },
            )


def register_request_telemetry(app: Quart, metrics: Metrics) -> None:
    app.asgi_app = RequestTelemetry(app.asgi_app, metrics)  # type: ignore[method-assign]
