"""Host networking for the real node: forwarding, the service-range route, a fence.

The control plane puts blackhole routes on the pod and service ranges so nothing can
leave the machine. For the service range that also breaks this host's own traffic to
ClusterIPs: the route lookup happens at connect() time, before kube-proxy's DNAT in
the OUTPUT chain, so connect() fails with EINVAL. While the node runs, the service
range is routed to a sink device instead: it still swallows every packet that is not
DNATed (same guarantee as the blackhole), but lets DNATed traffic get rerouted to its
endpoint. `down` puts the blackhole back. The sink is an IFB device: this kernel has no
`dummy` driver, and an IFB device drops whatever is sent to it directly, needs no ARP,
and so behaves like a dummy for routing.

ip_forward must be on for pod -> ClusterIP -> pod traffic; the CNJ-FENCE chain drops
every forwarded packet that is not headed onto the pod bridge, so turning forwarding
on cannot route anything (pod traffic included) out of the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import containerd, paths, procs

SVC_SINK = "cnj-svc0"
FENCE_CHAIN = "CNJ-FENCE"
STATE_FILE = paths.RUN / "network-state.json"


def _ip(*args: str, check: bool = True):
    return procs.run(["ip", *args], check=check, timeout=30)


def _route_for(cidr: str) -> str:
    return _ip("route", "show", "exact", cidr, check=False).stdout.strip()


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def _load_state() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def _save_state(state: dict) -> None:
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state))


def setup(service_cidr: str, pod_cidr: str) -> None:
    state = _load_state()
    fwd = _sysctl_path("net.ipv4.ip_forward")
    state.setdefault("ip_forward", fwd.read_text().strip())
    state["service_cidr"] = service_cidr
    state["pod_cidr"] = pod_cidr
    # Saved first, so a setup failing half-way is still undone by teardown().
    _save_state(state)

    # Fence first, then forwarding: never a moment where pods could route out.
    ipt = ["iptables", "-w", "5"]
    if procs.run([*ipt, "-nL", FENCE_CHAIN], check=False).returncode != 0:
        procs.run([*ipt, "-N", FENCE_CHAIN])
    procs.run([*ipt, "-F", FENCE_CHAIN])
    # Forwarding is only ever needed towards a pod on our bridge (pod -> ClusterIP -> pod).
    procs.run([*ipt, "-A", FENCE_CHAIN, "-o", containerd.BRIDGE, "-j", "RETURN"])
    procs.run([*ipt, "-A", FENCE_CHAIN, "-j", "DROP"])
    if procs.run([*ipt, "-C", "FORWARD", "-j", FENCE_CHAIN], check=False).returncode != 0:
        procs.run([*ipt, "-I", "FORWARD", "1", "-j", FENCE_CHAIN])
    fwd.write_text("1\n")

    if _ip("link", "show", SVC_SINK, check=False).returncode != 0:
        _ip("link", "add", SVC_SINK, "type", "ifb")
    _ip("link", "set", SVC_SINK, "up")
    current = _route_for(service_cidr)
    if current.startswith("blackhole"):
        state["restore_service_blackhole"] = True
    _ip("route", "replace", service_cidr, "dev", SVC_SINK)
    _save_state(state)


def teardown() -> None:
    state = _load_state()
    svc = state.get("service_cidr")
    if svc and SVC_SINK in _route_for(svc):
        if state.get("restore_service_blackhole"):
            _ip("route", "replace", "blackhole", svc, check=False)
        else:
            _ip("route", "del", svc, "dev", SVC_SINK, check=False)
    _ip("link", "del", SVC_SINK, check=False)
    _ip("link", "del", containerd.BRIDGE, check=False)
    # Forwarding off again before the fence goes, mirror image of setup().
    if "ip_forward" in state:
        _sysctl_path("net.ipv4.ip_forward").write_text(state["ip_forward"] + "\n")
    ipt = ["iptables", "-w", "5"]
    while procs.run([*ipt, "-D", "FORWARD", "-j", FENCE_CHAIN], check=False).returncode == 0:
        pass
    procs.run([*ipt, "-F", FENCE_CHAIN], check=False)
    procs.run([*ipt, "-X", FENCE_CHAIN], check=False)
    STATE_FILE.unlink(missing_ok=True)
