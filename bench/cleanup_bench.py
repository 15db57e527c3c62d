"""Time the cleanup job's orphan sweep over 1,000,000 cache keys and probe Redis meanwhile.

    python -m bench.cleanup_bench [--keys 1000000] [--orphan-share 0.1] [--repeat 3]
                                  [--batch-sizes 500] [--probe-interval-ms 2]

Starts its own redis-server on loopback (no persistence: we measure the sweep, not the
disk), loads the keys with ``redis-cli --pipe`` (a share of them without TTL: the
orphans), then, in the same run:

* baseline: ``redis-cli --scan --pattern 'cnj:cache:*' | wc -l`` (lists keys only);
* the real job, ``python -m agents.cleanup`` (SQLite in a temp dir, so the database
  phase is empty), once as ``--dry-run``, then ``--repeat`` times for real per batch
  size, alternating with the baseline (the orphans are put back after each run);
* a probe task that PINGs Redis every few ms on its own connection while each of the
  above runs: p50/p99/max round trip, i.e. how much the sweep delays other clients.

Prints the job's wall time, its own ``duration_seconds``, the ratio to the redis-cli scan,
probe latencies and the job's peak RSS. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from app.redis_client import CACHE_KEY_PREFIX
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[1]
PATTERN = CACHE_KEY_PREFIX + "*"
VALUE = b"x" * 32
CACHE_TTL_SECONDS = 3600
LOAD_CHUNK = 100_000  # keys per chunk of RESP protocol handed to redis-cli --pipe


@dataclass
class ProcessRun:
    returncode: int
    stdout: str
    stderr: str
    wall_seconds: float
    peak_rss_mib: float


@dataclass
class ProbeStats:
    samples: list[float] = field(default_factory=list)  # round trips in ms

    def describe(self) -> str:
        if not self.samples:
            return "no samples"
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"p50 {statistics.median(ordered):.3f} ms, p99 {p99:.3f} ms, "
            f"max {ordered[-1]:.3f} ms ({len(ordered)} PINGs)"
        )

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


def resp_set_commands(keys: range, prefix: bytes, with_ttl: bool) -> bytes:
    """SET commands in the Redis protocol, the input ``redis-cli --pipe`` wants."""
    ttl = str(CACHE_TTL_SECONDS).encode()
    parts = []
    for number in keys:
        key = prefix + str(number).encode()
        args = [b"SET", key, VALUE, b"EX", ttl] if with_ttl else [b"SET", key, VALUE]
        parts.append(b"*%d\r\n" % len(args))
        for arg in args:
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def bench_client(server: RedisServer) -> aioredis.Redis:
    """A client of the probe's own (not the job's pool), so it measures Redis, not us."""
    return aioredis.Redis(port=server.port, password=server.password)


def pipe_load(server: RedisServer, keys: range, prefix: bytes, with_ttl: bool) -> None:
    for start in range(keys.start, keys.stop, LOAD_CHUNK):
        chunk = range(start, min(start + LOAD_CHUNK, keys.stop))
        subprocess.run(
            ["redis-cli", "-p", str(server.port), "--pipe"],
            input=resp_set_commands(chunk, prefix, with_ttl),
            env=server.cli_env,
            capture_output=True,
            check=True,
        )


def run_measured(argv: list[str], env: dict[str, str], shell: bool = False) -> ProcessRun:
    """Run a process to its end; wait4 gives this child's own peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv if not shell else argv[0],
        shell=shell,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak_kib = 0
    with ThreadPoolExecutor(2) as readers:
        stdout = readers.submit(process.stdout.read)
        stderr = readers.submit(process.stderr.read)
        # Not wait4's ru_maxrss: Linux carries the pre-exec high-water mark of the
        # (v)forked bench process into it. VmHWM belongs to the child's own image.
        while process.poll() is None:
            peak_kib = max(peak_kib, _vm_hwm_kib(process.pid))
            time.sleep(0.02)
        out, err = stdout.result(), stderr.result()
    return ProcessRun(
        returncode=process.returncode,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        wall_seconds=time.perf_counter() - started,
        peak_rss_mib=peak_kib / 1024,
    )


def _vm_hwm_kib(pid: int) -> int:
    """Peak resident set of a running process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


async def probe_while(
    server: RedisServer, work: Callable[[], ProcessRun], interval_ms: float
) -> tuple[ProcessRun, ProbeStats]:
    """Run ``work`` in a thread while this loop PINGs Redis every ``interval_ms``."""
    stats = ProbeStats()
    client = bench_client(server)
    await client.ping()  # connect before timing
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await client.ping()
            stats.samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(interval_ms / 1000)

    prober = asyncio.create_task(probe())
    try:
        result = await asyncio.to_thread(work)
    finally:
        done.set()
        await prober
        await client.aclose()
    return result, stats


async def idle_probe(server: RedisServer, seconds: float, interval_ms: float) -> ProbeStats:
    def wait() -> ProcessRun:
        time.sleep(seconds)
        return ProcessRun(0, "", "", seconds, 0.0)

    _, stats = await probe_while(server, wait, interval_ms)
    return stats


async def reset_server_stats(server: RedisServer) -> None:
    client = bench_client(server)
    try:
        await client.config_resetstat()
    finally:
        await client.aclose()


async def script_latency(server: RedisServer) -> str:
    """Server-side time of the job's per-page script calls (Redis 7 latency tracking)."""
    client = bench_client(server)
    try:
        stats = await client.info("commandstats")
        percentiles = await client.info("latencystats")
    finally:
        await client.aclose()
    calls = stats.get("cmdstat_evalsha", {})
    tracked = percentiles.get("latency_percentiles_usec_evalsha", {})
    if not calls:
        return "no script calls"
    parts = [f"{calls['calls']} calls, mean {calls['usec_per_call']:.0f} us"]
    parts += [f"{name} {value:.0f} us" for name, value in tracked.items()]
    return ", ".join(parts)


