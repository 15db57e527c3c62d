"""The fixtures themselves: the servers are real and reachable with their credentials."""

import asyncio

import pytest
import redis.exceptions as redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.redis_client import create_redis
from app.settings import CommonSettings


async def test_redis_fixture_requires_password(redis_server):
    settings = CommonSettings(**{k.lower(): v for k, v in redis_server.env.items()})
    client = create_redis(settings)
    assert await client.ping() is True
    await client.aclose()
    anonymous = create_redis(settings.model_copy(update={"redis_password": None}))
    with pytest.raises(redis.AuthenticationError):
        await anonymous.ping()
    await anonymous.aclose()


async def test_postgres_fixture_serves_sql(postgres_url):
    engine = create_async_engine(postgres_url)
    async with engine.connect() as conn:
        version = (await conn.execute(text("SHOW server_version"))).scalar_one()
    await engine.dispose()
    assert version.startswith("15")
    assert asyncio.get_running_loop() is not None
