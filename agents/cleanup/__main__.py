"""``python -m agents.cleanup [--dry-run]`` (console script ``cloudnative-cleanup``)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from agents.cleanup.run import run_cleanup
from app.logs import configure_logging
from app.settings import CleanupSettings, ConfigError, load_settings

EXIT_CONFIG_ERROR = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agents.cleanup",
        description="Delete expired records and orphaned (TTL-less) cache keys, once.",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would be deleted and delete nothing",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(CleanupSettings)
    except ConfigError as exc:
        print(f"cloudnative-cleanup: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(run_cleanup(settings, dry_run=args.dry_run))


if __name__ == "__main__":
    sys.exit(main())
