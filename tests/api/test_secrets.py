"""No secret ever leaves the process: not in any response body, not in any log line."""

from __future__ import annotations

import json
import logging

from app.logs import configure_logging
from tests.api.conftest import api_settings, running

ENDPOINTS = [
    "/health",
    "/health/live",
    "/ready",
    "/health/ready",
    "/health/detailed",
    "/metrics",
    "/api/v1/cache/test",
    "/api/v1/config",
    "/openapi.json",
    "/docs",
    "/api/v1/data/k",
    "/nope",
]


async def test_passwords_never_in_bodies_or_logs(redis_env, postgres_server, postgres_url, capsys):
    redis_password = redis_env["REDIS_PASSWORD"]
    db_password = postgres_server.password
    assert db_password in postgres_url
    configure_logging("DEBUG", "json")
    try:
        async with running(api_settings(redis_env, postgres_url, log_format="json")) as api:
            await api.post("k", "v")
            await api.client.post("/api/v1/data", json={"key": "bad key"})
            bodies = []
            for path in ENDPOINTS:
                response = await api.client.get(path)
                bodies.append((path, (await response.get_data()).decode()))
            config = await (await api.client.get("/api/v1/config")).get_json()
            assert config["database_url"].startswith("postgresql+asyncpg://")
            assert "***" in config["database_url"]
    finally:
        logs = capsys.readouterr().err
        logging.getLogger().handlers.clear()
    for path, body in bodies:
        assert redis_password not in body, path
        assert db_password not in body, path
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("route") == "/api/v1/data/<key>"]
    assert access and all(
        {"timestamp", "level", "message", "service", "version", "hostname"} <= set(line)
        and {"method", "status", "duration_ms", "request_id"} <= set(line)
        for line in access
    )
    assert redis_password not in logs
    assert db_password not in logs
