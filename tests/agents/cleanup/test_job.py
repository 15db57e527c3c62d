"""The real job as a subprocess (`python -m agents.cleanup`) against real servers."""

from __future__ import annotations

import asyncio
import time

from app.redis_client import CLEANUP_LOCK_KEY, CLEANUP_STATS_KEY
from tests.agents.cleanup.helpers import (
    finish_job,
    job_env,
    load_keys,
    run_job,
    seed_records,
    start_job,
    stored_record_keys,
)

STATS_FIELDS_AFTER_SUCCESS = {
    b"runs",
    b"records_deleted",
    b"keys_deleted",
    b"last_success_timestamp",
    b"last_duration_seconds",
}


async def seed_mixed_population(database_url: str, redis_client) -> None:
    now = time.time()
    await seed_records(
        database_url,
        [
            {"key": "expired-1", "expires_at": now - 3600},
            {"key": "expired-2", "expires_at": now - 1},
            {"key": "expired-3", "expires_at": now - 0.001},
            {"key": "alive", "expires_at": now + 3600},
            {"key": "forever", "expires_at": None},
        ],
    )
    redis_client.set(b"cnj:cache:orphan-1", b"v")
    redis_client.set(b"cnj:cache:orphan-2", b"v")
    redis_client.set(b"cnj:cache:\xff\xfe-not-utf8", b"v")  # must not stop the sweep
    redis_client.hset(b"cnj:cache:orphan-hash", b"f", b"v")  # any type, not just strings
    redis_client.set(b"cnj:cache:cached", b"v", ex=3600)
    redis_client.set(b"cnj:cache:soon", b"v", px=60_000)
    redis_client.set(b"cnj:cacheX-no-ttl", b"v")  # shares letters, not the prefix
    redis_client.set(b"cnj:cache-trust", b"1")
    redis_client.set(b"other:no-ttl", b"v")
    redis_client.set(b"cnj:cache*[glob]", b"v")  # glob characters in a foreign key


async def test_run_deletes_expired_records_and_orphan_keys_only(
    database_url, redis_env, redis_client
):
    await seed_mixed_population(database_url, redis_client)
    started = time.time()

    result = await run_job(job_env(redis_env, database_url))

    assert result.returncode == 0, result.stderr
    summary = result.summary
    assert summary["status"] == "ok"
    assert summary["dry_run"] is False
    assert summary["records_deleted"] == 3
    assert summary["keys_scanned"] == 6
    assert summary["keys_deleted"] == 4
    assert 0 < summary["duration_seconds"] < 30
    assert await stored_record_keys(database_url) == {"alive", "forever"}
    remaining = set(redis_client.keys(b"*"))
    assert remaining == {
        b"cnj:cache:cached",
        b"cnj:cache:soon",
        b"cnj:cacheX-no-ttl",
        b"cnj:cache-trust",
        b"other:no-ttl",
        b"cnj:cache*[glob]",
        CLEANUP_STATS_KEY.encode(),
    }
    assert redis_client.ttl(b"cnj:cache:cached") > 3500  # TTL untouched
    assert redis_client.exists(CLEANUP_LOCK_KEY) == 0  # released at the end

    stats = redis_client.hgetall(CLEANUP_STATS_KEY)
    assert set(stats) == STATS_FIELDS_AFTER_SUCCESS
    assert stats[b"runs"] == b"1"
    assert stats[b"records_deleted"] == b"3"
    assert stats[b"keys_deleted"] == b"4"
    assert started <= float(stats[b"last_success_timestamp"]) <= time.time()
    assert 0 < float(stats[b"last_duration_seconds"]) < 30

    # Idempotent: the second run finds nothing to do and only counts itself.
    again = await run_job(job_env(redis_env, database_url))
    assert again.returncode == 0, again.stderr
    assert (again.summary["records_deleted"], again.summary["keys_deleted"]) == (0, 0)
    stats = redis_client.hgetall(CLEANUP_STATS_KEY)
    assert (stats[b"runs"], stats[b"records_deleted"], stats[b"keys_deleted"]) == (
        b"2",
        b"3",
        b"4",
    )


async def test_dry_run_reports_and_deletes_nothing(database_url, redis_env, redis_client):
    await seed_mixed_population(database_url, redis_client)
    keys_before = set(redis_client.keys(b"*"))

    result = await run_job(job_env(redis_env, database_url), "--dry-run")

    assert result.returncode == 0, result.stderr
    summary = result.summary
    assert summary["dry_run"] is True
    assert (summary["records_deleted"], summary["keys_scanned"], summary["keys_deleted"]) == (
        3,
        6,
        4,
    )
    assert len(await stored_record_keys(database_url)) == 5
    assert set(redis_client.keys(b"*")) == keys_before  # no stats, no lock, no deletes


async def test_second_run_while_locked_logs_already_running_and_exits_0(
    sqlite_url, redis_env, redis_client
):
    redis_client.set(b"cnj:cache:orphan", b"v")
    redis_client.set(CLEANUP_LOCK_KEY, b"other-pod/1/token", px=60_000)

    result = await run_job(job_env(redis_env, sqlite_url))

    assert result.returncode == 0, result.stderr
    assert result.summary["status"] == "already_running"
    [line] = result.log_lines
    assert "already running" in line["message"]
    assert line["lock_holder"] == "other-pod/1"
    assert redis_client.exists(b"cnj:cache:orphan") == 1  # did no work
    assert redis_client.get(CLEANUP_LOCK_KEY) == b"other-pod/1/token"  # left alone
    assert redis_client.exists(CLEANUP_STATS_KEY) == 0


async def test_two_concurrent_runs_one_does_the_work(sqlite_url, redis_env, redis_client):
    orphans = [b"cnj:cache:o%d" % i for i in range(40_000)]
    load_keys(redis_client, orphans, [])
    env = job_env(redis_env, sqlite_url, cleanup_batch_size=40)

    first, second = await run_jobs_together(env, env)

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    by_status = {r.summary["status"]: r for r in (first, second)}
    assert set(by_status) == {"ok", "already_running"}
    assert by_status["ok"].summary["keys_deleted"] == len(orphans)
    assert any(
        "already running" in line["message"] for line in by_status["already_running"].log_lines
    )
    assert redis_client.dbsize() == 1  # only the stats hash is left
    assert redis_client.hget(CLEANUP_STATS_KEY, b"runs") == b"1"


async def run_jobs_together(*envs):
    processes = [await start_job(env) for env in envs]
    return await asyncio.gather(*(finish_job(p) for p in processes))
