"""Property: whatever the population and however writers race the run, the cleanup never
deletes a key that has a TTL, a key outside the cache prefix, or an unexpired record.

Each example runs the real job code in-process against the real Redis and database,
while a racer gives TTLs to orphan keys (as a cache fill would) and new expiries to
expired records (as an API write would) at the same time. Whatever the racer changed
successfully must survive; what it found already gone must have been deleted by the run.
"""

from __future__ import annotations

import asyncio
import time

import hypothesis.strategies as st
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from sqlalchemy import delete, update

from agents.cleanup.run import EXIT_OK, run_cleanup
from app.db import create_engine, ensure_schema, records
from tests.agents.cleanup.helpers import seed_records, settings_for, stored_record_keys
from tests.servers import RedisServer

PREFIX = b"cnj:cache:"
KEY_KINDS = ["orphan", "with_ttl", "outside_prefix", "adopted"]
RECORD_KINDS = ["expired", "alive", "forever", "revived"]

key_populations = st.lists(
    st.tuples(st.binary(min_size=1, max_size=8), st.sampled_from(KEY_KINDS)),
    max_size=80,
    unique_by=lambda item: item[0],
)
record_populations = st.lists(
    st.tuples(
        st.text("abcdefghij0123456789", min_size=1, max_size=8), st.sampled_from(RECORD_KINDS)
    ),
    max_size=60,
    unique_by=lambda item: item[0],
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=key_populations,
    rows=record_populations,
    batch_size=st.integers(min_value=1, max_value=16),
    ttl_ms=st.integers(min_value=60_000, max_value=10**9),
)
def test_never_deletes_a_key_with_ttl_or_an_unexpired_record(
    redis_server: RedisServer, redis_env, database_url, keys, rows, batch_size, ttl_ms
):
    asyncio.run(
        _example(redis_server, redis_env, database_url, keys, rows, batch_size, ttl_ms),
    )


async def _example(redis_server, redis_env, database_url, keys, rows, batch_size, ttl_ms):
    sync_redis = redis.Redis(port=redis_server.port, password=redis_server.password)
    sync_redis.flushall()
    key_names = {kind: [] for kind in KEY_KINDS}
    for name, kind in keys:
        full = (b"cnj:other:" if kind == "outside_prefix" else PREFIX) + name
        key_names[kind].append(full)
        if kind == "with_ttl":
            sync_redis.set(full, b"v", px=ttl_ms)
        else:
            sync_redis.set(full, b"v")

    now = time.time()
    expiry = {"expired": now - 10, "revived": now - 10, "alive": now + 3600, "forever": None}
    await _empty_records(database_url)
    await seed_records(database_url, [{"key": k, "expires_at": expiry[kind]} for k, kind in rows])

    job_settings = settings_for(redis_env, database_url, cleanup_batch_size=batch_size)
    racer_redis = aioredis.Redis(port=redis_server.port, password=redis_server.password)
    racer_engine = create_engine(job_settings)
    revive = [k for k, kind in rows if kind == "revived"]
    try:
        exit_code, adopted, revived = await asyncio.gather(
            run_cleanup(job_settings),
            _adopt(racer_redis, key_names["adopted"]),
            _revive(racer_engine, revive),
        )
    finally:
        await racer_redis.aclose()
        await racer_engine.dispose()

    assert exit_code == EXIT_OK
    survivors = set(sync_redis.scan_iter(count=1000))
    for key in key_names["with_ttl"]:
        assert key in survivors and sync_redis.pttl(key) > 0
    assert set(key_names["outside_prefix"]) <= survivors
    assert not set(key_names["orphan"]) & survivors
    for key, got_ttl in adopted.items():
        # EXPIRE succeeded -> the key had a TTL from then on and must be kept;
        # EXPIRE found nothing -> only the run can have deleted it.
        assert (key in survivors) == got_ttl

    stored = await stored_record_keys(database_url)
    must_stay = {k for k, kind in rows if kind in ("alive", "forever")}
    must_stay |= {k for k, ok in revived.items() if ok}
    must_go = {k for k, kind in rows if kind == "expired"}
    must_go |= {k for k, ok in revived.items() if not ok}
    assert must_stay <= stored
    assert not must_go & stored
    sync_redis.close()


async def _adopt(client: aioredis.Redis, keys: list[bytes]) -> dict[bytes, bool]:
    """Give each orphan a TTL while the sweep runs, as a cache fill would."""
    result = {}
    for key in keys:
        await asyncio.sleep(0)
        result[key] = bool(await client.expire(key, 3600))
    return result


async def _revive(engine, keys: list[str]) -> dict[str, bool]:
    """Give expired records a new expiry while the run deletes, as an API write would."""
    result = {}
    for key in keys:
        await asyncio.sleep(0)
        async with engine.begin() as conn:
            changed = await conn.execute(
                update(records).where(records.c.key == key).values(expires_at=time.time() + 3600)
            )
        result[key] = changed.rowcount == 1
    return result


async def _empty_records(database_url: str) -> None:
    engine = create_engine(
        settings_for({"REDIS_HOST": "x", "REDIS_PORT": "1", "REDIS_PASSWORD": "x"}, database_url)
    )
    try:
        await ensure_schema(engine)
        async with engine.begin() as conn:
            await conn.execute(delete(records))
    finally:
        await engine.dispose()
