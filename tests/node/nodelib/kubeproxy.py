"""kube-proxy in iptables mode, so ClusterIP and NodePort Services work on the node."""

from __future__ import annotations

import json
from pathlib import Path

from . import kubelet, paths, pki, procs
from .cluster import ClusterInfo

HEALTHZ_PORT = 10256
METRICS_PORT = 10249


def config(cluster: ClusterInfo, kubeconfig: Path) -> Path:
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": cluster.pod_cidr,
        "hostnameOverride": kubelet.NODE_NAME,
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "healthzBindAddress": f"127.0.0.1:{HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{METRICS_PORT}",
        # Leave the machine's conntrack sysctls alone: defaults are plenty for a test node.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # NodePorts on 127.0.0.1 too, so a person on this machine can curl them.
        "iptables": {"localhostNodePorts": True, "masqueradeAll": False},
    }
    path = paths.CONFIG_DIR / "kube-proxy-config.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def start(cluster: ClusterInfo) -> None:
    if procs.running_pid("kube-proxy") is not None:
        return
    crt, key = pki.client_cert(
        "kube-proxy", "system:kube-proxy", None, cluster.ca_crt, cluster.ca_key
    )
    kubeconfig = pki.kubeconfig("kube-proxy", cluster.server, cluster.ca_crt, crt, key)
    procs.start(
        "kube-proxy",
        [str(cluster.binary("kube-proxy")), f"--config={config(cluster, kubeconfig)}", "--v=1"],
    )


def healthy() -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HEALTHZ_PORT}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop(cluster: ClusterInfo | None, bin_dir: Path | None = None) -> None:
    procs.stop("kube-proxy", timeout=15)
    binary = cluster.bin_dir if cluster is not None else bin_dir or Path("/nonexistent")
    binary = binary / "kube-proxy"
    if binary.exists():
        # Removes every KUBE-* chain and rule kube-proxy created.
        procs.run([str(binary), "--cleanup", "--v=0"], check=False, timeout=60)
