"""Application factory: wires settings, dependencies, blueprints and lifecycle hooks."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from quart import Quart, Response
from quart_schema import Info, QuartSchema

from app import SERVICE_NAME, __version__
from app.cache import CacheService, cancel_and_wait
from app.db import create_engine, wait_until_ready
from app.errors import register_error_handlers
from app.records import RecordRepository
from app.redis_client import create_redis
from app.requestlog import register_request_telemetry
from app.routes import data, health, ops
from app.settings import ApiSettings
from app.state import STATE_EXTENSION, AppState

log = logging.getLogger(__name__)

# JSON framing around the value: key, field names, escaping slack for typical text.
# Values needing heavy escaping (control characters) may hit 413 before 422.
BODY_OVERHEAD_BYTES = 64 * 1024


def create_app(settings: ApiSettings) -> Quart:
    app = Quart(SERVICE_NAME)
    app.config.update(
        MAX_VALUE_BYTES=settings.max_value_bytes,
        MAX_CONTENT_LENGTH=2 * settings.max_value_bytes + BODY_OVERHEAD_BYTES,
        BODY_TIMEOUT=max(10, int(settings.db_timeout_seconds * 4)),
        PROPAGATE_EXCEPTIONS=False,  # the 500 handler answers JSON even in tests
        QUART_SCHEMA_CONVERSION_PREFERENCE="pydantic",
    )
    QuartSchema(
        app,
        info=Info(title="cloudnative-journey API", version=__version__),
        openapi_path="/openapi.json",
        swagger_ui_path="/docs",
        redoc_ui_path=None,
        scalar_ui_path=None,
    )
    _pass_responses_through(app)
    state = AppState(settings=settings)
    app.extensions[STATE_EXTENSION] = state

    register_error_handlers(app)
    register_request_telemetry(app, state.metrics)
    for module in (data, health, ops):
        app.register_blueprint(module.blueprint)

    @app.before_serving
    async def start_dependencies() -> None:
        await start(state)

    @app.after_serving
    async def stop_dependencies() -> None:
        await stop(state)

    return app


def _pass_responses_through(app: Quart) -> None:
    """Finished ``Response`` objects (the hot paths build their own with orjson) skip
    quart-schema's return-value conversion, which only matters for models and dicts."""
    converting = app.make_response
    plain = partial(Quart.make_response, app)

    async def make_response(result: Any) -> Any:
        if isinstance(result, Response):
            return await plain(result)
        return await converting(result)

    app.make_response = make_response  # type: ignore[method-assign]


async def start(state: AppState) -> None:
    """Create clients without touching the network: serving must not wait for dependencies."""
    settings = state.settings
    state.engine = create_engine(settings)
    state.redis = create_redis(settings)
    state.repository = RecordRepository(state.engine, settings.db_timeout_seconds)
    state.cache = CacheService(
        state.redis,
        state.repository,
        state.health,
        cache_ttl_seconds=settings.cache_ttl_seconds,
        trust_lease_seconds=settings.cache_trust_lease_seconds,
        fill_deadline_seconds=2 * settings.db_timeout_seconds,
        observe=state.metrics.observe_cache_operation,
    )
    state.tasks = [
        asyncio.create_task(_connect_database(state), name="connect-database"),
        asyncio.create_task(state.cache.run_reconciler(), name="cache-reconciler"),
    ]
    log.info(
        "starting",
        extra={
            "app_env": settings.app_env,
            "database": settings.database_url_redacted,
            "redis": f"{settings.redis_host}:{settings.redis_port}",
        },
    )


async def _connect_database(state: AppState) -> None:
    assert state.engine is not None
    await wait_until_ready(state.engine, state.settings.db_timeout_seconds)
    state.health.schema_ready = True
    state.health.database_up = True
    log.info("database ready", extra={"backend": state.settings.database_backend})


async def stop(state: AppState) -> None:
    state.shutting_down = True
    for task in state.tasks:
        await cancel_and_wait(task)
    if state.redis is not None:
        await state.redis.aclose()
    if state.engine is not None:
        await state.engine.dispose()
    log.info("stopped")
