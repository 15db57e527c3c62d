"""Build-or-reuse of etcd, the Kubernetes components and KWOK from upstream Go sources.

Versions come from the wrapper go.mod files (the single place to bump them) and key
the cache directories, so a warm run only checks that the binaries exist. A build
writes into `<dir>.partial` and renames it when complete: an interrupted build is
never mistaken for a finished one. A file lock serialises concurrent builders.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import paths

KWOK_VERSION = "v0.8.0"
KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Binaries:
    kubernetes: Path
    etcd: Path
    kwok: Path

    def kube(self, name: str) -> Path:
        return self.kubernetes / name


def required_version(go_mod: Path, module: str) -> str:
    """The version of `module` that the wrapper go.mod requires."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod.read_text(), re.M)
    if not match:
        raise BuildError(f"{go_mod} does not require {module}")
    return match.group(1)


def kubernetes_version() -> str:
    return required_version(paths.GO_DIR / "kubernetes" / "go.mod", "k8s.io/kubernetes")


def etcd_version() -> str:
    return required_version(paths.GO_DIR / "etcd" / "go.mod", "go.etcd.io/etcd/server/v3")


def expected() -> Binaries:
    return Binaries(
        kubernetes=paths.BIN_CACHE / f"kubernetes-{kubernetes_version()}",
        etcd=paths.BIN_CACHE / f"etcd-{etcd_version()}",
        kwok=paths.BIN_CACHE / f"kwok-{KWOK_VERSION}",
    )


def _complete(directory: Path, names: tuple[str, ...]) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in names)


def _go_env() -> dict[str, str]:
    # Static binaries: nothing to match on the host, and the kubelet step can copy them.
    env = {**os.environ, "CGO_ENABLED": "0"}
    if shutil.which("go", path=env.get("PATH")) is None:
        raise BuildError("`go` is not on PATH: install Go >= 1.24 to build the test cluster")
    return env


def _go(argv: list[str], cwd: Path, log_name: str, env: dict[str, str]) -> None:
    paths.BUILD_LOGS.mkdir(parents=True, exist_ok=True)
    log_path = paths.BUILD_LOGS / f"{log_name}.log"
    # `nice`: other people run tests on this machine while a cold build takes minutes.
    with log_path.open("w") as log:
        res = subprocess.run(
            ["nice", "-n", "5", "go", *argv], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    if res.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-30:])
        raise BuildError(f"go {argv[0]} failed (exit {res.returncode}), log {log_path}:\n{tail}")


@contextlib.contextmanager
def _staged(final: Path) -> Iterator[Path]:
    partial = final.with_name(final.name + ".partial")
    if partial.is_symlink() or partial.is_file():
        partial.unlink()
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)


def _jobs() -> str:
    return str(max(1, min(2, os.cpu_count() or 1)))


def _build_kubernetes(final: Path, log) -> None:
    version = kubernetes_version()
    major, minor = re.match(r"v(\d+)\.(\d+)", version).groups()
    stamps = []
    # Both version packages: the servers report component-base's, kubectl prints client-go's.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        stamps += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    ldflags = " ".join(["-s", "-w", *stamps])
    pkgs = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS]
    with _staged(final) as out:
        log(f"building Kubernetes {version} ({', '.join(KUBERNETES_COMMANDS)}); cold: ~15-40 min")
        # One go invocation for all commands so they share one build graph.
        argv = ["build", "-p", _jobs(), "-trimpath", "-ldflags", ldflags, "-o", f"{out}/", *pkgs]
        _go(argv, paths.GO_DIR / "kubernetes", f"build-kubernetes-{version}", _go_env())


def _build_etcd(final: Path, log) -> None:
    version = etcd_version()
    with _staged(final) as out:
        log(f"building etcd {version}")
        argv = [
            "build",
            "-p",
            _jobs(),
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            f"{out}/etcd",
            "go.etcd.io/etcd/server/v3",
        ]
        _go(argv, paths.GO_DIR / "etcd", f"build-etcd-{version}", _go_env())


def _build_kwok(final: Path, log) -> None:
    with _staged(final) as out:
        log(f"building KWOK {KWOK_VERSION}")
        env = {**_go_env(), "GOBIN": str(out)}
        argv = [
            "install",
            "-p",
            _jobs(),
            "-trimpath",
            "-ldflags",
            "-s -w",
            f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
            f"sigs.k8s.io/kwok/cmd/kwokctl@{KWOK_VERSION}",
        ]
        _go(argv, paths.CLUSTER_DIR, f"build-kwok-{KWOK_VERSION}", env)


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    paths.BIN_CACHE.mkdir(parents=True, exist_ok=True)
    with (paths.BIN_CACHE / ".kubecluster-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_built(log=print) -> Binaries:
    """The cached binaries, building whichever are missing."""
    bins = expected()
    plan = [
        (bins.etcd, ("etcd",), _build_etcd),
        (bins.kubernetes, KUBERNETES_COMMANDS, _build_kubernetes),
        (bins.kwok, ("kwok",), _build_kwok),
    ]
    if all(_complete(d, names) for d, names, _ in plan):
        return bins
    with _build_lock():
        for directory, names, builder in plan:
            if _complete(directory, names):
                continue
            started = time.monotonic()
            builder(directory, log)
            log(f"built {directory.name} in {time.monotonic() - started:.0f}s")
    return bins
