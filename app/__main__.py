"""``python -m app``: serve the API with Hypercorn (uvloop, one worker) until SIGTERM/SIGINT.

Shutdown order: readiness turns 503 at once, requests are still served for
``shutdown_delay_seconds`` (Kubernetes removes the pod from its Service meanwhile), then
Hypercorn stops accepting and drains in-flight requests, then the pools close; exit 0.
The whole sequence stays within ``shutdown_grace_seconds``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from typing import TYPE_CHECKING

from app.settings import ApiSettings, ConfigError, load_settings

if TYPE_CHECKING:
    from hypercorn.config import Config

# The web stack is imported only after the settings are valid: a config error is
# reported at once, without paying for importing Quart, SQLAlchemy and Hypercorn.

log = logging.getLogger("app")

# INFO lines (one per request) reach stderr in batches at least this often; WARNING and
# above at once. See app.logs.BatchingStreamHandler.
LOG_FLUSH_INTERVAL_SECONDS = 0.5
GC_YOUNG_THRESHOLD = 5_000  # see tune_garbage_collector


def hypercorn_config(settings: ApiSettings) -> Config:
    from hypercorn.config import Config

    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.workers = 1  # one registry per process: scale with replicas, not workers
    config.worker_class = "uvloop"
    config.graceful_timeout = max(
        0.0, settings.shutdown_grace_seconds - settings.shutdown_delay_seconds
    )
    config.accesslog = None  # app/requestlog.py writes one line per request
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def tune_garbage_collector() -> None:
    """Tune the cyclic collector for a long-running server, once start-up is done.

    * Freeze everything built so far (modules, models, routes, pools): those objects live
      as long as the process, yet every full collection walked all ~100k of them while
      requests waited (~45 ms each; the API's p99 was twice the baseline's).
    * Collect the young generation every ``GC_YOUNG_THRESHOLD`` net allocations instead
      of 700: at 700 it ran every ~25 requests and cost ~12 us per request, at 5,000
      ~2 us (measured with gc.callbacks under bench/api_bench.py load). Cyclic garbage
      waits a little longer; memory stays bounded by the threshold.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


async def serve_until_signalled(settings: ApiSettings) -> None:
    from hypercorn.asyncio import serve

    from app.factory import create_app
    from app.state import STATE_EXTENSION, AppState

    app = create_app(settings)
    app.before_serving(tune_garbage_collector)  # runs after the app's own start-up hook
    state: AppState = app.extensions[STATE_EXTENSION]
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)

    async def shutdown_trigger() -> None:
        await stop_requested.wait()
        state.shutting_down = True  # readiness answers 503 from now on
        log.info(
            "shutdown requested: readiness is now 503",
            extra={"delay_seconds": settings.shutdown_delay_seconds},
        )
        delay = min(settings.shutdown_delay_seconds, settings.shutdown_grace_seconds)
        if delay > 0:
            await asyncio.sleep(delay)
        log.info("draining in-flight requests")

    await serve(app, hypercorn_config(settings), shutdown_trigger=shutdown_trigger)


def main() -> int:
    try:
        settings = load_settings(ApiSettings)
    except ConfigError as exc:
        print(f"cloudnative-api: {exc}", file=sys.stderr)
        return 2
    from app.logs import configure_logging

    configure_logging(
        settings.log_level, settings.log_format, flush_interval=LOG_FLUSH_INTERVAL_SECONDS
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve_until_signalled(settings))
    except OSError as exc:  # e.g. the port is taken
        log.error("cannot serve", extra={"error": f"{type(exc).__name__}: {exc.strerror}"})
        print(
            f"cloudnative-api: cannot serve on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    log.info("exited cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
