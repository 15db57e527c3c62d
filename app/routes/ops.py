"""Operator endpoints: a real cache round trip with service-wide stats, and the config."""

from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import validate_response

from app import SERVICE_NAME, __version__
from app.models import CacheTestOut, ConfigOut
from app.state import get_state

blueprint = Blueprint("ops", __name__, url_prefix="/api/v1")


@blueprint.get("/cache/test")
@validate_response(CacheTestOut)
async def cache_test() -> dict[str, Any]:
    """SET+GET+DEL of a probe key, plus hit rate and totals of all replicas together."""
    state = get_state()
    body: dict[str, Any] = {
        "redis_connected": False,
        "cache_trusted": False,
        "cache_hit_rate": 0.0,
        "total_requests": 0,
        "hits": 0,
        "misses": 0,
        "round_trip_ms": None,
    }
    if state.cache is None:
        body["error"] = "starting"
        return body
    try:
        body["round_trip_ms"] = round(await state.cache.round_trip_ms(), 3)
        stats = await state.cache.service_stats()
        trusted = await state.cache.is_trusted()
        info = await state.cache.info()
    except Exception as exc:
        state.health.redis_connected = False
        body["error"] = type(exc).__name__
        return body
    state.health.redis_connected = True
    total = stats["hits"] + stats["misses"]
    body.update(
        redis_connected=True,
        cache_trusted=trusted,
        hits=stats["hits"],
        misses=stats["misses"],
        total_requests=total,
        cache_hit_rate=round(stats["hits"] / total, 6) if total else 0.0,
        redis_version=info.get("redis_version"),
        redis_memory_used_bytes=info.get("used_memory"),
        redis_connected_clients=info.get("connected_clients"),
    )
    return body


@blueprint.get("/config")
@validate_response(ConfigOut)
async def config() -> dict[str, Any]:
    """The effective configuration without secrets (no password, no credentials in URLs)."""
    s = get_state().settings
    return {
        "app_env": s.app_env,
        "version": __version__,
        "service": SERVICE_NAME,
        "redis_host": s.redis_host,
        "redis_port": s.redis_port,
        "redis_db": s.redis_db,
        "redis_timeout_seconds": s.redis_timeout_seconds,
        "database_backend": s.database_backend,
        "database_url": s.database_url_redacted,
        "db_pool_size": s.db_pool_size,
        "db_max_overflow": s.db_max_overflow,
        "db_pool_recycle_seconds": s.db_pool_recycle_seconds,
        "db_timeout_seconds": s.db_timeout_seconds,
        "cache_ttl_seconds": s.cache_ttl_seconds,
        "cache_trust_lease_seconds": s.cache_trust_lease_seconds,
        "max_value_bytes": s.max_value_bytes,
        "log_level": s.log_level,
        "log_format": s.log_format,
        "host": s.host,
        "port": s.port,
        "shutdown_grace_seconds": s.shutdown_grace_seconds,
    }
