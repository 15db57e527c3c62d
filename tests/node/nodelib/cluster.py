"""What the node needs to know about the running test control plane.

Read from the admin kubeconfig the control plane hands out (KUBECONFIG, as printed by
`tests/cluster/kubecluster.py env`) plus the cluster's CA key, which the node needs to
sign its components' client certificates, as kubeadm's join would.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import paths, procs

KUBECLUSTER = paths.REPO_ROOT / "tests" / "cluster" / "kubecluster.py"


@dataclass(frozen=True)
class ClusterInfo:
    kubeconfig: Path
    server: str
    ca_crt: Path
    ca_key: Path
    bin_dir: Path
    service_cidr: str
    pod_cidr: str
    dns_ip: str

    def binary(self, name: str) -> Path:
        path = self.bin_dir / name
        if not path.exists():
            raise procs.NodeError(
                f"{name} not found in {self.bin_dir}: build the cluster first "
                f"(tests/cluster/kubecluster.py up)"
            )
        return path

    def kubectl(
        self, *args: str, check: bool = True, input_text: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return procs.run(
            [str(self.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            input_text=input_text,
            timeout=timeout,
        )


def _cluster_env(base_env: dict[str, str]) -> dict[str, str]:
    """`export K=V` lines printed by kubecluster.py env (empty when it is not there)."""
    if not KUBECLUSTER.exists():
        return {}
    res = subprocess.run(
        [sys.executable, str(KUBECLUSTER), "env"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=base_env,
    )
    if res.returncode != 0:
        return {}
    env = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2).strip().strip("'\"")
    return env


def _newest_bin_dir() -> Path | None:
    dirs = sorted(
        (
            d
            for d in paths.BIN_CACHE.glob("kubernetes-v*")
            if d.is_dir() and not d.name.endswith(".partial") and (d / "kubelet").exists()
        ),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    return dirs[0] if dirs else None


def discover(extra_env: dict[str, str] | None = None) -> ClusterInfo:
    """The running control plane; `extra_env` (e.g. CNJ_CLUSTER_STATE_DIR) picks which."""
    base_env = {**os.environ, **(extra_env or {})}
    env = {
        **_cluster_env(base_env),
        **{k: v for k, v in base_env.items() if k.startswith("CNJ_") or k == "KUBECONFIG"},
    }
    kc = env.get("KUBECONFIG", "").split(":")[0]
    if not kc or not Path(kc).exists():
        raise procs.NodeError(
            "no control plane found: start it with "
            "`tests/cluster/kubecluster.py up` (or set KUBECONFIG)"
        )
    kubeconfig = Path(kc)
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    server = cluster["server"]
    if "certificate-authority" in cluster:
        ca_crt = Path(cluster["certificate-authority"])
        if not ca_crt.is_absolute():
            ca_crt = kubeconfig.parent / ca_crt
    else:
        ca_crt = paths.RUN / "pki" / "cluster-ca.crt"
        ca_crt.parent.mkdir(parents=True, exist_ok=True)
        ca_crt.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    ca_key = Path(env.get("CNJ_CLUSTER_CA_KEY", ""))
    if not ca_key.is_file():
        candidates = [Path(env[k]) for k in ("CLUSTER_CA_KEY", "CA_KEY") if k in env]
        candidates += [
            ca_crt.with_suffix(".key"),
            ca_crt.parent / "ca.key",
            kubeconfig.parent / "pki" / "ca.key",
            kubeconfig.parent / "ca.key",
        ]
        found = [c for c in candidates if c.is_file()]
        if not found:
            looked = ", ".join(str(c) for c in candidates)
            raise procs.NodeError(
                f"cluster CA key not found (looked at {looked}); set CNJ_CLUSTER_CA_KEY"
            )
        ca_key = found[0]
    bin_dir = Path(env["CNJ_K8S_BIN_DIR"]) if "CNJ_K8S_BIN_DIR" in env else _newest_bin_dir()
    if bin_dir is None:
        raise procs.NodeError("no Kubernetes binaries under ~/.cache/cloudnative-journey/bin")
    return ClusterInfo(
        kubeconfig=kubeconfig,
        server=server,
        ca_crt=ca_crt,
        ca_key=ca_key,
        bin_dir=bin_dir,
        service_cidr=env.get("CNJ_SERVICE_CIDR", env.get("SERVICE_CIDR", "10.96.0.0/16")),
        pod_cidr=env.get("CNJ_POD_CIDR", env.get("POD_CIDR", "10.244.0.0/16")),
        dns_ip=env.get("CNJ_CLUSTER_DNS", env.get("CLUSTER_DNS", "10.96.0.10")),
    )
