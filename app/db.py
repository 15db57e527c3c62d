"""The durable store: SQLAlchemy async engine, schema, and start-up helpers.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) is used in the cluster.
Times are stored as float Unix seconds so both backends compare them the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import CommonSettings

log = logging.getLogger(__name__)

KEY_MAX_LENGTH = 256
# Arbitrary constant shared by every replica: serialises schema creation on PostgreSQL.
SCHEMA_LOCK_ID = 0x636E_6A01

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("key", String(KEY_MAX_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("expires_at", Double, nullable=True),
    Index("ix_records_expires_at", "expires_at"),
)

# Transactional outbox of cache invalidations: a row is written in the same transaction
# as every record write, so a cache entry can never outlive a committed change unnoticed
# (see app/cache.py for how readers use it).
cache_outbox = Table(
    "cache_outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("key", String(KEY_MAX_LENGTH), nullable=False),
    Column("created_at", Double, nullable=False),
)


def create_engine(settings: CommonSettings) -> AsyncEngine:
    url = make_url(settings.database_url.get_secret_value())
    timeout = settings.db_timeout_seconds
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            connect_args={"timeout": timeout},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_recycle=settings.db_pool_recycle_seconds,
            # No pre-ping: a file has no connection that can go stale, and each ping
            # cost every checkout four hops to aiosqlite's thread (bench/api_bench.py).
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # WAL lets readers proceed during a write; busy_timeout makes writers queue
            # instead of failing with "database is locked".
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_pre_ping=True,
        pool_timeout=timeout,
        connect_args={
            "timeout": timeout,
            "command_timeout": timeout,
            "server_settings": {"application_name": "cloudnative-journey"},
        },
    )


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create missing tables; safe when several replicas start at the same moment."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide in pg_type;
            # a transaction-scoped advisory lock makes the replicas take turns.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})
        await conn.run_sync(metadata.create_all, checkfirst=True)


async def ping(engine: AsyncEngine, timeout_seconds: float) -> None:
    """One round trip to the database, bounded by ``timeout_seconds``; raises on failure."""
    async with asyncio.timeout(timeout_seconds), engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def wait_until_ready(
    engine: AsyncEngine, timeout_seconds: float, give_up_after: float | None = None
) -> None:
    """Retry ping + schema creation with capped exponential backoff.

    Kubernetes starts every pod at once, so the database may come up after us.
    ``give_up_after=None`` retries forever (the API keeps retrying in the background).
    """
    delay, started = 0.2, time.monotonic()
    while True:
        try:
            await ping(engine, timeout_seconds)
            await ensure_schema(engine)
            return
        except Exception as exc:
            waited = time.monotonic() - started
            if give_up_after is not None and waited >= give_up_after:
                raise
            log.warning(
                "database not ready, retrying",
                extra={"error": type(exc).__name__, "retry_in_seconds": round(delay, 2)},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def pool_stats(engine: AsyncEngine) -> dict[str, object]:
    pool = engine.pool
    stats: dict[str, object] = {"pool_class": type(pool).__name__}
    for name in ("size", "checkedin", "checkedout", "overflow"):
        method = getattr(pool, name, None)
        if callable(method):
            stats[name] = method()
    return stats
