"""Process-wide logging: one JSON object per line (production) or readable text (development)."""

from __future__ import annotations

import logging
import socket
import sys

from pythonjsonlogger.orjson import OrjsonFormatter

from app import SERVICE_NAME, __version__

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str, fmt: str, service: str = SERVICE_NAME) -> None:
    """Install a single stderr handler on the root logger; safe to call more than once."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        # orjson: the access log writes one line per request, so formatting is hot.
        handler.setFormatter(
            OrjsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
                static_fields={
                    "service": service,
                    "version": __version__,
                    "hostname": socket.gethostname(),
                },
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Hypercorn's access log duplicates our own request log line.
    logging.getLogger("hypercorn.access").disabled = True
    for noisy in ("asyncio", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
