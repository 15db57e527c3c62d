"""Races: the stale-fill race (forced), a randomized two-replica race, and the stampede."""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import AsyncExitStack

from app.records import Record
from app.redis_client import cache_key
from tests.api.conftest import Instance, api_settings, running


def pause_db_reads_after_reading(instance: Instance) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the next DB read return only when released (it has read by then): the
    window in which a writer commits and invalidates between a reader's read and fill."""
    repository = instance.state.repository
    assert repository is not None
    read_done, release = asyncio.Event(), asyncio.Event()
    original = repository.get

    async def paused_get(key: str) -> Record | None:
        record = await original(key)
        if not release.is_set():
            read_done.set()
            await release.wait()
        return record

    repository.get = paused_get  # type: ignore[method-assign]
    return read_done, release


async def test_stale_fill_race_cannot_plant_an_old_value(redis_env, database_url):
    async with AsyncExitStack() as stack:
        reader = await stack.enter_async_context(running(api_settings(redis_env, database_url)))
        writer = await stack.enter_async_context(running(api_settings(redis_env, database_url)))
        assert (await writer.post("race", "old")).status_code == 201
        await reader.wait_cache_trusted()
        read_done, release = pause_db_reads_after_reading(reader)

        slow_get = asyncio.create_task(reader.get("race"))
        await asyncio.wait_for(read_done.wait(), 5)  # reader holds "old", not yet filled
        assert (await writer.post("race", "new")).status_code == 200  # commit + invalidate
        late_get = asyncio.create_task(reader.get("race"))  # arrives after the ack
        await asyncio.sleep(0.05)
        release.set()

        # The slow read overlapped the write: either value is linearizable for it.
        assert (await (await slow_get).get_json())["value"] in {"old", "new"}
        # The late reader may share the in-flight read only if it was still valid for it.
        assert (await (await late_get).get_json())["value"] == "new"
        state = reader.state
        assert state.redis is not None
        assert await state.redis.get(cache_key("race")) is None or "old" not in (
            await state.redis.get(cache_key("race"))
        )
        for instance in (reader, writer, reader):
            body = await (await instance.get("race")).get_json()
            assert body["value"] == "new", body


async def test_stampede_costs_one_db_read_per_instance(redis_env, postgres_url):
    async with AsyncExitStack() as stack:
        instances = [
            await stack.enter_async_context(running(api_settings(redis_env, postgres_url)))
            for _ in range(2)
        ]
        assert (await instances[0].post("hot", "value")).status_code == 201
        for instance in instances:
            await instance.wait_cache_trusted()
        reads_before = [instance.state.repository.reads for instance in instances]
        responses = await asyncio.gather(
            *(instance.get("hot") for instance in instances for _ in range(50))
        )
        assert all(response.status_code == 200 for response in responses)
        bodies = [await response.get_json() for response in responses]
        assert {body["value"] for body in bodies} == {"value"}
        reads = [
            instance.state.repository.reads - before
            for instance, before in zip(instances, reads_before, strict=True)
        ]
        assert reads == [1, 1], reads


async def test_randomized_race_never_goes_back_in_time(redis_env, postgres_url):
    """Writers bump per-key versions through random replicas; every read must return a
    version at least as new as the last one acknowledged before the read started."""
    rng = random.Random(2024)
    keys = [f"race:{n}" for n in range(4)]
    acknowledged = dict.fromkeys(keys, 0)
    violations: list[str] = []
    reads_checked = 0
    async with AsyncExitStack() as stack:
        instances = [
            await stack.enter_async_context(running(api_settings(redis_env, postgres_url)))
            for _ in range(2)
        ]
        for key in keys:
            assert (await instances[0].post(key, "0")).status_code == 201
        await instances[0].wait_cache_trusted()
        deadline = time.monotonic() + 4.0

        async def writer(key: str) -> None:
            version = 0
            while time.monotonic() < deadline and version < 200:
                version += 1
                response = await rng.choice(instances).post(key, str(version))
                assert response.status_code == 200
                acknowledged[key] = version
                await asyncio.sleep(rng.random() * 0.01)

        async def reader() -> None:
            nonlocal reads_checked
            while time.monotonic() < deadline:
                key = rng.choice(keys)
                floor = acknowledged[key]
                instance = rng.choice(instances)
                body = await (await instance.get(key)).get_json()
                reads_checked += 1
                if int(body["value"]) < floor:
                    violations.append(f"{key}: read {body['value']} after ack of {floor}")
                await asyncio.sleep(rng.random() * 0.002)

        await asyncio.gather(*(writer(key) for key in keys), *(reader() for _ in range(8)))
    assert not violations, violations[:10]
    assert reads_checked > 200
    assert all(version > 10 for version in acknowledged.values()), acknowledged


async def test_outbox_drain_does_not_revoke_fills_of_reads_after_the_write(redis_env, sqlite_url):
    """A read that starts after an acknowledged write fills the cache even though the
    reconciler drains that write's outbox row while the read is in flight."""
    async with running(api_settings(redis_env, sqlite_url)) as api:
        await api.wait_cache_trusted()
        assert (await api.post("fresh", "v")).status_code == 201  # its row is pending
        read_done, release = pause_db_reads_after_reading(api)
        first = asyncio.create_task(api.get("fresh"))  # lease taken, DB read, paused
        await asyncio.wait_for(read_done.wait(), 5)
        assert await api.state.cache.reconcile_once()  # drains the row mid-read
        assert await api.state.repository.pending_invalidations(10) == []
        release.set()
        assert (await (await first).get_json())["cached"] is False
        second = await (await api.get("fresh")).get_json()
        assert second == {**second, "value": "v", "cached": True}
