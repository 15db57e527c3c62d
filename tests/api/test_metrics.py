"""/metrics: Prometheus text with bounded label sets and the figures of issue 2."""

from __future__ import annotations

import random
import re
import string

import pytest

from app.redis_client import CLEANUP_STATS_KEY
from tests.api.conftest import Instance, api_settings, running

SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ", re.M)


@pytest.fixture
async def api(redis_env, sqlite_url):
    async with running(api_settings(redis_env, sqlite_url)) as instance:
        yield instance


async def scrape(api: Instance) -> str:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return (await response.get_data()).decode()


def series(text: str) -> set[str]:
    return {match.group(0) for match in SERIES.finditer(text)}


async def test_request_series_use_route_templates(api: Instance):
    await api.post("user:1", "v")
    await api.get("user:1")
    await api.get("user:2")
    text = await scrape(api)
    assert 'http_requests_total{method="GET",route="/api/v1/data/<key>",status="200"} 1' in text
    assert 'http_requests_total{method="GET",route="/api/v1/data/<key>",status="404"} 1' in text
    assert 'http_requests_total{method="POST",route="/api/v1/data",status="201"} 1' in text
    assert (
        'http_request_duration_seconds_count{method="GET",route="/api/v1/data/<key>",status="200"}'
        in text
    )
    assert "user:1" not in text and "user:2" not in text


async def test_random_url_scan_adds_no_series(api: Instance):
    await api.client.get("/warm-up/unknown")
    await api.client.post("/also/unknown")
    await api.client.get("/api/v1/data/never-there")
    await scrape(api)  # the scrape's own series exists from now on
    before = series(await scrape(api))
    rng = random.Random(7)
    for _ in range(50):
        path = "/" + "/".join(
            "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(1, 12)))
            for _ in range(rng.randint(1, 4))
        )
        method = rng.choice(["GET", "POST"])
        response = await api.client.open(path, method=method)
        assert response.status_code in (404, 405)
    for _ in range(10):  # random keys on a real route: same template, same series
        await api.client.get("/api/v1/data/" + "".join(rng.choices(string.ascii_letters, k=20)))
    after = series(await scrape(api))
    assert after - before == set(), sorted(after - before)


async def test_dependency_and_cache_figures(api: Instance, redis_server):
    await api.post("k", "v")
    await api.wait_cache_trusted()
    await api.get("k")
    await api.get("k")
    redis_server.cli(
        "HSET",
        CLEANUP_STATS_KEY,
        "runs",
        "3",
        "records_deleted",
        "42",
        "keys_deleted",
        "7",
        "last_success_timestamp",
        "1700000000.5",
        "last_duration_seconds",
        "0.25",
        "failures",
        "2",
    )
    text = await scrape(api)
    values = {
        m.group(1) + (m.group(2) or ""): line
        for line in text.splitlines()
        if (m := SERIES.match(line))
    }
    assert "cache_hits_total 1" in text and "cache_misses_total 1" in text
    assert "redis_connected 1" in text and "database_up 1" in text
    assert 'app_info{version="0.1.0"} 1' in text
    assert 'cache_operation_duration_seconds_count{operation="get"} 2' in text
    assert 'cache_operation_duration_seconds_count{operation="fill"} 1' in text
    for name in (
        "redis_memory_used_bytes",
        "redis_connected_clients",
        "redis_commands_processed_total",
    ):
        assert name in values and float(values[name].split()[-1]) > 0, name
    assert "cleanup_job_runs_total 3" in text
    assert "cleanup_records_deleted_total 42" in text
    assert "cleanup_keys_deleted_total 7" in text
    assert "cleanup_last_success_timestamp_seconds 1700000000.5" in text
    assert "cleanup_last_duration_seconds 0.25" in text
    assert "cleanup_job_failures_total 2" in text
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0.0, 0.001, 0.0010001, 0.3, 10.0, 11.0, 1e9],
        [random.Random(seed).expovariate(20) for seed in range(500)],
    ],
)
def test_buckets_agree_with_aioprometheus(values):
    """Our bisect-based histogram value renders exactly what aioprometheus's own does."""
    from aioprometheus.histogram import Histogram as Reference

    from app.metrics import LATENCY_BUCKETS, Buckets

    ours, reference = Buckets(*LATENCY_BUCKETS), Reference(*LATENCY_BUCKETS)
    for value in values:
        ours.observe(value)
        reference.observe(value)
    assert ours.buckets == dict(reference.buckets)
    assert ours.observations == reference.observations == len(values)
    assert ours.sum == pytest.approx(reference.sum)
