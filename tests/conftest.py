"""Fixtures shared by every test suite: real Redis and PostgreSQL servers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.servers import PostgresServer, RedisServer

_db_names = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_env(redis_server: RedisServer) -> dict[str, str]:
    """The session Redis, flushed so each test starts from an empty cache."""
    if redis_server.process is None:
        redis_server.start()
    redis_server.cli("FLUSHALL")
    return redis_server.env


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, for tests that kill or restart it."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().init().start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new empty database per test on the session PostgreSQL."""
    return postgres_server.create_database(f"test_{next(_db_names)}")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/app.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """Run a test once against SQLite and once against PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")
