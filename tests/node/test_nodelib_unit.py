"""Pure-logic parts of the node helpers: reference normalization, .dockerignore
evaluation, CNI config, PV permission fixing, and the e2e's playbook-output parsing."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from nodelib import appimage, containerd, paths, pvperms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e_full"))
import test_e2e_full as e2e


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("redis:7", "docker.io/library/redis:7"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        (
            "localhost/cloudnative-journey/redis:7-bookworm",
            "localhost/cloudnative-journey/redis:7-bookworm",
        ),
        ("registry.example:5000/team/app:1.0", "registry.example:5000/team/app:1.0"),
    ],
)
def test_normalize_ref_matches_docker_rules(ref, expected):
    assert appimage.normalize_ref(ref) == expected


def test_dockerignore_allow_list_keeps_only_listed_paths():
    patterns = [(False, "*"), (True, "app"), (True, "pyproject.toml"), (False, "**/__pycache__")]
    assert not appimage._ignored("app/main.py", patterns)
    assert not appimage._ignored("pyproject.toml", patterns)
    assert appimage._ignored("tests/test_x.py", patterns)
    assert appimage._ignored("app/__pycache__/main.cpython-311.pyc", patterns)


def test_cni_config_uses_the_pod_cidr_without_masquerade(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CNI_CONF_DIR", tmp_path)
    conf = json.loads(containerd.write_cni_config("10.244.3.0/24").read_text())
    bridge = conf["plugins"][0]
    assert bridge["bridge"] == containerd.BRIDGE
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24", "gateway": "10.244.3.1"}]]
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]


def test_pvperms_opens_only_directories_below_the_base(tmp_path):
    pv = tmp_path / "pv-1"
    pv.mkdir(mode=0o750)
    (tmp_path / "a-file").write_text("x")
    nested = pv / "nested"
    nested.mkdir(mode=0o700)
    assert pvperms.fix_once(str(tmp_path)) == [str(pv)]
    assert stat.S_IMODE(pv.stat().st_mode) == 0o777
    assert stat.S_IMODE(nested.stat().st_mode) == 0o700
    assert pvperms.fix_once(str(tmp_path)) == []
    assert pvperms.fix_once(str(tmp_path / "missing")) == []


RUN_OUTPUT = """
TASK [api : Ask Minikube for the node address] ***
skipping: [localhost]

TASK [redis : Check persistence] ***
skipping: [localhost]

PLAY RECAP ***
localhost                  : ok=68   changed=0    unreachable=0    failed=0    skipped=2
"""


def test_playbook_output_parsing():
    assert e2e.skipped_tasks(RUN_OUTPUT) == [
        "api : Ask Minikube for the node address",
        "redis : Check persistence",
    ]
    assert [t for t in e2e.skipped_tasks(RUN_OUTPUT) if not e2e.is_other_environment(t)] == [
        "redis : Check persistence"
    ]
    assert e2e.recap(RUN_OUTPUT) == {"ok": 68, "changed": 0, "unreachable": 0, "failed": 0}
