"""`python -m app` as a real process: config errors, config precedence, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.__main__ import GC_YOUNG_THRESHOLD
from app.settings import ApiSettings, ConfigError, load_settings
from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def run_app(env: dict[str, str], cwd: Path, **kwargs) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "app"],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"DATABASE_URL": "mysql://u:hunter2@db/x"}, "DATABASE_URL"),
        ({"CONFIG_FILE": "/nonexistent/config.yaml"}, "CONFIG_FILE"),
    ],
)
def test_invalid_config_is_one_line_exit_2(tmp_path, env, named):
    process = run_app({**env, "REDIS_PASSWORD": "s3cret-value"}, tmp_path)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert named in lines[0]
    assert "Traceback" not in stderr
    assert "hunter2" not in stderr and "s3cret-value" not in stderr


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("redis_port: [1, 2\n", "config file"),
        ("redis_portt: 6380\n", "REDIS_PORTT"),
        ("redis_port: many\n", "REDIS_PORT"),
    ],
)
def test_bad_config_file_is_one_line_exit_2(tmp_path, content, named):
    config = tmp_path / "config.yaml"
    config.write_text(content)
    process = run_app({"CONFIG_FILE": str(config)}, tmp_path)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert named in stderr and "Traceback" not in stderr


def test_precedence_env_over_file_over_default(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("app_env: from-file\nredis_port: 6390\ncache_ttl_seconds: 60\n")
    monkeypatch.setenv("CONFIG_FILE", str(config))
    monkeypatch.setenv("APP_ENV", "from-env")
    for name in ("REDIS_PORT", "CACHE_TTL_SECONDS", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(ApiSettings)
    assert settings.app_env == "from-env"
    assert settings.redis_port == 6390 and settings.cache_ttl_seconds == 60
    assert settings.log_level == "INFO"
    monkeypatch.setenv("CACHE_TTL_SECONDS", "-1")
    with pytest.raises(ConfigError, match="CACHE_TTL_SECONDS"):
        load_settings(ApiSettings)


async def test_sigterm_drains_in_flight_requests(redis_env, tmp_path):
    """SQLite write lock held by the test keeps POSTs in flight while SIGTERM arrives."""
    port = free_port()
    database = tmp_path / "app.db"
    config = tmp_path / "config.yaml"
    config.write_text("app_env: from-file\nshutdown_grace_seconds: 15\n")
    env = {
        **redis_env,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "DB_TIMEOUT_SECONDS": "10",
        "CONFIG_FILE": str(config),
        "APP_ENV": "from-env",
        "SHUTDOWN_DELAY_SECONDS": "1",
        "LOG_FORMAT": "json",
    }
    process = run_app(env, tmp_path)
    try:
        wait_for_port(port, timeout=20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(100):
                if (await client.get("/health/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            detailed = (await client.get("/health/detailed")).json()
            assert detailed["gc"]["frozen_objects"] > 10_000  # start-up objects frozen
            assert detailed["gc"]["thresholds"][0] == GC_YOUNG_THRESHOLD
            config_body = (await client.get("/api/v1/config")).json()
            assert config_body["app_env"] == "from-env"  # env beats the file
            assert config_body["shutdown_grace_seconds"] == 15  # file beats the default

            blocker = sqlite3.connect(database, timeout=5)
            blocker.execute("BEGIN IMMEDIATE")  # every write now waits for us
            in_flight = [
                asyncio.create_task(
                    client.post("/api/v1/data", json={"key": f"k{n}", "value": "v"})
                )
                for n in range(20)
            ]
            await asyncio.sleep(0.5)
            assert not any(task.done() for task in in_flight)

            sigterm_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            async with httpx.AsyncClient(timeout=5) as fresh:
                ready = await fresh.get(f"http://127.0.0.1:{port}/health/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "shutting_down"

            await asyncio.sleep(1.2)  # past the delay: Hypercorn is draining now
            assert not any(task.done() for task in in_flight)
            blocker.rollback()
            blocker.close()
            responses = await asyncio.gather(*in_flight)
        assert [r.status_code for r in responses] == [201] * 20
        returncode = await asyncio.to_thread(process.wait, 15)
        assert returncode == 0
        assert time.monotonic() - sigterm_at < 15
        _, stderr = process.communicate(timeout=5)
        assert "Traceback" not in stderr
        lines = [json.loads(line) for line in stderr.splitlines()]
        assert "exited cleanly" in [line["message"] for line in lines]
        # Access lines are written in batches: the clean exit must still flush all 20.
        posts = [line for line in lines if line.get("route") == "/api/v1/data"]
        assert [line["status"] for line in posts] == [201] * 20
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
