"""Where the cluster's sources, cached binaries and runtime state live.

Everything generated stays outside the repository: binaries are cached per version
under ~/.cache/cloudnative-journey/bin (shared with tests/node), the running
cluster's state under ~/.cache/cloudnative-journey/cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = CLUSTER_DIR.parents[1]
GO_DIR = CLUSTER_DIR / "go"
MANIFESTS_DIR = CLUSTER_DIR / "manifests"
KWOK_STAGES = CLUSTER_DIR / "kwok" / "stages.yaml"

CACHE = Path(os.environ.get("CNJ_CACHE_DIR", Path.home() / ".cache" / "cloudnative-journey"))
BIN_CACHE = CACHE / "bin"
BUILD_LOGS = CACHE / "logs"
STATE = Path(os.environ.get("CNJ_CLUSTER_STATE_DIR", CACHE / "cluster"))
