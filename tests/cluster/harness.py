"""Test-side handle on the cluster: `kubecluster.py up` for the length of a test, `down`
afterwards whatever happened, and timed steps whose output is kept for the report."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.clusterlib import paths

CLUSTER_DIR = Path(__file__).resolve().parent
REPO_ROOT = CLUSTER_DIR.parents[1]
KUBECLUSTER = CLUSTER_DIR / "kubecluster.py"


@dataclass
class Steps:
    """Runs commands as named steps; every step's duration ends up in `report()`."""

    timings: list[tuple[str, float, int]] = field(default_factory=list)

    def run(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 1800
    ) -> subprocess.CompletedProcess:
        print(f"\n=== {name}: {' '.join(argv)}", flush=True)
        started = time.monotonic()
        try:
            res = subprocess.run(
                argv,
                cwd=REPO_ROOT,
                env={**os.environ, **(env or {})},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as err:
            out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            res = subprocess.CompletedProcess(argv, -9, out + f"\n(timed out after {timeout}s)")
        took = time.monotonic() - started
        self.timings.append((name, took, res.returncode))
        print(res.stdout, flush=True)
        print(f"=== {name}: exit {res.returncode} after {took:.1f}s", flush=True)
        return res

    def check(self, name: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        res = self.run(name, argv, **kw)
        if res.returncode != 0:
            raise AssertionError(f"step '{name}' failed (exit {res.returncode}):\n{res.stdout}")
        return res

    def report(self) -> str:
        rows = [f"  {name:<34} {took:7.1f}s  exit {rc}" for name, took, rc in self.timings]
        total = sum(took for _, took, _ in self.timings)
        return "\n".join(["step durations:", *rows, f"  {'total':<34} {total:7.1f}s"])


def parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        m = re.match(r"^export ([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2)
    return env


def test_state_dir() -> Path:
    """A state directory of this test process: tests never stop a cluster that a person
    (or tests/node) started with the default one, nor race another test run."""
    return paths.CACHE / f"cluster-test-{os.getpid()}"


@contextlib.contextmanager
def running_cluster(steps: Steps, state_dir: Path) -> Iterator[dict[str, str]]:
    """The cluster's environment (KUBECONFIG, ...) while it runs; always stopped afterwards.
    The state directory (logs included) is kept only when something failed."""
    py = sys.executable
    own = {"CNJ_CLUSTER_STATE_DIR": str(state_dir)}
    failed = True
    try:
        steps.check("build (or reuse) binaries", [py, str(KUBECLUSTER), "build"], timeout=3600)
        res = steps.check("cluster up", [py, str(KUBECLUSTER), "up"], env=own, timeout=600)
        yield {**parse_env(res.stdout), **own}
        failed = False
    finally:
        down = steps.run("cluster down", [py, str(KUBECLUSTER), "down"], env=own, timeout=120)
        print(steps.report(), flush=True)
        if failed or down.returncode != 0:
            print(f"cluster state and logs kept in {state_dir}", flush=True)
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
