"""The HTTP contract of issue 2, against SQLite and PostgreSQL (``database_url`` fixture)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from tests.api.conftest import Instance


async def test_post_creates_then_replaces(api: Instance):
    created = await api.post("user:123", "John Doe", ttl=3600)
    assert created.status_code == 201
    body = await created.get_json()
    assert body["key"] == "user:123" and body["value"] == "John Doe"
    assert body["ttl"] == 3600
    replaced = await api.post("user:123", "Jane Doe")
    assert replaced.status_code == 200
    body = await replaced.get_json()
    assert body["value"] == "Jane Doe" and body["ttl"] is None


async def test_get_reads_database_then_cache(api: Instance):
    await api.post("user:1", "John Doe", ttl=600)
    await api.wait_cache_trusted()
    first = await api.get("user:1")
    assert first.status_code == 200
    body = await first.get_json()
    assert body["cached"] is False
    assert body["value"] == "John Doe"
    assert 599 <= body["ttl"] <= 600
    written = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - written).total_seconds()) < 30
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["timestamp"])
    second = await (await api.get("user:1")).get_json()
    assert second["cached"] is True
    assert {k: v for k, v in second.items() if k != "cached"} == {
        k: v for k, v in body.items() if k != "cached"
    }


async def test_record_without_ttl_has_null_ttl(api: Instance):
    await api.post("forever", "x")
    body = await (await api.get("forever")).get_json()
    assert body["ttl"] is None


async def test_expired_record_is_missing(api: Instance):
    await api.post("short", "lived", ttl=1)
    await api.wait_cache_trusted()
    first = await api.get("short")
    assert first.status_code == 200
    assert (await first.get_json())["ttl"] == 1
    await asyncio.sleep(1.1)
    assert (await api.get("short")).status_code == 404
    # Replacing an expired record creates it again.
    assert (await api.post("short", "again")).status_code == 201


async def test_delete(api: Instance):
    await api.post("doomed", "v")
    await api.wait_cache_trusted()
    assert (await api.get("doomed")).status_code == 200
    assert (await (await api.get("doomed")).get_json())["cached"] is True
    deleted = await api.client.delete("/api/v1/data/doomed")
    assert deleted.status_code == 204
    assert await deleted.get_data() == b""
    assert (await api.get("doomed")).status_code == 404
    again = await api.client.delete("/api/v1/data/doomed")
    assert again.status_code == 404
    assert (await again.get_json())["error"] == "not_found"


async def test_missing_key_is_404_json(api: Instance):
    response = await api.get("never-written")
    assert response.status_code == 404
    assert (await response.get_json())["error"] == "not_found"


async def test_cache_test_reports_service_wide_stats(api: Instance):
    await api.post("k", "v")
    await api.wait_cache_trusted()
    await api.get("k")  # miss
    await api.get("k")  # hit
    body = await (await api.client.get("/api/v1/cache/test")).get_json()
    assert body["redis_connected"] is True
    assert body["cache_trusted"] is True
    assert body["round_trip_ms"] > 0
    assert body["total_requests"] == body["hits"] + body["misses"] >= 2
    assert body["hits"] >= 1
    assert 0 < body["cache_hit_rate"] <= 1
    assert body["redis_version"]


async def test_config_shows_effective_settings(api: Instance):
    body = await (await api.client.get("/api/v1/config")).get_json()
    settings = api.state.settings
    assert body["app_env"] == "development"
    assert body["redis_host"] == settings.redis_host
    assert body["version"] == "0.1.0"
    assert body["database_backend"] == settings.database_backend
    assert "password" not in {key.lower() for key in body}
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() not in str(body)


async def test_health_endpoints(api: Instance):
    for path in ("/health", "/health/live"):
        body = await (await api.client.get(path)).get_json()
        assert body["status"] == "healthy"
        assert body["service"] == "cloudnative-journey"
        assert body["version"] == "0.1.0"
        assert body["uptime"] >= 0 and body["timestamp"].endswith("Z")
    for path in ("/ready", "/health/ready"):
        response = await api.client.get(path)
        assert response.status_code == 200
        body = await response.get_json()
        assert body["checks"]["database"]["up"] is True
        assert body["checks"]["redis"]["connected"] is True
    detailed = await (await api.client.get("/health/detailed")).get_json()
    assert detailed["database"]["up"] is True
    assert detailed["database"]["pool"]["pool_class"]
    assert detailed["redis"]["connected"] is True
    assert detailed["memory"]["rss_bytes"] > 10_000_000
    assert detailed["tasks"] >= 2
    assert detailed["python_version"].startswith("3.")
    assert detailed["hostname"]


async def test_openapi_lists_every_route(api: Instance):
    document = await (await api.client.get("/openapi.json")).get_json()
    paths = document["paths"]
    for path in (
        "/api/v1/data",
        "/api/v1/data/{key}",
        "/api/v1/cache/test",
        "/api/v1/config",
        "/health/live",
        "/health/ready",
        "/health/detailed",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/data/{key}"]) >= {"get", "delete"}
    post = paths["/api/v1/data"]["post"]
    assert "requestBody" in post and {"200", "201"} <= set(post["responses"])
    assert (await api.client.get("/docs")).status_code == 200


async def test_request_id_is_taken_or_generated(api: Instance):
    given = await api.client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    generated = await api.client.get("/health/live")
    other = await api.client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-ID"])
    assert generated.headers["X-Request-ID"] != other.headers["X-Request-ID"]
    unsafe = await api.client.get("/health/live", headers={"X-Request-ID": "a\tb" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["X-Request-ID"])
    missing = await api.get("nothing-here")
    assert missing.status_code == 404 and "X-Request-ID" in missing.headers
