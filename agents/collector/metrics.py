"""The collector's Prometheus metrics and its small HTTP server (/metrics, /healthz).

aioprometheus holds the metrics and renders them; aiohttp (aioprometheus's own server
dependency) serves them next to the health endpoint the DaemonSet's probes use.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aioprometheus import Counter, Gauge, Registry
from aioprometheus.renderer import render

from agents.collector.nodeinfo import NodeInfo
from agents.collector.parse import ParseStats


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.lines = Counter("collector_lines_total", "Log records emitted.", registry=r)
        self.bytes = Counter(
            "collector_bytes_total",
            "Log bytes collected (message lines incl. newline).",
            registry=r,
        )
        self.truncated = Counter(
            "collector_truncated_lines_total",
            "Records cut to MAX_LINE_BYTES (marked, never dropped).",
            registry=r,
        )
        self.parse_errors = Counter(
            "collector_parse_errors_total",
            "Lines in Kubernetes log files that were not CRI (passed through as is).",
            registry=r,
        )
        self.files = Gauge("collector_files_tracked", "Log files currently open.", registry=r)
        self.rotations = Counter(
            "collector_rotations_total",
            "Rotations detected (rename, copytruncate or truncation).",
            registry=r,
        )
        self.checkpoint_writes = Counter(
            "collector_checkpoint_writes_total", "Checkpoint files written.", registry=r
        )
        self.read_lag = Gauge(
            "collector_read_lag_seconds",
            "Age of the newest record read from files not yet read to their end.",
            registry=r,
        )
        self.node_info = Gauge("collector_node_info", "The node the collector runs on.", registry=r)
        for metric in (self.truncated, self.parse_errors, self.rotations, self.checkpoint_writes):
            metric.set({}, 0)
        self.files.set({}, 0)
        self.read_lag.set({}, 0)

    def set_node(self, info: NodeInfo) -> None:
        self.node_info.set(info.labels(), 1)

    def observe(self, namespace: str | None, stats: ParseStats) -> None:
        ns = namespace or ""
        for stream, count in stats.lines.items():
            if count:
                labels = {"namespace": ns, "stream": stream}
                self.lines.add(labels, count)
                self.bytes.add(labels, stats.chars[stream])
        if stats.truncated:
            self.truncated.add({}, stats.truncated)
        if stats.parse_errors:
            self.parse_errors.add({}, stats.parse_errors)

    def total_lines(self) -> int:
        return int(sum(value for _, value in self.lines.get_all()))


class MetricsServer:
    def __init__(self, metrics: CollectorMetrics, healthy: Callable[[], bool]) -> None:
        self.metrics = metrics
        self.healthy = healthy
        self._runner: web.AppRunner | None = None

    async def start(self, port: int, host: str = "0.0.0.0") -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body, headers = render(self.metrics.registry, request.headers.getall("Accept", []))
        return web.Response(body=body, headers=headers)

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.healthy():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="unhealthy\n")
