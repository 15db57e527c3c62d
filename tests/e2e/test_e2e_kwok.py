"""The deployment against a real Kubernetes API (the KWOK test cluster): site.yml
converges, verify.yml's cluster-object checks pass, a second site.yml changes
nothing, teardown.yml cleans up; the cluster is stopped whatever happens."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.cluster import harness

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

REPO = harness.REPO_ROOT
INVENTORY = REPO / "inventory" / "test-cluster"
PLAYBOOK_BIN = Path(sys.executable).with_name("ansible-playbook")
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


def recap(output: str) -> dict[str, dict[str, int]]:
    """host -> {ok, changed, failed, ...} from the PLAY RECAP at the end of a run."""
    _, marker, tail = output.rpartition("PLAY RECAP")
    if not marker:
        raise AssertionError(f"no PLAY RECAP in the output:\n{output[-3000:]}")
    hosts = {}
    for line in tail.splitlines():
        m = RECAP_LINE.match(line.strip())
        if m:
            pairs = (kv.split("=") for kv in m.group("counts").split())
            hosts[m.group("host")] = {k: int(v) for k, v in pairs}
    return hosts


def playbook(name: str, *extra: str) -> list[str]:
    return [str(PLAYBOOK_BIN), "-i", str(INVENTORY), str(REPO / "playbooks" / name), *extra]


def test_site_verify_idempotence_teardown():
    assert (REPO / "playbooks" / "site.yml").exists(), "playbooks/site.yml is missing"
    steps = harness.Steps()
    with harness.running_cluster(steps, harness.test_state_dir()) as env:
        # No colour codes in the output the recap is parsed from.
        env = {**env, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
        steps.check("site.yml", playbook("site.yml"), env=env)
        steps.check(
            "verify.yml --tags objects", playbook("verify.yml", "--tags", "objects"), env=env
        )
        rerun = steps.check("site.yml again (idempotence)", playbook("site.yml"), env=env)
        changed = {host: counts.get("changed") for host, counts in recap(rerun.stdout).items()}
        assert changed and all(n == 0 for n in changed.values()), (
            f"second site.yml run changed something: {changed}\n{rerun.stdout[-5000:]}"
        )
        steps.check("teardown.yml", playbook("teardown.yml"), env=env)
