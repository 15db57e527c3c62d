"""Prometheus metrics of one API process (aioprometheus registry, rendered at /metrics).

Request series are labelled by the route *template* so a scan of random URLs cannot
create new series. Gauges about dependencies and the Redis/cleanup-job figures are read
at scrape time, so the request path only pays for two in-memory updates.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import TYPE_CHECKING

from aioprometheus import Counter, Gauge, Histogram, Registry
from aioprometheus.renderer import render

from app import __version__
from app.redis_client import CLEANUP_STATS_KEY

if TYPE_CHECKING:
    from app.state import AppState

UNMATCHED_ROUTE = "<unmatched>"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CLEANUP_FIELDS = {
    # Redis hash field (written by agents/cleanup) -> exported metric
    "runs": "cleanup_job_runs_total",
    "failures": "cleanup_job_failures_total",
    "records_deleted": "cleanup_records_deleted_total",
    "keys_deleted": "cleanup_keys_deleted_total",
    "last_success_timestamp": "cleanup_last_success_timestamp_seconds",
    "last_duration_seconds": "cleanup_last_duration_seconds",
}
REDIS_INFO_FIELDS = {
    "used_memory": "redis_memory_used_bytes",
    "connected_clients": "redis_connected_clients",
    "total_commands_processed": "redis_commands_processed_total",
}


class Buckets:
    """One label set's histogram value, in the shape aioprometheus renders.

    aioprometheus's own value class bumps every cumulative bucket on each observation;
    this one finds the single bucket with a bisect and makes the counts cumulative when
    scraped (two observations per request: the hot path, bench/api_bench.py).
    """

    def __init__(self, *upper_bounds: float) -> None:
        self.upper_bounds = [*sorted(upper_bounds), float("inf")]
        self.counts = [0] * len(self.upper_bounds)
        self.observations = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.upper_bounds, value)] += 1
        self.observations += 1
        self.sum += value

    @property
    def buckets(self) -> dict[float, int]:
        """Upper bound -> observations at or below it (Prometheus ``le`` buckets)."""
        cumulative: dict[float, int] = {}
        total = 0
        for bound, count in zip(self.upper_bounds, self.counts, strict=True):
            total += count
            cumulative[bound] = total
        return cumulative


class Metrics:
    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.requests = Counter("http_requests_total", "HTTP requests handled.", registry=r)
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "Time from request start to response, in seconds.",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.cache_hits = Counter("cache_hits_total", "Cache lookups served by Redis.", registry=r)
        self.cache_misses = Counter(
            "cache_misses_total", "Cache lookups that went to the database.", registry=r
        )
        self.cache_operation_duration = Histogram(
            "cache_operation_duration_seconds",
            "Redis cache operations (get, fill, invalidate), in seconds.",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.redis_connected = Gauge(
            "redis_connected", "1 if the last Redis call succeeded.", registry=r
        )
        self.database_up = Gauge("database_up", "1 if the database answers.", registry=r)
        self.app_info = Gauge("app_info", "Build information.", registry=r)
        self.app_info.set({"version": __version__}, 1)
        self.redis_gauges = {
            name: (Counter if name.endswith("_total") else Gauge)(
                name, f"Redis INFO {field}.", registry=r
            )
            for field, name in REDIS_INFO_FIELDS.items()
        }
        self.cleanup_gauges = {
            name: (Counter if name.endswith("_total") else Gauge)(
                name, f"Cleanup job: {field} (from Redis {CLEANUP_STATS_KEY}).", registry=r
            )
            for field, name in CLEANUP_FIELDS.items()
        }
        self._redis_info_read_at = float("-inf")
        # Hot path: one bucket set per label combination, registered with the collector
        # once and then updated in place; the request counter is derived at scrape time.
        self._request_series: dict[tuple[str, str, int], tuple[dict[str, str], Buckets]] = {}
        self._cache_series: dict[str, Buckets] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self._request_series.get((method, route, status))
        if series is None:
            labels = {"method": method, "route": route, "status": str(status)}
            series = (labels, Buckets(*LATENCY_BUCKETS))
            self.request_duration.set_value(labels, series[1])
            self._request_series[(method, route, status)] = series
        series[1].observe(seconds)

    def observe_cache_operation(self, operation: str, seconds: float) -> None:
        buckets = self._cache_series.get(operation)
        if buckets is None:
            buckets = self._cache_series[operation] = Buckets(*LATENCY_BUCKETS)
            self.cache_operation_duration.set_value({"operation": operation}, buckets)
        buckets.observe(seconds)

    async def render(self, state: AppState, accept: list[str]) -> tuple[bytes, dict[str, str]]:
        health = state.health
        for labels, buckets in self._request_series.values():
            self.requests.set(labels, buckets.observations)
        self.redis_connected.set({}, 1 if health.redis_connected else 0)
        self.database_up.set({}, 1 if health.database_up else 0)
        if state.cache is not None:
            self.cache_hits.set({}, state.cache.hits)
            self.cache_misses.set({}, state.cache.misses)
        await self._refresh_redis_figures(state)
        return render(self.registry, accept)

    async def _refresh_redis_figures(self, state: AppState) -> None:
        """INFO and the cleanup hash, cached for redis_info_cache_seconds (scrapes are cheap)."""
        now = time.monotonic()
        if state.redis is None or now - self._redis_info_read_at < (
            state.settings.redis_info_cache_seconds
        ):
            return
        self._redis_info_read_at = now
        try:
            pipe = state.redis.pipeline(transaction=False)
            pipe.info()
            pipe.hgetall(CLEANUP_STATS_KEY)
            info, cleanup = await pipe.execute()
        except Exception:  # Redis down: keep the last figures, redis_connected says why
            return
        for field, name in REDIS_INFO_FIELDS.items():
            if field in info:
                self.redis_gauges[name].set({}, float(info[field]))
        for field, name in CLEANUP_FIELDS.items():
            try:
                self.cleanup_gauges[name].set({}, float(cleanup[field]))
            except (KeyError, ValueError):
                continue
