"""Where the real node keeps its binaries, caches, state and runtime files.

Caches survive runs (images, Go builds, containerd's content store) so a warm run
rebuilds nothing; runtime files live under /run and are removed by `down`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = REPO_ROOT / "tests" / "node"
IMAGE_RECIPES = NODE_DIR / "images"
GO_DIR = NODE_DIR / "go"

CACHE = Path(os.environ.get("CNJ_CACHE_DIR", Path.home() / ".cache" / "cloudnative-journey"))
BIN_CACHE = CACHE / "bin"
LOG_DIR = CACHE / "logs"
NODE_CACHE = CACHE / "node"
IMAGE_CACHE = NODE_CACHE / "images"
ROOTFS_CACHE = NODE_CACHE / "rootfs"
BUILDAH_ROOT = NODE_CACHE / "buildah-storage"
CONTAINERD_ROOT = NODE_CACHE / "containerd-root"

RUN = Path("/run/cloudnative-journey/node")
CONTAINERD_STATE = RUN / "containerd-state"
CONTAINERD_SOCKET = RUN / "containerd.sock"
RUNC_ROOT = RUN / "runc"
BUILDAH_RUNROOT = RUN / "buildah"
CNI_CONF_DIR = RUN / "cni-net.d"
CNI_DATA_DIR = RUN / "cni-ipam"
PID_DIR = RUN / "pids"
CONFIG_DIR = RUN / "config"

# Persistent across a run but wiped by `down`: pod volumes, plugin dirs.
KUBELET_ROOT = Path("/var/lib/cloudnative-journey/kubelet")

CNI_BIN_DIR = Path("/usr/lib/cni")
