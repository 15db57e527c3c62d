"""Fixtures of the static deployment checks: the roles' manifests, rendered once per inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.tooling import INVENTORIES, ROLES, load_documents, run_tool


@pytest.fixture(scope="session", params=INVENTORIES)
def rendered(request, tmp_path_factory) -> dict[str, list[tuple[Path, dict]]]:
    """Every role's templates rendered by playbooks/render.yml: role -> [(file, object)]."""
    inventory = request.param
    out = tmp_path_factory.mktemp(f"manifests-{inventory}")
    result = run_tool(
        "ansible-playbook",
        "-i",
        f"inventory/{inventory}",
        "playbooks/render.yml",
        "-e",
        f"render_dir={out}",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    manifests: dict[str, list[tuple[Path, dict]]] = {}
    for role in ROLES:
        files = sorted((out / role).glob("*.yml"))
        manifests[role] = [(f, doc) for f in files for doc in load_documents(f)]
    return manifests
