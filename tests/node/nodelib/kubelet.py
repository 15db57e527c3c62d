"""The real node's kubelet: cgroup v1 with the cgroupfs driver, containerd over CRI v1.

Kubernetes 1.34 still runs on cgroup v1 (maintenance mode since 1.31; 1.35 refuses it
by default), so failCgroupV1 is set to false explicitly, and the cgroupfs driver is
used because there is no systemd as PID 1 here.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import paths, pki, procs
from .cluster import ClusterInfo

NODE_NAME = "cnj-realnode"
KUBELET_PORT = 10250
HEALTHZ_PORT = 10248


def config(cluster: ClusterInfo, node_ip: str) -> Path:
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": HEALTHZ_PORT,
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{paths.CONTAINERD_SOCKET}",
        "clusterDNS": [cluster.dns_ip],
        "clusterDomain": "cluster.local",
        "resolvConf": str(_pod_resolv_conf()),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(cluster.ca_crt)},
        },
        "authorization": {"mode": "Webhook"},
        "serializeImagePulls": False,
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # A test VM's disk is shared with builds and caches: evict only when truly full,
        # and never garbage-collect the locally built images (they cannot be re-pulled).
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
            "nodefs.inodesFree": "2%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "imageMinimumGCAge": "8760h",
        "maxPods": 60,
        "shutdownGracePeriod": "0s",
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 3,
        "localStorageCapacityIsolation": True,
        "nodeStatusReportFrequency": "10s",
    }
    path = paths.CONFIG_DIR / "kubelet-config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _pod_resolv_conf() -> Path:
    """Pods get only cluster DNS: an empty upstream list keeps the host's resolver out."""
    p = paths.CONFIG_DIR / "pod-resolv.conf"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("# no upstream resolvers: pods use cluster DNS only\n")
    return p


def start(cluster: ClusterInfo, node_ip: str) -> None:
    if procs.running_pid("kubelet") is not None:
        return
    crt, key = pki.client_cert(
        "kubelet", f"system:node:{NODE_NAME}", "system:nodes", cluster.ca_crt, cluster.ca_key
    )
    kubeconfig = pki.kubeconfig("kubelet", cluster.server, cluster.ca_crt, crt, key)
    paths.KUBELET_ROOT.mkdir(parents=True, exist_ok=True)
    argv = [
        str(cluster.binary("kubelet")),
        f"--config={config(cluster, node_ip)}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={paths.KUBELET_ROOT}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={node_ip}",
        "--node-labels=cloudnative-journey.io/real-node=true",
        "--v=1",
    ]
    procs.start("kubelet", argv)


def healthy() -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HEALTHZ_PORT}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop() -> None:
    procs.stop("kubelet", timeout=20)


def unmount_leftovers() -> list[str]:
    """Unmount everything below the kubelet root and containerd's state (deepest first)."""
    roots = [
        str(paths.KUBELET_ROOT),
        str(paths.CONTAINERD_STATE),
        str(paths.RUN),
        str(paths.CONTAINERD_ROOT),
    ]
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if any(target == r or target.startswith(r + "/") for r in roots):
                mounts.append(target)
    done = []
    for target in sorted(set(mounts), key=len, reverse=True):
        if procs.run(["umount", target], check=False).returncode != 0:
            procs.run(["umount", "-l", target], check=False)
        done.append(target)
    return done


# Chains the kubelet creates for itself (firewall for localnet, canaries for iptables
# flushes); kube-proxy --cleanup does not remove them.
KUBELET_CHAINS = {
    "filter": ["KUBE-FIREWALL", "KUBE-KUBELET-CANARY"],
    "nat": ["KUBE-KUBELET-CANARY"],
    "mangle": ["KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"],
}


def remove_iptables_chains() -> None:
    ipt = ["iptables", "-w", "5"]
    for parent in ("INPUT", "OUTPUT"):
        while procs.run([*ipt, "-D", parent, "-j", "KUBE-FIREWALL"], check=False).returncode == 0:
            pass
    for table, chains in KUBELET_CHAINS.items():
        for chain in chains:
            procs.run([*ipt, "-t", table, "-F", chain], check=False)
            procs.run([*ipt, "-t", table, "-X", chain], check=False)
