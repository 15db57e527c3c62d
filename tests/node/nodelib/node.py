"""Bring the real node up against the running control plane, report on it, take it down."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import appimage, containerd, coredns, images, kubelet, kubeproxy, network, paths, procs
from .cluster import ClusterInfo, discover

# The node's own address lives on an interface of its own (IFB: a sink device, since
# this kernel has no `dummy` driver), so it is the same on every machine and never
# depends on, or exposes anything through, the VM's real network.
NODE_IP = os.environ.get("CNJ_NODE_IP", "172.31.254.1")
NODE_IF = "cnj-node0"
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns", "pvperms")
# Where kube-controller-manager's hostpath provisioner puts PV directories.
HOSTPATH_PV_BASE = os.environ.get("CNJ_HOSTPATH_PV_BASE", "/tmp/hostpath_pv")
# Label of the control plane's KWOK-simulated nodes.
SIMULATED_SELECTOR = "type=kwok"
SIMULATED_TAINT = "cloudnative-journey.io/simulated=true:NoSchedule"
STATE = paths.RUN / "node-state.json"


def log(msg: str) -> None:
    print(f"[realnode] {msg}", flush=True)


class Timer:
    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []
        self.errors: list[str] = []

    def step(self, name: str, fn, *args):
        started = time.monotonic()
        result = fn(*args)
        took = time.monotonic() - started
        self.steps.append((name, took))
        log(f"{name}: {took:.1f}s")
        return result

    def best_effort(self, name: str, fn, *args) -> None:
        """For teardown: one failing step must not leave the later ones undone."""
        started = time.monotonic()
        try:
            fn(*args)
        except Exception as exc:  # reported, and the teardown goes on
            self.errors.append(f"{name}: {exc}")
            log(f"{name} failed: {exc}")
        took = time.monotonic() - started
        self.steps.append((name, took))
        log(f"{name}: {took:.1f}s")


def ensure_images(with_app: bool = True) -> dict[str, Path]:
    """Build-or-reuse every image and load it into containerd (starts containerd)."""
    containerd.start()
    archives = images.build_base_images()
    for ref, archive in archives.items():
        images.import_into_containerd(ref, archive)
    if with_app and (paths.REPO_ROOT / "Dockerfile").exists():
        ref = appimage.app_ref()
        archive = appimage.build(ref)
        images.import_into_containerd(ref, archive)
        archives[ref] = archive
    elif with_app:
        log("no Dockerfile yet: project image skipped")
    images.release_build_storage()
    return archives


def _node_address_up() -> None:
    if procs.run(["ip", "link", "show", NODE_IF], check=False).returncode != 0:
        procs.run(["ip", "link", "add", NODE_IF, "type", "ifb"])
    procs.run(["ip", "link", "set", NODE_IF, "up"])
    procs.run(["ip", "addr", "replace", f"{NODE_IP}/32", "dev", NODE_IF])


def _node_address_down() -> None:
    if procs.run(["ip", "link", "show", NODE_IF], check=False).returncode == 0:
        procs.run(["ip", "link", "del", NODE_IF])


def _node(cluster: ClusterInfo) -> dict | None:
    res = cluster.kubectl("get", "node", kubelet.NODE_NAME, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def _pick_pod_cidr(cluster: ClusterInfo) -> str:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    taken = {n["spec"].get("podCIDR") for n in nodes}
    for subnet in ipaddress.ip_network(cluster.pod_cidr).subnets(new_prefix=24):
        if str(subnet) not in taken:
            return str(subnet)
    raise procs.NodeError(f"no free /24 left in {cluster.pod_cidr}")


def _ensure_pod_cidr(cluster: ClusterInfo) -> str:
    """The podCIDR the controller-manager allocated, or one we assign if it allocates none."""
    node = procs.wait_for("the node to register", lambda: _node(cluster), timeout=90)
    deadline = time.monotonic() + 8
    while not node["spec"].get("podCIDR") and time.monotonic() < deadline:
        time.sleep(1)
        node = _node(cluster) or node
    cidr = node["spec"].get("podCIDR")
    if not cidr:
        cidr = _pick_pod_cidr(cluster)
        patch = {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
        cluster.kubectl("patch", "node", kubelet.NODE_NAME, "--type=merge", "-p", json.dumps(patch))
    return cidr


def _node_ready(cluster: ClusterInfo) -> bool:
    node = _node(cluster)
    if not node:
        return False
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in node.get("status", {}).get("conditions", [])
    )


def _start_pvperms() -> None:
    procs.start(
        "pvperms", [sys.executable, str(Path(__file__).with_name("pvperms.py")), HOSTPATH_PV_BASE]
    )


def _keep_workloads_on_real_node(cluster: ClusterInfo, exclusive: bool) -> None:
    """Simulated nodes run nothing, so workloads must not be scheduled there.

    Default: taint them NoSchedule (DaemonSets tolerating everything still cover them).
    exclusive: remove them, so every pod of the cluster really runs.
    """
    if exclusive:
        cluster.kubectl("delete", "node", "-l", SIMULATED_SELECTOR, "--ignore-not-found")
    else:
        cluster.kubectl("taint", "node", "-l", SIMULATED_SELECTOR, SIMULATED_TAINT, "--overwrite")


def up(with_app: bool = True, exclusive: bool = False) -> Timer:
    timer = Timer()
    cluster = discover()
    log(f"control plane {cluster.server}, binaries {cluster.bin_dir}")
    try:
        timer.step("containerd", containerd.start)
        timer.step("images", ensure_images, with_app)
        timer.step("coredns-binary", coredns.binary)
        _node_address_up()
        timer.step("kubelet-start", kubelet.start, cluster, NODE_IP)
        pod_cidr = timer.step("node-registered", _ensure_pod_cidr, cluster)
        # The fence before the CNI config: the bridge plugin turns ip_forward on with the
        # first pod, and by then the FORWARD fence must already be in place.
        network.setup(cluster.service_cidr, cluster.pod_cidr)
        containerd.write_cni_config(pod_cidr)
        timer.step("kube-proxy", _start_proxy, cluster)
        timer.step("coredns", _start_dns, cluster)
        _start_pvperms()
        _keep_workloads_on_real_node(cluster, exclusive)
        timer.step("node-ready", procs.wait_for, "node Ready", lambda: _node_ready(cluster), 120)
        STATE.write_text(
            json.dumps(
                {
                    "bin_dir": str(cluster.bin_dir),
                    "kubeconfig": str(cluster.kubeconfig),
                    "pod_cidr": pod_cidr,
                }
            )
        )
    except BaseException:
        log("bringing the node up failed: tearing it down again")
        down()
        raise
    log(f"node {kubelet.NODE_NAME} Ready, IP {NODE_IP}, podCIDR {pod_cidr}")
    return timer


def _start_proxy(cluster: ClusterInfo) -> None:
    kubeproxy.start(cluster)
    procs.wait_for("kube-proxy healthz", kubeproxy.healthy, timeout=60)


def _start_dns(cluster: ClusterInfo) -> None:
    coredns.start(cluster, NODE_IP)
    procs.wait_for("CoreDNS ready", coredns.ready, timeout=60)


def down() -> None:
    """Stop everything `up` started, in reverse order, tolerating half-started states."""
    state = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(STATE.read_text())
    try:
        cluster = discover()
    except procs.NodeError:
        cluster = None
    bin_dir = Path(state["bin_dir"]) if "bin_dir" in state else None
    timer = Timer()
    timer.best_effort("stop pvperms", procs.stop, "pvperms")
    timer.best_effort("stop coredns", coredns.stop)
    timer.best_effort("stop kube-proxy", kubeproxy.stop, cluster, bin_dir)
    timer.best_effort("stop kubelet", kubelet.stop)
    timer.best_effort("stop containers+containerd", containerd.stop)
    timer.best_effort("unmount", kubelet.unmount_leftovers)
    timer.best_effort("network", network.teardown)
    timer.best_effort("kubelet iptables", kubelet.remove_iptables_chains)
    timer.best_effort("node address", _node_address_down)
    if cluster is not None:
        # The control plane may outlive the node (a person's session): drop our objects.
        timer.best_effort(
            "delete node object",
            cluster.kubectl,
            "delete",
            "node",
            kubelet.NODE_NAME,
            "--ignore-not-found",
            "--wait=false",
        )
        timer.best_effort(
            "delete dns endpoints",
            cluster.kubectl,
            "-n",
            "kube-system",
            "delete",
            "endpointslice",
            "kube-dns-host",
            "--ignore-not-found",
        )
    # Pod volumes and state are per run; images and caches stay.
    for d in (
        paths.KUBELET_ROOT,
        paths.CONTAINERD_STATE,
        paths.RUNC_ROOT,
        paths.CNI_DATA_DIR,
        paths.CNI_CONF_DIR,
        paths.PID_DIR,
        paths.CONFIG_DIR,
        paths.RUN / "pki",
    ):
        shutil.rmtree(d, ignore_errors=True)
    STATE.unlink(missing_ok=True)
    if timer.errors:
        raise procs.NodeError("teardown finished with errors: " + "; ".join(timer.errors))


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def status() -> dict:
    out = {}
    for name in COMPONENTS:
        pid = procs.running_pid(name)
        out[name] = {"pid": pid, "rss_mib": round(_rss_kib(pid) / 1024, 1) if pid else None}
    shims = containerd.shim_pids()
    out["containerd-shims"] = {
        "count": len(shims),
        "rss_mib": round(sum(_rss_kib(p) for p in shims) / 1024, 1),
    }
    out["node_rss_mib"] = round(sum((v.get("rss_mib") or 0) for v in out.values()), 1)
    out["healthy"] = {
        "kubelet": kubelet.healthy(),
        "kube-proxy": kubeproxy.healthy(),
        "coredns": coredns.ready(),
        "containerd": containerd.is_up(),
    }
    return out
