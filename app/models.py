"""Request and response bodies of the HTTP API (pydantic; validated by quart-schema)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from quart import current_app, has_app_context

KEY_PATTERN = r"^[A-Za-z0-9:_.-]{1,256}$"
KEY_RE = re.compile(KEY_PATTERN)
MAX_TTL_SECONDS = 30 * 24 * 3600
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

RecordKey = Annotated[str, StringConstraints(strict=True, pattern=KEY_PATTERN)]


def max_value_bytes() -> int:
    """The value size limit of the running app (MAX_VALUE_BYTES), read per validation."""
    if has_app_context():
        return int(current_app.config.get("MAX_VALUE_BYTES", DEFAULT_MAX_VALUE_BYTES))
    return DEFAULT_MAX_VALUE_BYTES


class DataIn(BaseModel):
    """POST /api/v1/data body."""

    model_config = ConfigDict(extra="forbid")

    key: RecordKey = Field(description="1-256 characters of [A-Za-z0-9:_.-]", examples=["user:123"])
    value: str = Field(
        strict=True, description="UTF-8 text up to MAX_VALUE_BYTES bytes", examples=["John Doe"]
    )
    ttl: int | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=MAX_TTL_SECONDS,
        description="lifetime in seconds (absent or null: never expires)",
        examples=[3600],
    )

    @field_validator("value")
    @classmethod
    def _value_within_limit(cls, value: str) -> str:
        limit = max_value_bytes()
        # A str of n code points is at most 4n UTF-8 bytes: skip encoding short values.
        if len(value) * 4 > limit:
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > limit:
                raise ValueError(
                    f"value is {size} bytes in UTF-8, more than MAX_VALUE_BYTES={limit}"
                )
        return value


class RecordOut(BaseModel):
    """The stored record, as returned by POST."""

    key: str
    value: str
    timestamp: str = Field(description="RFC 3339 UTC time of the write")
    ttl: int | None = Field(description="remaining lifetime in whole seconds, or null")


class DataOut(RecordOut):
    """GET /api/v1/data/<key>."""

    cached: bool = Field(description="true when served from Redis, false when read from the DB")


class ErrorOut(BaseModel):
    error: str = Field(examples=["not_found"])
    detail: Any = Field(description="human-readable text, or a list of field problems")


class HealthOut(BaseModel):
    status: str = Field(examples=["healthy"])
    service: str
    version: str
    timestamp: str
    uptime: float = Field(description="seconds since the process started")


class ReadyOut(HealthOut):
    checks: dict[str, Any]


class DetailedHealthOut(HealthOut):
    database: dict[str, Any]
    redis: dict[str, Any]
    memory: dict[str, Any]
    gc: dict[str, Any] = Field(
        description="garbage collector: objects frozen at start-up (app/__main__.py), "
        "thresholds, collections and uncollectable objects per generation"
    )
    tasks: int
    python_version: str
    hostname: str


class CacheTestOut(BaseModel):
    redis_connected: bool
    cache_trusted: bool = Field(
        description="reads are served from the cache (false for about a second after a "
        "Redis outage, until the outbox is drained; see docs/cache-consistency.md)"
    )
    cache_hit_rate: float = Field(description="hits / (hits + misses), all replicas together")
    total_requests: int = Field(description="cache lookups by all replicas")
    hits: int
    misses: int
    round_trip_ms: float | None
    redis_version: str | None = None
    redis_memory_used_bytes: int | None = None
    redis_connected_clients: int | None = None
    error: str | None = None


class ConfigOut(BaseModel):
    app_env: str
    version: str
    service: str
    redis_host: str
    redis_port: int
    redis_db: int
    redis_timeout_seconds: float
    database_backend: str
    database_url: str = Field(description="with any password masked")
    db_pool_size: int
    db_max_overflow: int
    db_pool_recycle_seconds: int
    db_timeout_seconds: float
    cache_ttl_seconds: int
    cache_trust_lease_seconds: float
    max_value_bytes: int
    log_level: str
    log_format: str
    host: str
    port: int
    shutdown_grace_seconds: float
