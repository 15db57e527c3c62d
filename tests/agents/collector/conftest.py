"""Helpers for the collector tests: a real collector process and sequence-numbered writers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCAN_INTERVAL = 0.1


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cri(seq: int, tag: str = "F", stream: str = "stdout", text: str | None = None) -> bytes:
    message = text if text is not None else f"seq={seq:07d}"
    return f"2024-05-01T12:00:00.{seq:09d}Z {stream} {tag} {message}\n".encode()


def pod_log(root: Path, namespace: str = "default", pod: str = "web", container: str = "app"):
    """The kubelet layout: <root>/pods/<ns>_<pod>_<uid>/<container>/0.log."""
    directory = root / "pods" / f"{namespace}_{pod}_0000-uid" / container
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "0.log"


class SeqWriter:
    """Appends numbered CRI lines from a thread; a bounded count, a bounded time."""

    def __init__(
        self, path: Path, count: int, per_second: float = 2000.0, reopen: bool = True
    ) -> None:
        self.path = path
        self.reopen = reopen  # False: keep writing to the old file, like a deleted log
        self.count = count
        self.delay = 1.0 / per_second
        self.written = 0
        self.lock = threading.Lock()  # held while a line is written: lets tests rotate safely
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SeqWriter:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 - reopened on rotation
        inode = os.fstat(handle.fileno()).st_ino
        try:
            for seq in range(self.count):
                if time.monotonic() > deadline:
                    break
                with self.lock:
                    if not self.reopen:
                        handle.write(cri(seq))
                        self.written = seq + 1
                        time.sleep(self.delay)
                        continue
                    # Like containerd after a kubelet rotation: reopen when the path moved.
                    try:
                        if os.stat(self.path).st_ino != inode:
                            raise FileNotFoundError
                    except FileNotFoundError:
                        handle.close()
                        handle = open(self.path, "ab", buffering=0)  # noqa: SIM115
                        inode = os.fstat(handle.fileno()).st_ino
                    handle.write(cri(seq))
                    self.written = seq + 1
                time.sleep(self.delay)
        finally:
            handle.close()

    def join(self, timeout: float = 70) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "writer did not finish"


class CollectorProcess:
    """``python -m agents.collector`` as the DaemonSet runs it, stdout captured in a file."""

    def __init__(self, tmp: Path, log_paths: str, **env: str) -> None:
        self.tmp = tmp
        self.stdout_path = tmp / f"stdout-{time.monotonic_ns()}.jsonl"
        self.stderr_path = tmp / f"stderr-{time.monotonic_ns()}.log"
        self.port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "LOG_PATHS": log_paths,
            "SCAN_INTERVAL": str(SCAN_INTERVAL),
            "STATE_DIR": str(tmp / "state"),
            "METRICS_PORT": str(self.port),
            "NODE_NAME": "node-test",
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> CollectorProcess:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agents.collector"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=err,
            )
        assert wait_for(lambda: self.get("/healthz")[0] == 200, 20), self.stderr()
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError:
            return 0, ""
        raw = b"".join(chunks).decode(errors="replace")
        status_line, _, rest = raw.partition("\r\n")
        body = rest.partition("\r\n\r\n")[2]
        return int(status_line.split()[1]), body

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def records(self) -> list[dict]:
        text = self.stdout_path.read_text(errors="strict")
        # After kill -9 the last write may be cut short: that line was never "emitted".
        lines = text.split("\n")
        complete = lines[:-1]
        return [json.loads(line) for line in complete]


def seqs(records: list[dict]) -> Counter:
    """How often each seq=N message arrived."""
    found: Counter = Counter()
    for record in records:
        message = record["message"]
        if message.startswith("seq="):
            found[int(message[4:11])] += 1
    return found


def assert_all_arrived(records: list[dict], count: int, max_duplicates: int = 0) -> None:
    found = seqs(records)
    missing = [seq for seq in range(count) if found[seq] == 0]
    assert not missing, f"{len(missing)} lines lost, first {missing[:10]}"
    duplicates = sum(n - 1 for n in found.values() if n > 1)
    assert duplicates <= max_duplicates, f"{duplicates} duplicates (bound {max_duplicates})"


@pytest.fixture
def run_collector(tmp_path: Path) -> Iterator[Callable[..., CollectorProcess]]:
    started: list[CollectorProcess] = []

    def start(log_paths: str, **env: str) -> CollectorProcess:
        collector = CollectorProcess(tmp_path, log_paths, **env).start()
        started.append(collector)
        return collector

    yield start
    for collector in started:
        if collector.proc is not None and collector.proc.poll() is None:
            collector.proc.kill()
            collector.proc.wait(10)
