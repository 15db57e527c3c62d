"""`make bench`: every benchmark, one after the other, each in its own process.

Each prints its own table next to its same-run baseline; see bench/README.md.
Extra arguments are not passed through: run a module directly to tune it.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = (
    ("API vs bare Quart+Redis", "bench.api_bench"),
    ("log collector vs bare loop and rsyslog imfile", "bench.collector_bench"),
    ("cleanup job vs redis-cli --scan", "bench.cleanup_bench"),
)


def main() -> int:
    failed = []
    for title, module in BENCHMARKS:
        print(f"\n=== {title}: python -m {module}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", module], check=False)
        print(f"=== {module}: exit {result.returncode} after {time.monotonic() - started:.0f}s")
        if result.returncode != 0:
            failed.append(module)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
