"""Durable record store: every change commits together with its cache-outbox row.

The database is the source of truth; the outbox row lets every replica's reconciler
invalidate the cache even when the writer could not reach Redis (see app/cache.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import cache_outbox, records


class DatabaseUnavailable(Exception):
    """The database could not be reached (or did not answer) within the timeout."""


@dataclass(frozen=True, slots=True)
class Record:
    key: str
    value: str
    updated_at: float
    expires_at: float | None

    def is_live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now

    def ttl_seconds(self, now: float) -> int | None:
        """Remaining lifetime in whole seconds, rounded up (None: never expires)."""
        if self.expires_at is None:
            return None
        return max(0, math.ceil(self.expires_at - now))


class RecordRepository:
    """SQL access for records and the outbox, each call bounded by ``timeout_seconds``."""

    def __init__(self, engine: AsyncEngine, timeout_seconds: float) -> None:
        self.engine = engine
        self.timeout_seconds = timeout_seconds
        is_sqlite = engine.dialect.name == "sqlite"
        # Statements are built once: building them per call cost more CPU than running
        # them (SQLAlchemy then only looks up its compiled form). Values come as params.
        key = bindparam("record_key")
        self._read = select(records.c.value, records.c.updated_at, records.c.expires_at).where(
            records.c.key == key
        )
        self._insert_new = (sqlite.insert if is_sqlite else postgresql.insert)(
            records
        ).on_conflict_do_nothing()
        self._lock_previous = (
            select(records.c.expires_at).where(records.c.key == key).with_for_update()
        )
        self._replace = update(records).where(records.c.key == key)
        self._delete = delete(records).where(records.c.key == key).returning(records.c.expires_at)
        # SQLite has one database-wide write lock and waits for it by sleeping-and-polling
        # (busy_timeout); queueing our own writers in-process avoids those sleeps.
        self._write_turn = asyncio.Lock() if is_sqlite else contextlib.nullcontext()
        # Counted so tests and /health/detailed can see how often the DB is really read.
        self.reads = 0

    async def _run(self, operation: Any, *, write: bool) -> Any:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                if write:
                    async with self._write_turn, self.engine.begin() as conn:
                        return await operation(conn)
                async with self.engine.connect() as conn:
                    return await operation(conn)
        except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
            raise DatabaseUnavailable(type(exc).__name__) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise DatabaseUnavailable(type(exc).__name__) from exc
            raise

    async def get(self, key: str) -> Record | None:
        self.reads += 1

        async def read(conn: AsyncConnection) -> Record | None:
            row = (await conn.execute(self._read, {"record_key": key})).first()
            return None if row is None else Record(key, row[0], row[1], row[2])

        return await self._run(read, write=False)

    async def upsert(self, key: str, value: str, ttl: int | None) -> tuple[Record, bool, int]:
        """Store the record; returns it, whether it was created (False: replaced a live one),
        and the id of its cache_outbox row.

        Replacing an expired record counts as creating it: readers already saw it as missing.
        """

        async def write(conn: AsyncConnection) -> tuple[Record, bool, int]:
            now = time.time()
            record = Record(key, value, now, now + ttl if ttl else None)
            values = {
                "key": key,
                "value": value,
                "updated_at": now,
                "expires_at": record.expires_at,
            }
            while True:
                # The INSERT takes the row (PostgreSQL) or the database write lock (SQLite)
                # first, so the created-vs-replaced answer cannot race another writer.
                inserted = await conn.execute(self._insert_new, values)
                if inserted.rowcount == 1:
                    created = True
                    break
                previous = (await conn.execute(self._lock_previous, {"record_key": key})).first()
                if previous is None:  # deleted between the two statements: insert again
                    continue
                await conn.execute(self._replace, {"record_key": key, **values})
                created = previous[0] is not None and previous[0] <= now
                break
            return record, created, await _add_to_outbox(conn, key, now)

        return await self._run(write, write=True)

    async def delete(self, key: str) -> tuple[bool, int | None]:
        """Delete the record; returns whether a live record was deleted (an expired one is a
        404) and the id of its cache_outbox row (None when there was nothing to delete)."""

        async def write(conn: AsyncConnection) -> tuple[bool, int | None]:
            now = time.time()
            row = (await conn.execute(self._delete, {"record_key": key})).first()
            if row is None:
                return False, None
            outbox_id = await _add_to_outbox(conn, key, now)
            return row[0] is None or row[0] > now, outbox_id

        return await self._run(write, write=True)

    async def pending_invalidations(self, limit: int) -> list[tuple[int, str]]:
        """Outbox rows (id, key), oldest first."""

        async def read(conn: AsyncConnection) -> list[tuple[int, str]]:
            result = await conn.execute(
                select(cache_outbox.c.id, cache_outbox.c.key)
                .order_by(cache_outbox.c.id)
                .limit(limit)
            )
            return [(row[0], row[1]) for row in result]

        return await self._run(read, write=False)

    async def forget_invalidations(self, ids: list[int]) -> None:
        async def write(conn: AsyncConnection) -> None:
            await conn.execute(delete(cache_outbox).where(cache_outbox.c.id.in_(ids)))

        await self._run(write, write=True)


_ADD_TO_OUTBOX = cache_outbox.insert().returning(cache_outbox.c.id)


async def _add_to_outbox(conn: AsyncConnection, key: str, now: float) -> int:
    """The invalidation row, in the caller's transaction; returns its id."""
    result = await conn.execute(_ADD_TO_OUTBOX, {"key": key, "created_at": now})
    return result.scalar_one()
