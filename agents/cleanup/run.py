"""One cleanup run: lock, delete expired records, sweep orphaned cache keys, record stats.

Every failure ends as one log line and a non-zero exit code (no traceback), so the
CronJob's backoffLimit retries the run; every step is safe to repeat, so a retry (or
the next hour's run) finishes whatever a failed or killed run left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict

from sqlalchemy.exc import DBAPIError

from agents.cleanup import records, stats
from agents.cleanup.lock import RunLock
from agents.cleanup.orphans import OrphanSweeper
from agents.cleanup.summary import RunSummary
from app.db import create_engine, ensure_schema, ping
from app.redis_client import create_redis
from app.settings import CleanupSettings

log = logging.getLogger("agents.cleanup")

EXIT_OK = 0
EXIT_FAILED = 1


class CleanupError(Exception):
    """A failure the job reports as its one error line."""


async def run_cleanup(settings: CleanupSettings, dry_run: bool = False) -> int:
    """Do one run and return the process exit code; prints the summary line on success."""
    started = time.monotonic()
    summary = RunSummary(dry_run=dry_run)
    client = create_redis(settings)
    engine = create_engine(settings)
    lock: RunLock | None = None
    try:
        try:
            async with asyncio.timeout(settings.cleanup_deadline_seconds) as deadline:
                if not dry_run:
                    # A dry run deletes nothing, so it neither needs the lock nor blocks
                    # the real run by holding it.
                    candidate = RunLock(client, settings.cleanup_lock_ttl_seconds)
                    async with _redis_errors(settings):
                        if await candidate.acquire():
                            lock = candidate
                        else:
                            holder = await candidate.holder()
                            log.info(
                                "cleanup already running, exiting",
                                extra={"lock_holder": holder},
                            )
                            print(summary.to_json("already_running"), flush=True)
                            return EXIT_OK
                await _clean(settings, engine, client, summary)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise CleanupError(
                f"deadline of {settings.cleanup_deadline_seconds:g}s "
                "(CLEANUP_DEADLINE_SECONDS) exceeded; the next run continues from here"
            ) from None
        summary.duration_seconds = time.monotonic() - started
        if not dry_run:
            async with _redis_errors(settings, "the run finished but its stats were not saved"):
                await stats.record_success(client, summary)
        print(summary.to_json("ok"), flush=True)
        log.info("cleanup finished", extra=asdict(summary))
        return EXIT_OK
    except Exception as exc:
        summary.duration_seconds = time.monotonic() - started
        message = str(exc) if isinstance(exc, CleanupError) else f"unexpected {_describe(exc)}"
        if lock is not None:
            try:
                await stats.record_failure(client, summary)
            except Exception:
                message += " (the failure could not be counted in Redis)"
        log.error(f"cleanup failed: {message}", extra=asdict(summary))
        log.debug("cleanup failure details", exc_info=exc)
        return EXIT_FAILED
    finally:
        if lock is not None:
            # Compare-and-delete: frees the lock now instead of at its expiry. If Redis
            # is gone this fails quietly and the expiry frees it instead.
            with contextlib.suppress(Exception):
                await lock.release()
        with contextlib.suppress(Exception):
            await client.aclose()
        with contextlib.suppress(Exception):
            await engine.dispose()


async def _clean(settings, engine, client, summary: RunSummary) -> None:
    now = time.time()  # one cut-off for the whole run, so the loops always end
    async with _database_errors(settings):
        await ping(engine, settings.db_timeout_seconds)
        # A fresh database (the API never started) is an empty one, not an error.
        await ensure_schema(engine)
        if summary.dry_run:
            summary.records_deleted = await records.count_expired(engine, now)
        else:
            await records.delete_expired(
                engine, now, settings.cleanup_batch_size, on_batch=_add_records(summary)
            )

    sweeper = OrphanSweeper(client, page_size=settings.cleanup_batch_size)
    async with _redis_errors(settings):
        await sweeper.sweep(summary.dry_run, on_page=_add_keys(summary))


def _add_records(summary: RunSummary):
    def add(deleted: int) -> None:
        summary.records_deleted += deleted

    return add


def _add_keys(summary: RunSummary):
    def add(scanned: int, deleted: int) -> None:
        summary.keys_scanned += scanned
        summary.keys_deleted += deleted

    return add


@contextlib.asynccontextmanager
async def _redis_errors(settings: CleanupSettings, context: str = "") -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        prefix = f"{context}: " if context else ""
        raise CleanupError(
            f"{prefix}redis unavailable at {settings.redis_host}:{settings.redis_port} "
            f"({_describe(exc)})"
        ) from exc


@contextlib.asynccontextmanager
async def _database_errors(settings: CleanupSettings) -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        raise CleanupError(
            f"database unavailable at {settings.database_url_redacted} ({_describe(exc)})"
        ) from exc


def _describe(exc: BaseException) -> str:
    """'Type: first line of the message', from the driver's own error when there is one."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
