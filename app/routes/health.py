"""Probes and metrics: liveness, readiness, detailed health, Prometheus text."""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import socket
import time
from datetime import UTC, datetime
from typing import Any

import psutil
from quart import Blueprint, Response, request
from quart_schema import document_response, hide

from app import SERVICE_NAME, __version__
from app.db import ping, pool_stats
from app.models import DetailedHealthOut, HealthOut, ReadyOut
from app.responses import json_response
from app.state import AppState, get_state

blueprint = Blueprint("health", __name__)

READY_PING_TIMEOUT_SECONDS = 2.0
_process = psutil.Process(os.getpid())


def base_body(state: AppState, status: str) -> dict[str, Any]:
    return {
        "status": status,
        "service": SERVICE_NAME,
        "version": __version__,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "uptime": state.uptime_seconds,
    }


@blueprint.get("/health")
@blueprint.get("/health/live")
@document_response(HealthOut)
async def live() -> Response:
    """Liveness: the process answers. No dependency is checked (a DB outage is not fixed
    by restarting the pod)."""
    return json_response(base_body(get_state(), "healthy"))


async def database_check(state: AppState) -> dict[str, Any]:
    if state.engine is None or not state.health.schema_ready:
        return {"up": False, "error": "not connected yet"}
    started = time.perf_counter()
    timeout = min(state.settings.db_timeout_seconds, READY_PING_TIMEOUT_SECONDS)
    try:
        await ping(state.engine, timeout)
    except Exception as exc:
        state.health.database_up = False
        return {"up": False, "error": type(exc).__name__}
    state.health.database_up = True
    return {"up": True, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


async def redis_check(state: AppState) -> dict[str, Any]:
    if state.redis is None:
        return {"connected": False, "error": "not configured"}
    started = time.perf_counter()
    try:
        await state.redis.ping()
    except Exception as exc:
        state.health.redis_connected = False
        return {"connected": False, "error": type(exc).__name__}
    state.health.redis_connected = True
    return {"connected": True, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


@blueprint.get("/ready")
@blueprint.get("/health/ready")
@document_response(ReadyOut, 200)
@document_response(ReadyOut, 503)
async def ready() -> Response:
    """Readiness: 200 when the database answers and the schema exists; 503 from the first
    moment of shutdown. Redis is reported but a cache outage keeps the pod ready."""
    state = get_state()
    if state.shutting_down:
        body = base_body(state, "shutting_down")
        body["checks"] = {"shutting_down": True}
        return json_response(body, 503)
    database, cache = await asyncio.gather(database_check(state), redis_check(state))
    ok = database["up"]
    body = base_body(state, "ready" if ok else "not_ready")
    body["checks"] = {"database": database, "redis": cache}
    return json_response(body, 200 if ok else 503)


@blueprint.get("/health/detailed")
@document_response(DetailedHealthOut)
async def detailed() -> Response:
    """Everything an operator wants on one page."""
    state = get_state()
    database, cache = await asyncio.gather(database_check(state), redis_check(state))
    if state.engine is not None:
        database["pool"] = pool_stats(state.engine)
        database["backend"] = state.settings.database_backend
    if state.repository is not None:
        database["reads"] = state.repository.reads
    memory = _process.memory_info()
    healthy = database["up"] and not state.shutting_down
    body = base_body(state, "healthy" if healthy else "degraded")
    body.update(
        database=database,
        redis=cache,
        memory={"rss_bytes": memory.rss, "vms_bytes": memory.vms},
        gc={
            "frozen_objects": gc.get_freeze_count(),
            "thresholds": gc.get_threshold(),
            "generations": gc.get_stats(),
        },
        tasks=len(asyncio.all_tasks()),
        python_version=platform.python_version(),
        hostname=socket.gethostname(),
    )
    return json_response(body)


@blueprint.get("/metrics")
@hide
async def metrics() -> Response:
    state = get_state()
    content, headers = await state.metrics.render(state, request.headers.getlist("Accept"))
    return Response(content, headers=headers)
