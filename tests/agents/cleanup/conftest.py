"""Fixtures for the cleanup job's tests (servers come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.servers import RedisServer


@pytest.fixture
def redis_client(redis_server: RedisServer, redis_env: dict[str, str]) -> Iterator[redis.Redis]:
    """A plain client on the (flushed) session Redis, bytes in and out."""
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    yield client
    client.close()
