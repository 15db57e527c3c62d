"""Helpers for the API tests: real app instances (Quart test client) on real servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from quart import Quart

from app.factory import create_app
from app.redis_client import CACHE_TRUST_KEY
from app.settings import ApiSettings
from app.state import STATE_EXTENSION, AppState

# Short leases and timeouts keep fault tests fast; the logic is the same as in production.
TEST_LEASE_SECONDS = 1.0
TEST_DB_TIMEOUT_SECONDS = 2.0


def api_settings(redis_env: dict[str, str], database_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "redis_host": redis_env["REDIS_HOST"],
        "redis_port": int(redis_env["REDIS_PORT"]),
        "redis_password": redis_env["REDIS_PASSWORD"],
        "database_url": database_url,
        "db_timeout_seconds": TEST_DB_TIMEOUT_SECONDS,
        "redis_timeout_seconds": 0.5,
        "cache_trust_lease_seconds": TEST_LEASE_SECONDS,
        "redis_info_cache_seconds": 0,
        "log_format": "text",
    }
    values.update(overrides)
    return ApiSettings(**values)


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 15.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {check.__name__}")
        await asyncio.sleep(interval)


@dataclass
class Instance:
    """One running app (one 'replica') with its test client."""

    app: Quart
    client: Any

    @property
    def state(self) -> AppState:
        return self.app.extensions[STATE_EXTENSION]

    async def post(self, key: str, value: str, ttl: int | None = None) -> Any:
        body: dict[str, Any] = {"key": key, "value": value}
        if ttl is not None:
            body["ttl"] = ttl
        return await self.client.post("/api/v1/data", json=body)

    async def get(self, key: str) -> Any:
        return await self.client.get(f"/api/v1/data/{key}")

    async def wait_ready(self, within: float = 15.0) -> None:
        async def ready() -> bool:
            return (await self.client.get("/health/ready")).status_code == 200

        await eventually(ready, within)

    async def wait_cache_trusted(self, within: float = 10.0) -> None:
        """Until the reconciler drained the outbox and granted the trust lease."""
        state = self.state

        async def trusted() -> bool:
            assert state.repository is not None and state.redis is not None
            try:
                pending = await state.repository.pending_invalidations(1)
                return not pending and bool(await state.redis.exists(CACHE_TRUST_KEY))
            except Exception:
                return False

        await eventually(trusted, within)


@contextlib.asynccontextmanager
async def running(settings: ApiSettings, *, wait_ready: bool = True) -> AsyncIterator[Instance]:
    app = create_app(settings)
    async with app.test_app() as test_app:
        instance = Instance(app, test_app.test_client())
        if wait_ready:
            await instance.wait_ready()
        yield instance


@pytest.fixture
async def api(redis_env, database_url) -> AsyncIterator[Instance]:
    """One ready instance on the test Redis, against SQLite and PostgreSQL in turn."""
    async with running(api_settings(redis_env, database_url)) as instance:
        yield instance
