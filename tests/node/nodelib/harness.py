"""Test harness: control plane + real node up for a test, both down afterwards, always.

Steps are timed so tests can print where the minutes go.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import paths

REALNODE = paths.NODE_DIR / "realnode.py"
KUBECLUSTER = paths.REPO_ROOT / "tests" / "cluster" / "kubecluster.py"
# A cluster of its own, so `make e2e-full` never touches a KWOK cluster someone runs.
CLUSTER_ENV = {
    "CNJ_CLUSTER_STATE_DIR": os.environ.get(
        "CNJ_CLUSTER_STATE_DIR", str(paths.CACHE / "cluster-realnode")
    )
}


@dataclass
class Timings:
    steps: list[tuple[str, float, int]] = field(default_factory=list)

    def run(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        timeout: float = 3600,
    ) -> subprocess.CompletedProcess:
        """Run a step, streaming its output (a failing playbook shows its own message)
        and keeping a copy in the result's stdout for assertions on it."""
        started = time.monotonic()
        print(f"\n=== {name}: {' '.join(argv)}", flush=True)
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            cwd=paths.REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        out = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                out.append(line)
            rc = proc.wait()
        finally:
            timer.cancel()
        took = time.monotonic() - started
        self.steps.append((name, took, rc))
        print(f"=== {name}: exit {rc} after {took:.1f}s", flush=True)
        return subprocess.CompletedProcess(argv, rc, "".join(out), "")

    def report(self) -> str:
        lines = [f"{name:<28} {took:8.1f}s  exit {rc}" for name, took, rc in self.steps]
        total = sum(t for _, t, _ in self.steps)
        return "\n".join(
            ["step                          duration", *lines, f"{'total':<28} {total:8.1f}s"]
        )


def cluster_env() -> dict[str, str]:
    """KUBECONFIG and friends from `kubecluster.py env`."""
    res = subprocess.run(
        [sys.executable, str(KUBECLUSTER), "env"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **CLUSTER_ENV},
    )
    env = dict(CLUSTER_ENV)
    for line in res.stdout.splitlines():
        line = line.strip().removeprefix("export ").strip()
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value.strip().strip("'\"")
    return env


@contextlib.contextmanager
def cluster_with_real_node(
    timings: Timings, with_app: bool = True, exclusive: bool = True
) -> Iterator[dict[str, str]]:
    """Control plane up, real node joined; both torn down on the way out, even on failure."""
    py = sys.executable
    try:
        res = timings.run("control-plane up", [py, str(KUBECLUSTER), "up"], env=CLUSTER_ENV)
        if res.returncode != 0:
            raise AssertionError(f"kubecluster.py up failed with exit {res.returncode}")
        env = cluster_env()
        argv = [py, str(REALNODE), "up"] + ([] if with_app else ["--no-app"])
        # Every pod real: no workload may land on (or be "run" by) a simulated node.
        argv += ["--exclusive"] if exclusive else []
        res = timings.run("real node up", argv, env=env)
        if res.returncode != 0:
            raise AssertionError(f"realnode.py up failed with exit {res.returncode}")
        yield env
    finally:
        env = dict(CLUSTER_ENV)
        with contextlib.suppress(Exception):
            env = cluster_env()
        timings.run("real node down", [py, str(REALNODE), "down"], env=env)
        timings.run("control-plane down", [py, str(KUBECLUSTER), "down"], env=CLUSTER_ENV)
