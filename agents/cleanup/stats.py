"""Counters that outlive the job's pod: a Redis hash the API's /metrics exports.

A CronJob pod is gone long before Prometheus would scrape it, so each run adds its
figures to CLEANUP_STATS_KEY and every API replica exports them (cleanup_job_runs_total,
cleanup_records_deleted_total, cleanup_keys_deleted_total,
cleanup_last_success_timestamp_seconds, ...). The field names are a contract with app/.
"""

from __future__ import annotations

import time

import redis.asyncio as redis

from agents.cleanup.summary import RunSummary
from app.redis_client import CLEANUP_STATS_KEY

RUNS = "runs"  # successful runs
FAILURES = "failures"  # runs that ended with a non-zero exit after taking the lock
RECORDS_DELETED = "records_deleted"
KEYS_DELETED = "keys_deleted"
LAST_SUCCESS_TIMESTAMP = "last_success_timestamp"  # Unix seconds
LAST_DURATION_SECONDS = "last_duration_seconds"  # of the last successful run


async def record_success(client: redis.Redis, summary: RunSummary) -> None:
    # MULTI/EXEC: a scrape sees all of a run's figures or none of them.
    async with client.pipeline(transaction=True) as pipe:
        pipe.hincrby(CLEANUP_STATS_KEY, RUNS, 1)
        _add_deletions(pipe, summary)
        pipe.hset(
            CLEANUP_STATS_KEY,
            mapping={
                LAST_SUCCESS_TIMESTAMP: repr(time.time()),
                LAST_DURATION_SECONDS: repr(round(summary.duration_seconds, 6)),
            },
        )
        await pipe.execute()


async def record_failure(client: redis.Redis, summary: RunSummary) -> None:
    # Whatever a failed run had already deleted is gone for good, so it is counted too.
    async with client.pipeline(transaction=True) as pipe:
        pipe.hincrby(CLEANUP_STATS_KEY, FAILURES, 1)
        _add_deletions(pipe, summary)
        await pipe.execute()


def _add_deletions(pipe: redis.client.Pipeline, summary: RunSummary) -> None:
    pipe.hincrby(CLEANUP_STATS_KEY, RECORDS_DELETED, summary.records_deleted)
    pipe.hincrby(CLEANUP_STATS_KEY, KEYS_DELETED, summary.keys_deleted)
