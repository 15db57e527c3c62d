"""One cleanup run: lock, delete expired records, sweep orphaned cache keys, record stats.

Every failure ends as one log line and a non-zero exit code (no traceback), so the
CronJob's backoffLimit retries the run; every step is safe to repeat, so a retry (or
the next hour's run) finishes whatever a failed or killed run left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import asdict

import redis.asyncio as redis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

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


class DeadlineExceeded(CleanupError):
    pass


STOPPED_BY_SIGTERM = "stopped by SIGTERM; the next run continues from here"
# A call still in flight this long after SIGTERM is cancelled outright.
SIGTERM_CANCEL_AFTER_SECONDS = 2.0


class _Progress:
    """Counts each committed batch into the summary, then enforces the deadline.

    Stopping between batches (instead of cancelling one in flight) keeps the counts
    exact: a cancelled command may have run on the server without us seeing its reply.
    """

    def __init__(
        self,
        summary: RunSummary,
        settings: CleanupSettings,
        started: float,
        stopping: asyncio.Event,
    ):
        self.summary = summary
        self.stopping = stopping
        self._deadline_seconds = settings.cleanup_deadline_seconds
        self._stop_at = started + settings.cleanup_deadline_seconds

    def records_batch(self, deleted: int) -> None:
        self.summary.records_deleted += deleted
        self.check_deadline()

    def keys_page(self, scanned: int, deleted: int) -> None:
        self.summary.keys_scanned += scanned
        self.summary.keys_deleted += deleted
        self.check_deadline()

    def check_deadline(self) -> None:
        if self.stopping.is_set():
            raise CleanupError(STOPPED_BY_SIGTERM)
        if time.monotonic() >= self._stop_at:
            raise self.exceeded()

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"deadline of {self._deadline_seconds:g}s (CLEANUP_DEADLINE_SECONDS) exceeded; "
            "the next run continues from here"
        )


async def run_cleanup(settings: CleanupSettings, dry_run: bool = False) -> int:
    """Do one run and return the process exit code; prints the summary line on success."""
    started = time.monotonic()
    summary = RunSummary(dry_run=dry_run)
    client = create_redis(settings)  # connects lazily: a down Redis fails its first call
    engine: AsyncEngine | None = None
    lock: RunLock | None = None
    stopping = _stop_on_sigterm()
    progress = _Progress(summary, settings, started, stopping)
    # Backstop for a call that hangs past the deadline: every call is bounded by its
    # client's timeout, so this only fires if something is badly wrong.
    hard_limit = settings.cleanup_deadline_seconds + max(
        settings.redis_timeout_seconds, settings.db_timeout_seconds
    )
    try:
        try:
            async with asyncio.timeout(hard_limit) as deadline:
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
                async with _database_errors(settings):
                    engine = create_engine(settings)
                await _clean(settings, engine, client, progress)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise progress.exceeded() from None
        except asyncio.CancelledError:
            if not stopping.is_set():
                raise
            asyncio.current_task().uncancel()
            raise CleanupError(STOPPED_BY_SIGTERM) from None
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
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        if lock is not None:
            # Compare-and-delete: frees the lock now instead of at its expiry. If Redis
            # is gone this fails quietly and the expiry frees it instead.
            with contextlib.suppress(Exception):
                await lock.release()
        with contextlib.suppress(Exception):
            await client.aclose()
        if engine is not None:
            with contextlib.suppress(Exception):
                await engine.dispose()


def _stop_on_sigterm() -> asyncio.Event:
    """On SIGTERM (pod deletion, the Job's activeDeadlineSeconds) stop the run, so it
    still releases its lock and counts the failure instead of dying mid-way.

    The run stops at the next batch boundary (exact counts); a call that is still in
    flight after a short grace is cancelled. Cancellation alone is not enough: a library
    may absorb it while tearing down a connection, and the run would carry on.
    """
    stopping = asyncio.Event()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if not stopping.is_set():  # a second SIGTERM must not cancel the clean-up
            stopping.set()
            loop.call_later(SIGTERM_CANCEL_AFTER_SECONDS, _cancel_if_running, task)

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    return stopping


def _cancel_if_running(task: asyncio.Task | None) -> None:
    if task is not None and not task.done():
        task.cancel()


async def _clean(
    settings: CleanupSettings, engine: AsyncEngine, client: redis.Redis, progress: _Progress
) -> None:
    summary = progress.summary
    now = time.time()  # one cut-off for the whole run, so the loops always end
    async with _database_errors(settings):
        await ping(engine, settings.db_timeout_seconds)
        # A fresh database (the API never started) is an empty one, not an error.
        await ensure_schema(engine)
        if summary.dry_run:
            summary.records_deleted = await records.count_expired(engine, now)
            progress.check_deadline()
        else:
            await records.delete_expired(
                engine, now, settings.cleanup_batch_size, on_batch=progress.records_batch
            )

    sweeper = OrphanSweeper(client, page_size=settings.cleanup_batch_size)
    async with _redis_errors(settings):
        await sweeper.sweep(summary.dry_run, on_page=progress.keys_page)


@contextlib.asynccontextmanager
async def _redis_errors(settings: CleanupSettings, context: str = "") -> AsyncIterator[None]:
    try:
        yield
    except CleanupError:
        raise
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
    except CleanupError:
        raise
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
