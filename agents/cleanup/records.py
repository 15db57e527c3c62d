"""Delete expired records from the database in small batches.

Each batch is its own short transaction, so the job never holds locks on many rows at
once and a run killed halfway has committed whole batches only: the next run simply
continues. Deleting an expired record needs no cache invalidation (no outbox row): the
API already treats a record with ``expires_at <= now`` as missing, and its cache entry
never outlives ``expires_at``, so the delete changes nothing a reader can observe.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import records


def _expired(now: float):
    # NULL expires_at (never expires) is excluded by the comparison itself.
    return records.c.expires_at <= now


async def count_expired(engine: AsyncEngine, now: float) -> int:
    """How many records a real run would delete (used by --dry-run)."""
    async with engine.connect() as conn:
        return int(
            await conn.scalar(select(func.count()).select_from(records).where(_expired(now)))
        )


async def delete_expired(
    engine: AsyncEngine,
    now: float,
    batch_size: int,
    on_batch: Callable[[int], None],
) -> int:
    """Delete every record that had expired at ``now``; return how many were deleted.

    ``now`` is fixed for the whole run so the loop ends even while records keep expiring.
    ``on_batch`` is told each committed batch's count, so progress survives a failure.
    """
    batch = select(records.c.key).where(_expired(now)).limit(batch_size)
    # The expiry is checked again on the rows being deleted: on PostgreSQL a row that a
    # concurrent writer just gave a new expiry is re-evaluated against its new version
    # and kept, even though the subquery had picked its old, expired version.
    statement = delete(records).where(records.c.key.in_(batch), _expired(now))
    total = 0
    while True:
        async with engine.begin() as conn:
            deleted = (await conn.execute(statement)).rowcount
        if deleted <= 0:
            return total
        total += deleted
        on_batch(deleted)
