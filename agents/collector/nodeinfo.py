"""Facts about the node the collector runs on, read once from /proc at start."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class NodeInfo:
    node: str
    kernel: str
    cpus: int
    memory_bytes: int
    boot_id: str

    def labels(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def memory_total_bytes(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            # /proc/meminfo reports kibibytes whatever the unit column says.
            return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else 0
    return 0


def read_node_info(node: str) -> NodeInfo:
    try:
        cpus = len(os.sched_getaffinity(0))  # what this process may use (cgroup cpusets)
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 0
    return NodeInfo(
        node=node,
        kernel=_read("/proc/sys/kernel/osrelease") or platform.release(),
        cpus=cpus,
        memory_bytes=memory_total_bytes(_read("/proc/meminfo")),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
    )
