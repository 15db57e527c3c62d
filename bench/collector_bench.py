"""Collector throughput and memory against same-run baselines.

    python -m bench.collector_bench            # 1,000,000 lines of 200 bytes
    python -m bench.collector_bench --gigabyte # and a 1 GB input as well

Every contender runs pinned to one core (``taskset -c 0``) over the same CRI files:

* collector -- ``python -m agents.collector``, stdout to /dev/null; done when its
  checkpoint (written only after records reach stdout) covers every byte,
* bare loop -- Python reading the files, splitting each CRI line and ``json.dumps``-ing
  it to /dev/null: the floor for "Python per line",
* rsyslog imfile -- ``rsyslogd`` on its own config and work directory, reading the same
  files into one output file; done when the output has every line.

Prints figures; asserts nothing.  Temp files are removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.servers import free_port

LINE_BYTES = 200
FILES = 8
TIMEOUT_SECONDS = 600
PIN = ["taskset", "-c", "0"] if shutil.which("taskset") else []
PREFIX = "2024-05-01T12:00:00.123456789Z stdout F "


def generate(directory: Path, lines: int, files: int = FILES) -> int:
    """Write ``lines`` CRI lines of LINE_BYTES bytes over ``files`` files; return bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    pad = "x" * LINE_BYTES
    per_file = -(-lines // files)
    total = 0
    written = 0
    for index in range(files):
        name = f"bench-{index}_default_app-{index:064x}.log"
        count = min(per_file, lines - written)
        with open(directory / name, "wb") as handle:
            for block_start in range(0, count, 10_000):
                block = []
                for seq in range(block_start, min(block_start + 10_000, count)):
                    head = f"{PREFIX}file={index} seq={seq:09d} "
                    block.append(head + pad[: LINE_BYTES - len(head) - 1] + "\n")
                data = "".join(block).encode()
                handle.write(data)
                total += len(data)
        written += count
    return total


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


# -- contenders --------------------------------------------------------------------------


BARE_LOOP = """
import json, sys, glob, os
out = open(os.devnull, "w")
for path in sorted(glob.glob(sys.argv[1] + "/*.log")):
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            time_, stream, tag, message = line.rstrip("\\n").split(" ", 3)
            out.write(json.dumps({"time": time_, "stream": stream, "message": message,
                                  "file": path}) + "\\n")
import resource
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_bare_loop(source: Path, lines: int) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(
        [*PIN, sys.executable, "-c", BARE_LOOP, str(source)], check=True, capture_output=True
    )
    elapsed = time.perf_counter() - started
    rss_mib = int(proc.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux
    return {"seconds": elapsed, "lines_per_s": lines / elapsed, "rss_mib": rss_mib}


def run_collector(source: Path, work: Path, lines: int, total_bytes: int) -> dict:
    watch = work / "watch"
    state = work / "state"
    watch.mkdir()
    env = {
        **os.environ,
        "LOG_PATHS": f"{watch}/*.log",
        "SCAN_INTERVAL": "0.1",
        "STATE_DIR": str(state),
        "METRICS_PORT": str(free_port()),
        "NODE_NAME": "bench",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CONFIG_FILE", None)
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(
            [*PIN, sys.executable, "-m", "agents.collector"],
            env=env,
            stdout=devnull,
            stderr=subprocess.PIPE,
        )
    try:
        port = env["METRICS_PORT"]
        if not wait_until(lambda: _http_ok(int(port), "/healthz"), 30):
            proc.kill()
            raise RuntimeError(f"collector did not become healthy: {proc.stderr.read()[-500:]!r}")
        started = time.perf_counter()
        for path in source.iterdir():  # a rename: the files appear complete, at once
            path.rename(watch / path.name)
        checkpoint = state / "checkpoint.json"

        def all_emitted() -> bool:
            try:
                data = json.loads(checkpoint.read_bytes())
            except (OSError, ValueError):
                return False
            return sum(entry["offset"] for entry in data["files"]) >= total_bytes

        if not wait_until(all_emitted, TIMEOUT_SECONDS, interval=0.01):
            raise RuntimeError("collector did not emit every line in time")
        elapsed = time.perf_counter() - started
        rss = peak_rss_mib(proc.pid)
    finally:
        stop(proc)
        for path in watch.iterdir():
            path.rename(source / path.name)
    return {"seconds": elapsed, "lines_per_s": lines / elapsed, "rss_mib": rss}


RSYSLOG_CONF = """
global(workDirectory="{work}")
module(load="imfile" mode="inotify")
template(name="json" type="string" string="{{\\"message\\":\\"%msg:::json%\\"}}\\n")
input(type="imfile" file="{watch}/*.log" tag="bench" ruleset="out" freshStartTail="off")
ruleset(name="out") {{
  action(type="omfile" file="{out}" template="json" asyncWriting="on" ioBufferSize="1m"
         flushOnTXEnd="off")
}}
"""


def run_rsyslog(source: Path, work: Path, lines: int) -> dict | None:
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not os.path.exists(rsyslogd):
        return None
    rs_work = work / "rsyslog"
    rs_work.mkdir()
    out = work / "rsyslog.out"
    conf = work / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=rs_work, watch=source, out=out))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*PIN, rsyslogd, "-n", "-f", str(conf), "-i", str(work / "rsyslog.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen = 0
    position = 0

    def complete() -> bool:
        nonlocal seen, position
        try:
            with open(out, "rb") as handle:
                handle.seek(position)
                data = handle.read()
        except FileNotFoundError:
            return False
        seen += data.count(b"\n")
        position += len(data)
        return seen >= lines or proc.poll() is not None

    try:
        done = wait_until(complete, TIMEOUT_SECONDS, interval=0.01)
        elapsed = time.perf_counter() - started
        rss = peak_rss_mib(proc.pid) if proc.poll() is None else float("nan")
    finally:
        stop(proc)
    if not done or seen < lines:
        err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
        raise RuntimeError(f"rsyslog emitted {seen}/{lines} lines: {err}")
    return {"seconds": elapsed, "lines_per_s": lines / elapsed, "rss_mib": rss}


def _http_ok(port: int, path: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
            return sock.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")
    except OSError:
        return False


# -- report ------------------------------------------------------------------------------


def bench_case(lines: int, with_rsyslog: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="collector-bench-") as tmp:
        root = Path(tmp)
        source = root / "src"
        started = time.perf_counter()
        total = generate(source, lines)
        print(
            f"\n== {lines:,} lines x {LINE_BYTES} B = {total / 1e9:.2f} GB"
            f" in {FILES} files (generated in {time.perf_counter() - started:.1f} s)"
        )
        results = {"bare loop (split + json.dumps)": run_bare_loop(source, lines)}
        collector_work = root / "collector"
        collector_work.mkdir()
        results["collector"] = run_collector(source, collector_work, lines, total)
        if with_rsyslog:
            rs_work = root / "rs"
            rs_work.mkdir()
            results["rsyslog imfile"] = run_rsyslog(source, rs_work, lines)
        for name, figures in results.items():
            if figures is None:
                print(f"  {name:32s} not available")
                continue
            rss = f"{figures['rss_mib']:.0f} MiB" if figures["rss_mib"] else "-"
            print(
                f"  {name:32s} {figures['lines_per_s']:>11,.0f} lines/s"
                f"  {figures['seconds']:7.2f} s  peak RSS {rss}"
            )
        collector = results["collector"]["lines_per_s"]
        bare = results["bare loop (split + json.dumps)"]["lines_per_s"]
        print(f"  collector / bare loop: {collector / bare:.2f}  (target >= 0.67)")
        rsyslog = results.get("rsyslog imfile")
        if rsyslog:
            print(f"  collector / rsyslog:   {collector / rsyslog['lines_per_s']:.2f}")
        print(
            f"  target >= 200,000 lines/s: {'met' if collector >= 200_000 else 'NOT met'};"
            f" RSS < 100 MiB: {'met' if results['collector']['rss_mib'] < 100 else 'NOT met'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--gigabyte", action="store_true", help="also run a 1 GB input")
    parser.add_argument("--no-rsyslog", action="store_true")
    args = parser.parse_args()
    with contextlib.suppress(OSError):
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    bench_case(args.lines, not args.no_rsyslog)
    if args.gigabyte:
        bench_case(-(-1_000_000_000 // LINE_BYTES), not args.no_rsyslog)


if __name__ == "__main__":
    main()
