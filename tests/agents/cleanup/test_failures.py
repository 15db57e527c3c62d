"""Failures of the real job: each ends with one clear log line and the right exit code."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

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
from tests.servers import free_port


def assert_one_clean_error_line(result, *fragments: str, secrets: tuple[str, ...] = ()):
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stdout == ""  # no summary for a failed run
    assert "Traceback" not in result.stderr
    [line] = result.log_lines
    assert line["level"] == "ERROR"
    assert line["message"].startswith("cleanup failed: ")
    for fragment in fragments:
        assert fragment in line["message"], line["message"]
    for secret in secrets:
        assert secret not in result.stderr
    return line


async def test_redis_down_exits_non_zero_with_one_clear_line(sqlite_url, redis_env):
    port = free_port()  # nothing listens here
    env = job_env({**redis_env, "REDIS_PORT": str(port)}, sqlite_url)

    result = await run_job(env)

    assert_one_clean_error_line(
        result, f"redis unavailable at 127.0.0.1:{port}", secrets=(redis_env["REDIS_PASSWORD"],)
    )


async def test_wrong_redis_password_is_reported_without_echoing_it(sqlite_url, redis_env):
    wrong = "wrong-password-123"
    env = job_env({**redis_env, "REDIS_PASSWORD": wrong}, sqlite_url)

    result = await run_job(env)

    assert_one_clean_error_line(
        result, "redis unavailable", "AuthenticationError", secrets=(wrong,)
    )


async def test_redis_dying_mid_run_exits_non_zero(fresh_redis, sqlite_url):
    import redis

    client = redis.Redis(port=fresh_redis.port, password=fresh_redis.password)
    load_keys(client, [b"cnj:cache:o%d" % i for i in range(40_000)], [])
    client.close()
    process = await start_job(job_env(fresh_redis.env, sqlite_url, cleanup_batch_size=10))
    await wait_until(lambda: _dbsize(fresh_redis) < 40_000)

    fresh_redis.kill()
    result = await finish_job(process)

    assert_one_clean_error_line(result, "redis unavailable", secrets=(fresh_redis.password,))


async def test_database_down_exits_non_zero_counts_the_failure_and_frees_the_lock(
    redis_env, redis_client
):
    password = "db-secret-pw-42"
    url = f"postgresql+asyncpg://app:{password}@127.0.0.1:{free_port()}/app"
    redis_client.set(b"cnj:cache:orphan", b"v")

    result = await run_job(job_env(redis_env, url, db_timeout_seconds=2))

    assert_one_clean_error_line(
        result, "database unavailable at postgresql+asyncpg://app:***@", secrets=(password,)
    )
    assert redis_client.hgetall(CLEANUP_STATS_KEY) == {
        b"failures": b"1",
        b"records_deleted": b"0",
        b"keys_deleted": b"0",
    }
    assert redis_client.exists(CLEANUP_LOCK_KEY) == 0
    assert redis_client.exists(b"cnj:cache:orphan") == 1  # stopped before the sweep


async def test_unusable_sqlite_path_is_a_clear_database_error(redis_env):
    result = await run_job(job_env(redis_env, "sqlite+aiosqlite:////proc/no-such-dir/app.db"))

    assert_one_clean_error_line(result, "database unavailable at sqlite")


async def test_deadline_exceeded_exits_non_zero_and_counts_partial_work(
    sqlite_url, redis_env, redis_client
):
    orphans = [b"cnj:cache:o%d" % i for i in range(40_000)]
    load_keys(redis_client, orphans, [])
    env = job_env(
        redis_env,
        sqlite_url,
        cleanup_batch_size=5,
        cleanup_deadline_seconds=0.5,
        cleanup_lock_ttl_seconds=30,
    )

    result = await run_job(env)

    line = assert_one_clean_error_line(result, "deadline of 0.5s", "CLEANUP_DEADLINE_SECONDS")
    left = sum(1 for _ in redis_client.scan_iter(match=b"cnj:cache:*", count=1000))
    deleted = len(orphans) - left
    assert 0 < deleted < len(orphans)  # really stopped halfway
    assert line["keys_deleted"] == deleted
    stats = redis_client.hgetall(CLEANUP_STATS_KEY)
    assert stats[b"failures"] == b"1"
    assert stats[b"keys_deleted"] == str(deleted).encode()
    assert b"runs" not in stats and b"last_success_timestamp" not in stats
    assert redis_client.exists(CLEANUP_LOCK_KEY) == 0


async def test_sigterm_stops_the_run_frees_the_lock_and_counts_the_failure(
    sqlite_url, redis_env, redis_client
):
    orphans = [b"cnj:cache:o%d" % i for i in range(40_000)]
    load_keys(redis_client, orphans, [])
    # One key per page: a long run, so SIGTERM lands mid-run even on a loaded machine.
    process = await start_job(job_env(redis_env, sqlite_url, cleanup_batch_size=1))
    await wait_until(lambda: redis_client.dbsize() < len(orphans))
    assert process.returncode is None, "the run ended before SIGTERM could be sent"

    process.terminate()
    result = await finish_job(process)

    line = assert_one_clean_error_line(result, "stopped by SIGTERM")
    assert redis_client.exists(CLEANUP_LOCK_KEY) == 0
    assert redis_client.hget(CLEANUP_STATS_KEY, b"failures") == b"1"
    assert (
        redis_client.hget(CLEANUP_STATS_KEY, b"keys_deleted") == str(line["keys_deleted"]).encode()
    )


async def test_config_error_is_one_stderr_line_and_exit_2(sqlite_url, redis_env):
    for bad in (
        {"cleanup_batch_size": 0},
        {"cleanup_deadline_seconds": 400, "cleanup_lock_ttl_seconds": 300},
    ):
        result = await run_job(job_env(redis_env, sqlite_url, **bad))
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith("cloudnative-cleanup: invalid setting ")
        assert next(iter(bad)).upper() in line


@pytest.mark.parametrize("kill_during", ["records", "keys"])
async def test_killed_run_is_finished_by_the_next_run(
    kill_during, database_url, redis_env, redis_client
):
    now = time.time()
    expired = [{"key": f"expired-{i}", "expires_at": now - 60} for i in range(3000)]
    alive = [{"key": f"alive-{i}", "expires_at": now + 3600} for i in range(200)]
    await seed_records(database_url, expired + alive)
    orphans = [b"cnj:cache:o%d" % i for i in range(20_000)]
    cached = [b"cnj:cache:c%d" % i for i in range(2_000)]
    load_keys(redis_client, orphans, cached)
    # Short lock so the test need not wait the default 300 s for a killed holder's lock.
    killed_env = job_env(
        redis_env,
        database_url,
        cleanup_batch_size=5,
        cleanup_deadline_seconds=20,
        cleanup_lock_ttl_seconds=25,
    )

    process = await start_job(killed_env)
    if kill_during == "records":
        await wait_until_async(lambda: _records_left(database_url), lambda n: n < 3200)
    else:
        await wait_until(lambda: redis_client.dbsize() < len(orphans) + len(cached))
    os.kill(process.pid, signal.SIGKILL)
    killed = await finish_job(process)
    assert killed.returncode == -signal.SIGKILL

    left_after_kill = await stored_record_keys(database_url)
    orphans_after_kill = redis_client.dbsize() - len(cached) - 1  # minus the lock
    if kill_during == "records":  # really killed halfway through the records
        assert 200 < len(left_after_kill) < 3200
        assert orphans_after_kill == len(orphans)
    else:  # ... or through the keys
        assert len(left_after_kill) == 200
        assert 0 < orphans_after_kill < len(orphans)
    assert redis_client.exists(CLEANUP_LOCK_KEY) == 1  # the dead run's lock is still there

    # A retry while the lock lives is harmless: it sees the lock and does nothing.
    blocked = await run_job(job_env(redis_env, database_url))
    assert blocked.returncode == 0
    assert blocked.summary["status"] == "already_running"

    redis_client.pexpire(CLEANUP_LOCK_KEY, 1)  # fast-forward to the lock's expiry
    await asyncio.sleep(0.05)
    finished = await run_job(job_env(redis_env, database_url))

    assert finished.returncode == 0, finished.stderr
    assert finished.summary["records_deleted"] == len(left_after_kill) - 200
    assert finished.summary["keys_deleted"] == orphans_after_kill
    assert await stored_record_keys(database_url) == {row["key"] for row in alive}
    assert set(redis_client.scan_iter(match=b"cnj:cache:*", count=1000)) == set(cached)


def _dbsize(server) -> int:
    return int(server.cli("DBSIZE"))


async def _records_left(database_url: str) -> int:
    return len(await stored_record_keys(database_url))


POLL_SECONDS = 0.01


async def wait_until(condition, within_seconds: float = 20) -> None:
    for _ in range(int(within_seconds / POLL_SECONDS)):
        if condition():
            return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"condition not met within {within_seconds}s")


async def wait_until_async(probe, accept, within_seconds: float = 20) -> None:
    for _ in range(int(within_seconds / POLL_SECONDS)):
        if accept(await probe()):
            return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"condition not met within {within_seconds}s")
