"""Dependencies failing under a running API: Redis killed/restarted, PostgreSQL stopped,
and start-up before either is up. Nothing hangs; acknowledged writes are never lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.api.conftest import TEST_LEASE_SECONDS, Instance, api_settings, eventually, running
from tests.servers import PostgresServer, RedisServer


async def metric(instance: Instance, name: str) -> float:
    text = (await (await instance.client.get("/metrics")).get_data()).decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not exported")


@pytest.fixture
def dedicated_postgres():
    server = PostgresServer().init()
    yield server
    server.close()


async def test_redis_outage_and_restart_with_stale_data(fresh_redis: RedisServer, sqlite_url):
    settings = api_settings(fresh_redis.env, sqlite_url)
    async with running(settings) as api:
        assert (await api.post("user:1", "before-outage")).status_code == 201
        await api.wait_cache_trusted()
        await api.get("user:1")
        cached = await (await api.get("user:1")).get_json()
        assert cached["cached"] is True  # the old value is in Redis (and its AOF)

        fresh_redis.kill()
        started = time.monotonic()
        during = await api.get("user:1")
        assert during.status_code == 200
        body = await during.get_json()
        assert body == {**cached, "cached": False}
        assert time.monotonic() - started < 2
        assert (await api.client.get("/health/ready")).status_code == 200
        assert await metric(api, "redis_connected") == 0
        cache_test = await (await api.client.get("/api/v1/cache/test")).get_json()
        assert cache_test["redis_connected"] is False and cache_test["error"]
        assert cache_test["cache_trusted"] is False

        # Writes stay correct during the outage; they wait out the trust lease.
        started = time.monotonic()
        assert (await api.post("user:1", "during-outage")).status_code == 200
        assert TEST_LEASE_SECONDS * 0.9 <= time.monotonic() - started < TEST_LEASE_SECONDS + 2
        assert (await api.post("user:2", "new-key")).status_code == 201
        assert (await api.client.delete("/api/v1/data/user:2")).status_code == 204
        assert (await (await api.get("user:1")).get_json())["value"] == "during-outage"

        fresh_redis.start()  # same port, same AOF: the stale entry is back in Redis
        assert "before-outage" in fresh_redis.cli("GET", "cnj:cache:user:1")
        for _ in range(20):
            body = await (await api.get("user:1")).get_json()
            assert body["value"] == "during-outage", body
            assert (await api.get("user:2")).status_code == 404
            await asyncio.sleep(0.05)

        async def reconnected_and_caching() -> bool:
            body = await (await api.get("user:1")).get_json()
            assert body["value"] == "during-outage"
            return body["cached"] and await metric(api, "redis_connected") == 1

        await eventually(reconnected_and_caching, within=10)


async def test_database_outage_gives_fast_503_then_recovers(
    redis_env, dedicated_postgres: PostgresServer
):
    dedicated_postgres.start()
    settings = api_settings(redis_env, dedicated_postgres.url("postgres"))
    async with running(settings) as api:
        assert (await api.post("k", "v")).status_code == 201
        dedicated_postgres.stop("immediate")
        try:
            started = time.monotonic()
            ready = await api.client.get("/health/ready")
            assert ready.status_code == 503
            assert (await ready.get_json())["checks"]["database"]["up"] is False
            for request in (
                api.client.post("/api/v1/data", json={"key": "k2", "value": "v"}),
                api.client.get("/api/v1/data/other"),
                api.client.get("/api/v1/data/k"),
                api.client.delete("/api/v1/data/k"),
            ):
                response = await request
                assert response.status_code == 503
                body = await response.get_json()
                assert body["error"] == "database_unavailable"
            assert time.monotonic() - started < settings.db_timeout_seconds * 3
            assert (await api.client.get("/health/live")).status_code == 200
            assert await metric(api, "database_up") == 0
        finally:
            dedicated_postgres.start()
        await api.wait_ready(within=15)

        async def data_served() -> bool:
            return (await api.get("k")).status_code == 200

        await eventually(data_served, within=10)
        assert (await (await api.get("k")).get_json())["value"] == "v"


async def test_start_before_dependencies(dedicated_postgres: PostgresServer):
    redis = RedisServer()  # port and password chosen, not started yet
    settings = api_settings(redis.env, dedicated_postgres.url("postgres"))
    try:
        async with running(settings, wait_ready=False) as api:
            assert (await api.client.get("/health/live")).status_code == 200
            assert (await api.client.get("/health/ready")).status_code == 503
            response = await api.get("k")
            assert response.status_code == 503
            assert (await response.get_json())["error"] == "database_unavailable"
            await asyncio.sleep(1)
            dedicated_postgres.start()
            redis.start()
            await api.wait_ready(within=20)
            assert (await api.post("k", "v")).status_code == 201
            await api.wait_cache_trusted()
            await api.get("k")
            assert (await (await api.get("k")).get_json())["cached"] is True
    finally:
        redis.close()


class SilencingProxy:
    """A TCP proxy in front of Redis that can make its current connections go silent.

    That is what a replaced Redis pod looks like to a client: its old sockets get no RST,
    every call on them just times out, while new connections reach the new server.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.generation = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> SilencingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    def silence_existing_connections(self) -> None:
        self.generation += 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        born = self.generation
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if self.generation != born:
                    continue  # swallowed: the peer is "gone" without a reset
                dst.write(data)
                await dst.drain()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_sockets_to_a_replaced_redis_are_dropped_not_timed_out_one_by_one(
    redis_server: RedisServer, sqlite_url
):
    async with SilencingProxy(redis_server.port) as proxy:
        env = {**redis_server.env, "REDIS_PORT": str(proxy.port)}
        settings = api_settings(env, sqlite_url)
        async with running(settings) as api:
            assert (await api.post("hot", "v")).status_code == 201
            await api.wait_cache_trusted()
            await api.get("hot")
            # Many concurrent hits leave many idle sockets in the pool.
            hits = await asyncio.gather(*(api.get("hot") for _ in range(30)))
            assert all([(await hit.get_json())["cached"] for hit in hits])

            proxy.silence_existing_connections()
            # No request traffic: the reconciler alone notices and drops the idle sockets.
            await asyncio.sleep(TEST_LEASE_SECONDS + 2 * settings.redis_timeout_seconds)
            await api.wait_cache_trusted()

            started = time.monotonic()
            after = await asyncio.gather(*(api.get("hot") for _ in range(30)))
            bodies = [await response.get_json() for response in after]
            # Without dropping them, each stale socket would cost a timeout and a miss.
            assert all(body["cached"] for body in bodies), bodies
            assert time.monotonic() - started < settings.redis_timeout_seconds
