"""Redis connection shared by the API and the agents, and the key names they agree on."""

from __future__ import annotations

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.settings import CommonSettings

KEY_PREFIX = "cnj:"
CACHE_KEY_PREFIX = f"{KEY_PREFIX}cache:"  # one cache entry per record key
FILL_TOKEN_PREFIX = f"{KEY_PREFIX}fill:"  # read-miss fill leases (stale-fill guard)
INVALIDATED_PREFIX = f"{KEY_PREFIX}invalidated:"  # outbox rows their writer invalidated
CACHE_TRUST_KEY = f"{KEY_PREFIX}cache-trust"  # present only while the cache may be trusted
STATS_KEY = f"{KEY_PREFIX}stats"  # service-wide cache hit/miss counters (hash)
CLEANUP_STATS_KEY = f"{KEY_PREFIX}cleanup:stats"  # cleanup job counters (hash)
CLEANUP_LOCK_KEY = f"{KEY_PREFIX}cleanup:lock"


def cache_key(record_key: str) -> str:
    return CACHE_KEY_PREFIX + record_key


def fill_token_key(record_key: str) -> str:
    return FILL_TOKEN_PREFIX + record_key


def invalidated_key(outbox_id: int) -> str:
    return f"{INVALIDATED_PREFIX}{outbox_id}"


def create_redis(settings: CommonSettings) -> redis.Redis:
    """A pooled client whose every call is bounded by ``redis_timeout_seconds``.

    Automatic retries are off: a failed call must surface, so the caller can fall back
    to the database and mark the cache untrusted instead of hiding an outage. For the
    same reason there is no ``health_check_interval``: without retries its PING only
    moves the failure of a dead socket to the PING, and it costs every command a clock
    check (the caller drops idle sockets itself after a failure).
    """
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=password,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(NoBackoff(), 0),
        max_connections=settings.redis_max_connections,
        client_name="cloudnative-journey",
        decode_responses=True,
    )
