"""Load the API with wrk on loopback and compare it with a bare Quart + Redis baseline.

    python -m bench.api_bench [--duration 4] [--rounds 4] [--connections 32] [--threads 1]

Starts its own redis-server, the full API (``python -m app``: JSON logs to a file,
metrics, validation, SQLite) and ``bench.baseline_app`` (one Redis GET per request, same
Hypercorn settings), then runs each scenario against both, alternating, bounded in time.
Prints req/s, p50, p99 and the server's RSS; figures are printed, never asserted.
See bench/README.md for how to read them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.servers import PostgresServer, RedisServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
HOT_KEY = "bench:hot"
HOT_VALUE = "v" * 100

# Each request POSTs a new key (a counter per wrk thread), as a client creating records.
POST_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local key = "bench:post:" .. tostring(counter) .. ":" .. tostring(math.random(1, 1000000))
  local body = '{"key": "' .. key .. '", "value": "' .. string.rep("x", 64) .. '"}'
  local path = PATH_PREFIX .. (KEY_IN_PATH and key or "")
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end
"""


@dataclass
class Scenario:
    name: str
    api_path: str
    baseline_path: str
    post: bool = False
    note: str = ""


SCENARIOS = [
    Scenario("GET cached key", f"/api/v1/data/{HOT_KEY}", f"/api/v1/data/{HOT_KEY}"),
    Scenario(
        "GET missing key",
        "/api/v1/data/bench:absent",
        "/api/v1/data/bench:absent",
        note="404 path: cache miss + fill lease + DB read every time (nothing to cache)",
    ),
    Scenario("POST new key", "/api/v1/data", "/api/v1/data/", post=True),
]


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    unexpected_status: int
    rss_mib: float
    cpu_us_per_request: float


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparseable wrk latency {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rps, p50, p99, errors, int(non_2xx.group(1)) if non_2xx else 0


@contextlib.contextmanager
def database_url(kind: str, workdir: Path) -> Iterator[str]:
    """SQLite (the embedded default) or a PostgreSQL 15 of our own (the cluster's)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir}/app.db"
        return
    server = PostgresServer().init().start()
    try:
        yield server.create_database("bench")
    finally:
        server.close()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[dict[str, str]]:
    # Production-like persistence (AOF, fsync every second), not the tests' fsync-always.
    with RedisServer(workdir=workdir, options={"appendfsync": "everysec"}) as server:
        yield server.env


def split_cpus() -> tuple[set[int], set[int]]:
    """(CPUs for the server under test, CPUs for wrk and Redis).

    With two or more CPUs the server gets one to itself: otherwise wrk and Redis take
    turns on the server's core at random, which swung one server's figure by ±10 %
    between rounds here. Both servers are measured on the same core.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return {cpus[0]}, set(cpus[1:])


@contextlib.contextmanager
def server(
    module: str, env: dict[str, str], log_path: Path, cpus: set[int] | None = None
) -> Iterator[tuple[int, int]]:
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, "PYTHONPATH": str(ROOT), **env, "PORT": str(port)},
            cwd=log_path.parent,
            stdout=log,
            stderr=log,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        try:
            wait_for_port(port, timeout=30)
            yield port, process.pid
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def prepare_api(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while http("GET", base + "/health/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not become ready")
        time.sleep(0.2)
    http("POST", base + "/api/v1/data", {"key": HOT_KEY, "value": HOT_VALUE})
    # Until the reconciler has drained the write and trusts the cache, GETs read the DB.
    while not http("GET", f"{base}/api/v1/data/{HOT_KEY}")[1].get("cached"):
        if time.monotonic() > deadline:
            raise RuntimeError("the cache never became trusted")
        time.sleep(0.2)


def run_wrk(
    port: int, scenario: Scenario, *, baseline: bool, args: argparse.Namespace, workdir: Path
) -> tuple[float, float, float, int, int]:
    path = scenario.baseline_path if baseline else scenario.api_path
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    if scenario.post:
        script = workdir / ("post_baseline.lua" if baseline else "post_api.lua")
        script.write_text(
            f'PATH_PREFIX = "{path}"\nKEY_IN_PATH = {"true" if baseline else "false"}\n'
            + POST_SCRIPT
        )
        command += ["-s", str(script)]
    command.append(f"http://127.0.0.1:{port}{path if not scenario.post else ''}")
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=args.duration + 30
    ).stdout
    return parse_wrk(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=int, default=4, help="seconds per round (per server and scenario)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the API's database: the embedded default or the cluster's (needs root)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"api_bench: {tool} not installed (apt-get install wrk redis-server)")
            return 2

    server_cpus, load_cpus = split_cpus()
    os.sched_setaffinity(0, load_cpus)  # inherited by redis-server and wrk
    args.server_cpus = ",".join(map(str, sorted(server_cpus)))
    args.load_cpus = ",".join(map(str, sorted(load_cpus)))
    workdir = Path(tempfile.mkdtemp(prefix="api-bench-"))
    results: dict[tuple[str, str], Result] = {}
    try:
        with redis_server(workdir) as redis_env, database_url(args.database, workdir) as db_url:
            api_env = {
                **redis_env,
                "HOST": "127.0.0.1",
                "APP_ENV": "production",
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "INFO",
                "DATABASE_URL": db_url,
            }
            with (
                server("app", api_env, workdir / "api.log", server_cpus) as (api_port, api_pid),
                server(
                    "bench.baseline_app",
                    {**redis_env, "HOST": "127.0.0.1"},
                    workdir / "base.log",
                    server_cpus,
                ) as (base_port, base_pid),
            ):
                prepare_api(api_port)
                subprocess.run(
                    ["redis-cli", "-p", redis_env["REDIS_PORT"], "SET", HOT_KEY, HOT_VALUE],
                    env={**os.environ, "REDISCLI_AUTH": redis_env["REDIS_PASSWORD"]},
                    check=True,
                    capture_output=True,
                )
                warm = argparse.Namespace(**{**vars(args), "duration": 2})
                for port, baseline in ((base_port, True), (api_port, False)):
                    run_wrk(port, SCENARIOS[0], baseline=baseline, args=warm, workdir=workdir)
                servers = [
                    ("baseline", base_port, base_pid, True),
                    ("api", api_port, api_pid, False),
                ]
                for scenario in SCENARIOS:
                    runs: dict[str, list[tuple[float, float, float, int, int]]] = {
                        "baseline": [],
                        "api": [],
                    }
                    cpu_us: dict[str, list[float]] = {"baseline": [], "api": []}
                    # Short alternating rounds: background load on the machine then hits
                    # both servers alike instead of skewing one of them.
                    for round_number in range(args.rounds):
                        order = servers if round_number % 2 == 0 else servers[::-1]
                        for label, port, pid, baseline in order:
                            cpu_before = sum(psutil.Process(pid).cpu_times()[:2])
                            measured = run_wrk(
                                port, scenario, baseline=baseline, args=args, workdir=workdir
                            )
                            cpu = sum(psutil.Process(pid).cpu_times()[:2]) - cpu_before
                            cpu_us[label].append(cpu * 1e6 / max(1.0, measured[0] * args.duration))
                            runs[label].append(measured)
                    for label, _port, pid, _baseline in servers:
                        rss = psutil.Process(pid).memory_info().rss / 2**20
                        result = combine(runs[label], rss, cpu_us[label])
                        results[(scenario.name, label)] = result
                        print(
                            f"  {scenario.name:16} {label:8} {result.requests_per_second:9.0f} "
                            f"req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms",
                            flush=True,
                        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(results, args)
    return 0


def combine(
    runs: list[tuple[float, float, float, int, int]], rss_mib: float, cpu_us: list[float]
) -> Result:
    """Mean of the rounds (each round runs for the same time, so mean req/s is fair)."""
    count = len(runs)
    return Result(
        requests_per_second=sum(r[0] for r in runs) / count,
        p50_ms=sum(r[1] for r in runs) / count,
        p99_ms=sum(r[2] for r in runs) / count,
        errors=sum(r[3] for r in runs),
        unexpected_status=sum(r[4] for r in runs),
        rss_mib=rss_mib,
        cpu_us_per_request=sum(cpu_us) / len(cpu_us),
    )


def print_table(results: dict[tuple[str, str], Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"wrk -t{args.threads} -c{args.connections}, {args.rounds} alternating rounds of "
        f"{args.duration}s per server and scenario, on loopback; "
        f"one Hypercorn worker (uvloop) per server; the API's database: {args.database}"
    )
    print(f"servers on CPU {args.server_cpus}, wrk and redis-server on CPU {args.load_cpus}")
    header = (
        f"{'scenario':18}{'server':10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'RSS MiB':>9}{'CPU us/req':>11}{'non-2xx':>9}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    for scenario in SCENARIOS:
        for label in ("baseline", "api"):
            r = results[(scenario.name, label)]
            print(
                f"{scenario.name:18}{label:10}{r.requests_per_second:9.0f}{r.p50_ms:9.2f}"
                f"{r.p99_ms:9.2f}{r.rss_mib:9.1f}{r.cpu_us_per_request:11.0f}"
                f"{r.unexpected_status:9d}{r.errors:8d}"
            )
        base, api = results[(scenario.name, "baseline")], results[(scenario.name, "api")]
        print(
            f"{'':18}{'api/base':10}{api.requests_per_second / base.requests_per_second:9.0%}"
            f"{api.p50_ms / base.p50_ms:8.2f}x{api.p99_ms / base.p99_ms:8.2f}x{'':9}"
            f"{api.cpu_us_per_request / base.cpu_us_per_request:10.2f}x"
        )
        if scenario.note:
            print(f"{'':18}({scenario.note})")
    base, api = results[(SCENARIOS[0].name, "baseline")], results[(SCENARIOS[0].name, "api")]
    throughput = api.requests_per_second / base.requests_per_second
    tail = api.p99_ms / base.p99_ms
    print()
    print(
        f"target on cached GETs: throughput >= 85% of baseline -> {throughput:.0%} "
        f"({'met' if throughput >= 0.85 else 'MISSED'}); p99 <= 2x baseline -> {tail:.2f}x "
        f"({'met' if tail <= 2 else 'MISSED'})"
    )


if __name__ == "__main__":
    sys.exit(main())
