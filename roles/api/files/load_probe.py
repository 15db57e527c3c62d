"""Bounded HTTP load for verify.yml: GET one URL until told to stop, count failures.

Runs while the API Deployment is restarted; any request that fails or answers with a
status other than the expected one is a dropped request. Bounded both in requests and
in time. Prints one JSON object: {"sent": n, "failed": n, "errors": [...first few...]}.
Exits 0 whatever the count: the playbook asserts on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument(
        "--stop-file",
        type=Path,
        required=True,
        help="stop (after at least --min-seconds) once this file exists",
    )
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=180.0)
    parser.add_argument("--max-requests", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    sent = failed = 0
    errors: list[str] = []
    started = time.monotonic()
    while sent < args.max_requests:
        elapsed = time.monotonic() - started
        if elapsed >= args.max_seconds:
            break
        if elapsed >= args.min_seconds and args.stop_file.exists():
            break
        sent += 1
        try:
            # A new connection per request, like independent clients: kube-proxy
            # balances each one, so a draining pod is not pinned by keep-alive.
            with urllib.request.urlopen(args.url, timeout=args.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            failed += 1
            if len(errors) < 10:
                errors.append(f"{time.monotonic() - started:.1f}s {exc}")
        time.sleep(args.interval)
    json.dump({"sent": sent, "failed": failed, "errors": errors}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
