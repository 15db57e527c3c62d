"""records.delete_expired against the real databases: batching and the write race."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text, update

from agents.cleanup import records as cleanup_records
from app.db import create_engine, records
from app.settings import CleanupSettings
from tests.agents.cleanup.helpers import seed_records, stored_record_keys


async def test_deletes_in_batches_of_at_most_batch_size(database_url):
    now = time.time()
    await seed_records(
        database_url,
        [{"key": f"old-{i}", "expires_at": now - i} for i in range(23)]
        + [{"key": "exactly-now", "expires_at": now}, {"key": "never", "expires_at": None}]
        + [{"key": "later", "expires_at": now + 0.5}],
    )
    engine = create_engine(CleanupSettings(database_url=database_url))
    batches: list[int] = []
    try:
        total = await cleanup_records.delete_expired(engine, now, 5, on_batch=batches.append)
        assert await cleanup_records.count_expired(engine, now) == 0
    finally:
        await engine.dispose()

    assert total == 24  # expires_at <= now, including exactly now
    assert batches == [5, 5, 5, 5, 4]
    assert await stored_record_keys(database_url) == {"never", "later"}


async def test_record_given_a_new_expiry_during_the_delete_is_kept(postgres_url):
    """PostgreSQL only: SQLite serialises writers, so this interleaving cannot happen there.

    A writer holds the row lock while it gives an expired record a new expiry; the
    cleanup's DELETE picked the row's old (expired) version and waits for the lock. When
    the writer commits, the DELETE must re-check the expiry and keep the row.
    """
    now = time.time()
    await seed_records(postgres_url, [{"key": "k", "expires_at": now - 10}])
    engine = create_engine(CleanupSettings(database_url=postgres_url))
    try:
        async with engine.connect() as writer:
            await writer.execute(
                update(records).where(records.c.key == "k").values(expires_at=now + 3600)
            )
            deleting = asyncio.create_task(
                cleanup_records.delete_expired(engine, now, 10, on_batch=lambda _n: None)
            )
            await _wait_for_lock_wait(engine)
            await writer.commit()
        assert await asyncio.wait_for(deleting, 10) == 0
    finally:
        await engine.dispose()
    assert await stored_record_keys(postgres_url) == {"k"}


async def _wait_for_lock_wait(engine) -> None:
    """Until some session of this database is blocked on a row lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        async with engine.connect() as conn:
            if await conn.scalar(query):
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the cleanup's DELETE never waited for the writer's row lock")