def job_env(server: RedisServer, workdir: Path, batch_size: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CONFIG_FILE"}
    env.update(
        {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(server.port),
            "REDIS_PASSWORD": server.password,
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bench.db",
            "CLEANUP_BATCH_SIZE": str(batch_size),
            "LOG_FORMAT": "json",
        }
    )
    return env


def job_summary(run: ProcessRun) -> dict:
    if run.returncode != 0:
        sys.exit(f"cleanup job failed (exit {run.returncode}): {run.stderr.strip()}")
    return json.loads(run.stdout.strip().splitlines()[-1])


async def main_async(args: argparse.Namespace) -> None:
    orphans = int(args.keys * args.orphan_share)
    with_ttl = args.keys - orphans
    orphan_prefix = (CACHE_KEY_PREFIX + "orphan:").encode()
    with (
        RedisServer(options={"appendonly": "no"}) as server,
        tempfile.TemporaryDirectory(prefix="cleanup-bench-db-") as tmp,
    ):
        print(f"{args.keys:,} keys under {PATTERN!r}, {orphans:,} of them without TTL")
        started = time.perf_counter()
        pipe_load(server, range(with_ttl), (CACHE_KEY_PREFIX + "entry:").encode(), True)
        pipe_load(server, range(orphans), orphan_prefix, False)
        print(f"load (redis-cli --pipe): {time.perf_counter() - started:.2f} s")

        idle = await idle_probe(server, 1.0, args.probe_interval_ms)
        print(f"probe, idle Redis:                     {idle.describe()}")

        scan_command = f"redis-cli -p {server.port} --scan --pattern '{PATTERN}' | wc -l"
        job_command = [sys.executable, "-m", "agents.cleanup"]

        async def baseline_scan() -> tuple[ProcessRun, ProbeStats]:
            return await probe_while(
                server,
                lambda: run_measured([scan_command], server.cli_env, shell=True),
                args.probe_interval_ms,
            )

        async def cleanup(env: dict[str, str], *flags: str) -> tuple[ProcessRun, ProbeStats]:
            await reset_server_stats(server)
            return await probe_while(
                server,
                lambda: run_measured([*job_command, *flags], env),
                args.probe_interval_ms,
            )

        for batch_size in args.batch_sizes:
            env = job_env(server, Path(tmp), batch_size)
            print(f"\n-- CLEANUP_BATCH_SIZE={batch_size} (SCAN COUNT per page) --")
            dry, probe = await cleanup(env, "--dry-run")
            summary = job_summary(dry)
            print(
                f"dry run: wall {dry.wall_seconds:.2f} s, job {summary['duration_seconds']:.2f} s, "
                f"scanned {summary['keys_scanned']:,}, would delete {summary['keys_deleted']:,}; "
                f"probe {probe.describe()}"
            )
            # Alternate baseline and job so both see the same machine conditions.
            scans, walls, durations, rss = [], [], [], []
            scan_probe, job_probe = ProbeStats(), ProbeStats()
            for repetition in range(1, args.repeat + 1):
                scan, probe = await baseline_scan()
                scans.append(scan.wall_seconds)
                scan_probe.samples += probe.samples
                real, probe = await cleanup(env)
                summary = job_summary(real)
                walls.append(real.wall_seconds)
                durations.append(summary["duration_seconds"])
                rss.append(real.peak_rss_mib)
                job_probe.samples += probe.samples
                print(
                    f"run {repetition}: redis-cli --scan | wc -l {scan.wall_seconds:.2f} s "
                    f"({int(scan.stdout.strip()):,} keys); cleanup wall {real.wall_seconds:.2f} s, "
                    f"job {summary['duration_seconds']:.2f} s, "
                    f"scanned {summary['keys_scanned']:,}, deleted {summary['keys_deleted']:,}; "
                    "Redis-side per page: "
                    f"{await script_latency(server)}"
                )
                pipe_load(server, range(orphans), orphan_prefix, False)  # orphans back
            scan_s, wall_s, job_s = (statistics.median(v) for v in (scans, walls, durations))
            print(f"median redis-cli --scan | wc -l: {scan_s:.2f} s; probe {scan_probe.describe()}")
            print(
                f"median cleanup: wall {wall_s:.2f} s (incl. Python start-up), "
                f"job {job_s:.2f} s; probe {job_probe.describe()}; "
                f"peak RSS {max(rss):.0f} MiB"
            )
            print(
                f"RESULT batch {batch_size}: cleanup/redis-cli = {wall_s / scan_s:.2f}x wall, "
                f"{job_s / scan_s:.2f}x job (target <= 2x); "
                f"probe p99 {job_probe.p99:.2f} ms (target < 10 ms)"
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cleanup_bench", description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--orphan-share", type=float, default=0.1)
    parser.add_argument(
        "--batch-sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[500],
        help="comma-separated CLEANUP_BATCH_SIZE values to run the job with (default 500)",
    )
    parser.add_argument("--probe-interval-ms", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per batch size (median)")
    return parser.parse_args()


def main() -> None:
    asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    main()
