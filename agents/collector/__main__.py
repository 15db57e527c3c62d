"""``python -m agents.collector``: the DaemonSet's program.

Exit codes: 0 after SIGTERM/SIGINT (records flushed, checkpoint written), 1 when it
cannot run (STATE_DIR unusable, metrics port taken, stdout gone), 2 for bad settings.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time

from agents.collector.checkpoint import CheckpointStore, StateDirError
from agents.collector.collector import Collector
from agents.collector.emit import StdoutSink
from agents.collector.metrics import CollectorMetrics, MetricsServer
from agents.collector.nodeinfo import read_node_info
from app import __version__
from app.logs import configure_logging
from app.settings import CollectorSettings, ConfigError, load_settings

log = logging.getLogger("agents.collector")

SERVICE = "cloudnative-collector"


async def run(settings: CollectorSettings) -> int:
    metrics = CollectorMetrics()
    node = read_node_info(settings.node_name)
    metrics.set_node(node)
    log.info("collector starting", extra={"version": __version__, **node.labels()})

    store = CheckpointStore(settings.state_dir)
    try:
        store.acquire()
    except StateDirError as exc:
        log.error(str(exc))
        return 1
    sink = StdoutSink(store, on_checkpoint=lambda: metrics.checkpoint_writes.inc({}))
    collector = Collector(settings, metrics, store, sink)
    stale_after = max(30.0, 10 * settings.scan_interval)

    def healthy() -> bool:
        # The read loop ticks at least every SCAN_INTERVAL unless stuck or back-pressured
        # for long; a dead writer thread means nothing reaches stdout any more.
        return sink.alive and time.monotonic() - collector.heartbeat < stale_after

    server = MetricsServer(metrics, healthy)
    try:
        await server.start(settings.metrics_port)
    except OSError as exc:
        log.error(
            "cannot serve metrics", extra={"port": settings.metrics_port, "error": exc.strerror}
        )
        store.release()
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    sink.start()
    try:
        collector.restore()
        await collector.run(stop)
    finally:
        # Stop reading, write what is queued, save the checkpoint for what was written.
        await sink.close()
        collector.close()
        await server.stop()
        store.release()
    if sink.error is not None:
        log.error("stdout closed, stopping", extra={"error": str(sink.error)})
        return 1
    log.info("collector stopped", extra={"lines": metrics.total_lines()})
    return 0


def main() -> None:
    try:
        settings = load_settings(CollectorSettings)
    except ConfigError as exc:
        print(f"{SERVICE}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format, service=SERVICE)
    raise SystemExit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
