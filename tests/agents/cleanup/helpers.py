"""Helpers for the cleanup job's tests: seed state, run the real job, read the result."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select

from app.db import create_engine, ensure_schema, records
from app.settings import CleanupSettings

REPO_ROOT = Path(__file__).resolve().parents[3]


def job_env(redis_env: dict[str, str], database_url: str, **settings: object) -> dict[str, str]:
    """Environment of a job process: only what the tests choose, no stray CONFIG_FILE."""
    env = {k: v for k, v in os.environ.items() if k != "CONFIG_FILE"}
    env.update(redis_env)
    env.update({"DATABASE_URL": database_url, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"})
    env.update({name.upper(): str(value) for name, value in settings.items()})
    return env


def settings_for(redis_env: dict[str, str], database_url: str, **overrides) -> CleanupSettings:
    return CleanupSettings(
        redis_host=redis_env["REDIS_HOST"],
        redis_port=int(redis_env["REDIS_PORT"]),
        redis_password=redis_env["REDIS_PASSWORD"],
        database_url=database_url,
        log_format="text",
        **overrides,
    )


@dataclass
class JobResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        lines = self.stdout.splitlines()
        assert len(lines) == 1, f"expected one summary line, got {self.stdout!r}"
        return json.loads(lines[0])

    @property
    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.strip()]


async def start_job(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agents.cleanup",
        *args,
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish_job(process: asyncio.subprocess.Process, within_seconds: float = 60) -> JobResult:
    async with asyncio.timeout(within_seconds):
        stdout, stderr = await process.communicate()
    return JobResult(process.returncode, stdout.decode(), stderr.decode())


async def run_job(env: dict[str, str], *args: str, within_seconds: float = 60) -> JobResult:
    return await finish_job(await start_job(env, *args), within_seconds)


async def seed_records(database_url: str, rows: list[dict]) -> None:
    """Insert records given as {"key", "expires_at"} (value/updated_at are filled in)."""
    settings = CleanupSettings(database_url=database_url)
    engine = create_engine(settings)
    try:
        await ensure_schema(engine)
        now = time.time()
        payload = [{"value": "v", "updated_at": now, **row} for row in rows]
        async with engine.begin() as conn:
            for start in range(0, len(payload), 5000):
                await conn.execute(insert(records), payload[start : start + 5000])
    finally:
        await engine.dispose()


async def stored_record_keys(database_url: str) -> set[str]:
    engine = create_engine(CleanupSettings(database_url=database_url))
    try:
        async with engine.connect() as conn:
            return set((await conn.execute(select(records.c.key))).scalars())
    finally:
        await engine.dispose()


def load_keys(client, keys_without_ttl: list[bytes], keys_with_ttl: list[bytes]) -> None:
    """Bulk-load keys with one pipelined round trip per 10,000 commands."""
    pipe = client.pipeline(transaction=False)
    for count, key in enumerate(keys_without_ttl, 1):
        pipe.set(key, b"v")
        if count % 10_000 == 0:
            pipe.execute()
    for count, key in enumerate(keys_with_ttl, 1):
        pipe.set(key, b"v", ex=3600)
        if count % 10_000 == 0:
            pipe.execute()
    pipe.execute()
