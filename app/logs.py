"""Process-wide logging: one JSON object per line (production) or readable text (development)."""

from __future__ import annotations

import logging
import socket
import sys
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


def configure_logging(level: str, fmt: str, service: str = SERVICE_NAME) -> None:
    """Install a single stderr handler on the root logger; safe to call more than once."""
    handler = logging.StreamHandler(sys.stderr)
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
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Hypercorn's access log duplicates our own request log line.
    logging.getLogger("hypercorn.access").disabled = True
    for noisy in ("asyncio", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
