"""Small pieces: the lock against a real Redis, the summary line, glob escaping."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from agents.cleanup.lock import RunLock
from agents.cleanup.orphans import _glob_escape
from agents.cleanup.summary import RunSummary
from app.redis_client import CLEANUP_LOCK_KEY


async def test_lock_is_exclusive_expires_and_only_its_owner_releases_it(redis_server, redis_env):
    client = aioredis.Redis(port=redis_server.port, password=redis_server.password)
    try:
        first, second = RunLock(client, 30), RunLock(client, 30)
        assert first.token != second.token
        assert await first.acquire()
        assert not await second.acquire()
        assert 29_000 < await client.pttl(CLEANUP_LOCK_KEY) <= 30_000
        assert not await second.release()  # not the owner: the lock stays
        assert await client.exists(CLEANUP_LOCK_KEY) == 1
        assert await first.release()
        assert await second.acquire()
        # The first run's lock is long gone: releasing again must not free the second's.
        assert not await first.release()
        assert await client.get(CLEANUP_LOCK_KEY) == second.token.encode()
    finally:
        await client.aclose()


def test_summary_line_is_one_json_object_with_the_agreed_fields():
    summary = RunSummary(records_deleted=3, keys_scanned=10, keys_deleted=2)
    summary.duration_seconds = 1.23456
    line = summary.to_json("ok")
    assert "\n" not in line
    assert json.loads(line) == {
        "status": "ok",
        "dry_run": False,
        "records_deleted": 3,
        "keys_scanned": 10,
        "keys_deleted": 2,
        "duration_seconds": 1.235,
    }


def test_glob_characters_in_the_prefix_are_matched_literally():
    assert _glob_escape(b"cnj:cache:") == b"cnj:cache:"
    assert _glob_escape(b"a*b?c[d]e\\") == b"a\\*b\\?c\\[d\\]e\\\\"
