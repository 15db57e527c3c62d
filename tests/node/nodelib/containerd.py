"""containerd from Debian run as our own process: own root, state, socket and CNI dirs.

The system service (if any) is left alone; everything here is addressed through
paths.CONTAINERD_SOCKET. CRI uses the cgroupfs driver because this VM runs cgroup v1
without systemd as PID 1.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from . import paths, procs

NAMESPACE = "k8s.io"
PAUSE_IMAGE = "localhost/cloudnative-journey/pause:3.10"
CNI_NETWORK = "cnj-bridge"
BRIDGE = "cnj0"

CONFIG_TEMPLATE = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  # This sandbox cannot lower oom_score_adj (no CAP_SYS_RESOURCE); cap it instead of failing.
  restrict_oom_score_adj = true
  # netns bind mounts under our state dir, so `down` finds and removes all of them.
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"""


def config_path() -> Path:
    return paths.CONFIG_DIR / "containerd.toml"


def write_config() -> Path:
    runc = shutil.which("runc") or "/usr/sbin/runc"
    text = CONFIG_TEMPLATE.format(
        root=paths.CONTAINERD_ROOT,
        state=paths.CONTAINERD_STATE,
        socket=paths.CONTAINERD_SOCKET,
        pause=PAUSE_IMAGE,
        runc=runc,
        runc_root=paths.RUNC_ROOT,
        cni_bin=paths.CNI_BIN_DIR,
        cni_conf=paths.CNI_CONF_DIR,
    )
    for d in (
        paths.CONFIG_DIR,
        paths.CONTAINERD_ROOT,
        paths.CONTAINERD_STATE,
        paths.CNI_CONF_DIR,
        paths.CNI_DATA_DIR,
        paths.RUNC_ROOT,
    ):
        d.mkdir(parents=True, exist_ok=True)
    config_path().write_text(text)
    return config_path()


def ctr(*args: str, check: bool = True, timeout: float = 600, namespace: str = NAMESPACE):
    return procs.run(
        ["ctr", "--address", str(paths.CONTAINERD_SOCKET), "--namespace", namespace, *args],
        check=check,
        timeout=timeout,
    )


def is_up() -> bool:
    if procs.running_pid("containerd") is None or not paths.CONTAINERD_SOCKET.exists():
        return False
    return ctr("version", check=False, timeout=10).returncode == 0


def start() -> None:
    if is_up():
        return
    binary = shutil.which("containerd")
    if binary is None:
        raise procs.NodeError(
            "containerd is not installed: apt-get install containerd runc "
            "containernetworking-plugins"
        )
    write_config()
    procs.start("containerd", [binary, "--config", str(config_path())])
    procs.wait_for("containerd to answer on its socket", is_up, timeout=30)


def remove_all_containers() -> None:
    """Kill and delete every task/container in the k8s.io namespace (used when CRI is gone)."""
    if not is_up():
        return
    # Containers of one pod share a shim: once the first is gone the others may vanish
    # with it, so poll what is left instead of insisting on each delete succeeding.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tasks = ctr("tasks", "ls", "-q", check=False, timeout=30).stdout.split()
        if not tasks:
            break
        for task in tasks:
            ctr("tasks", "delete", "--force", task, check=False, timeout=30)
        time.sleep(0.2)
    for container in ctr("containers", "ls", "-q", check=False, timeout=30).stdout.split():
        ctr("containers", "delete", container, check=False, timeout=30)


def shim_pids() -> list[int]:
    """containerd-shim processes serving our socket (they outlive containerd by design)."""
    pids = []
    sock = str(paths.CONTAINERD_SOCKET)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and sock.encode() in cmd:
            pids.append(int(entry.name))
    return pids


def stop() -> None:
    remove_all_containers()
    procs.stop("containerd", timeout=20)
    for pid in shim_pids():
        procs.kill_pid(pid, timeout=5)
    for leftover in (paths.CONTAINERD_SOCKET, Path(f"{paths.CONTAINERD_SOCKET}.ttrpc")):
        leftover.unlink(missing_ok=True)


def write_cni_config(pod_cidr: str) -> Path:
    """Bridge + host-local IPAM on the node's podCIDR, loopback and portmap chained.

    ipMasq stays off: pods only talk to this machine, never through it to the outside.
    """
    import ipaddress

    net = ipaddress.ip_network(pod_cidr)
    gateway = str(next(net.hosts()))
    conf = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.CNI_DATA_DIR),
                    "ranges": [[{"subnet": str(net), "gateway": gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    paths.CNI_CONF_DIR.mkdir(parents=True, exist_ok=True)
    target = paths.CNI_CONF_DIR / "10-cnj-bridge.conflist"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(conf, indent=2) + "\n")
    os.replace(tmp, target)
    return target
