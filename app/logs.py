"""Process-wide logging: one JSON object per line (production) or readable text (development)."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from typing import Any

import orjson

from app import SERVICE_NAME, __version__

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonLineFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", "message", <static fields>, <extra fields>}``.

    Written for speed with orjson (the API logs one line per request): the timestamp
    string is rebuilt once per second, extras are copied without renaming passes.
    """

    def __init__(self, static_fields: dict[str, Any]) -> None:
        super().__init__()
        self.static_fields = static_fields
        self._second = -1
        self._stamp = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(second))
            self._second = second
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self.static_fields,
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class BatchingStreamHandler(logging.StreamHandler):
    """A stream handler that writes lines in batches: every ``flush_interval`` seconds,
    at once for WARNING and above, and when ``max_pending_chars`` are waiting.

    Why: the API writes one line per request, and a write(2) per line cost more CPU
    than formatting it (bench/api_bench.py). It is nginx's ``access_log buffer= flush=``
    trade: a SIGKILL can lose up to ``flush_interval`` of INFO lines; a clean exit loses
    none, because ``logging.shutdown`` (atexit) flushes every handler.
    """

    def __init__(
        self, stream: Any, flush_interval: float, max_pending_chars: int = 64 * 1024
    ) -> None:
        super().__init__(stream)
        self.max_pending_chars = max_pending_chars
        self._pending: list[str] = []
        self._pending_chars = 0
        self._stop_flushing = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_every, args=(flush_interval,), name="log-flusher", daemon=True
        )
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler lock held
        try:
            line = self.format(record)
            self._pending.append(line)
            self._pending_chars += len(line)
            if record.levelno >= logging.WARNING or self._pending_chars >= self.max_pending_chars:
                self._write_pending()
        except Exception:  # StreamHandler's contract: report, never raise into the caller
            self.handleError(record)

    def _write_pending(self) -> None:
        if not self._pending:
            return
        batch = self.terminator.join(self._pending) + self.terminator
        self._pending.clear()
        self._pending_chars = 0
        self.stream.write(batch)
        self.stream.flush()

    def flush(self) -> None:
        with self.lock:
            self._write_pending()

    def _flush_every(self, interval: float) -> None:
        while not self._stop_flushing.wait(interval):
            with contextlib.suppress(Exception):  # a broken stream: nobody left to tell
                self.flush()

    def close(self) -> None:
        self._stop_flushing.set()
        with contextlib.suppress(Exception):  # closing must not fail on a broken stream
            self.flush()
        super().close()


def configure_logging(
    level: str, fmt: str, service: str = SERVICE_NAME, *, flush_interval: float | None = None
) -> None:
    """Install a single stderr handler on the root logger; safe to call more than once.

    ``flush_interval`` batches INFO lines (see ``BatchingStreamHandler``); None writes
    every line at once.
    """
    handler: logging.StreamHandler = (
        logging.StreamHandler(sys.stderr)
        if flush_interval is None
        else BatchingStreamHandler(sys.stderr, flush_interval)
    )
    if fmt == "json":
        handler.setFormatter(
            JsonLineFormatter(
                {"service": service, "version": __version__, "hostname": socket.gethostname()}
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    # No format here uses the caller's file/line, thread or process: skip collecting them
    # (the "Optimization" knobs of the logging HOWTO; findCaller walks the stack per call).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for previous in root.handlers:
        if isinstance(previous, BatchingStreamHandler):
            previous.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Hypercorn's access log duplicates our own request log line.
    logging.getLogger("hypercorn.access").disabled = True
    for noisy in ("asyncio", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
