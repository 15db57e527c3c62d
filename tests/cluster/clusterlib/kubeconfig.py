"""Self-contained kubeconfig files (certificates embedded, so they can be copied around)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .pki import Pair


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write(path: Path, server: str, ca_crt: Path, user: str, client: Pair, context: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_crt)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.crt),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }
    # JSON is valid YAML: no YAML library needed to write it.
    path.write_text(json.dumps(doc, indent=2) + "\n")
    path.chmod(0o600)
    return path
