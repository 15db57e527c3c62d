"""Helpers of the static deployment checks: run the venv's tools from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ROLES = ("common", "redis", "postgresql", "api", "log_collector", "cleanup")
PLAYBOOKS = ("site", "verify", "teardown", "render")
# The inventories whose settings the manifests are rendered (and validated) with.
INVENTORIES = ("minikube", "production.example")


def run_tool(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a tool of the venv from the repository root, as `make test` would."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ANSIBLE_CONFIG", None)  # the repository's ansible.cfg, nothing else
    env["ANSIBLE_NOCOLOR"] = "1"
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [str(VENV_BIN / args[0]), *args[1:]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
