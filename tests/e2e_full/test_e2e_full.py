"""The whole deployment on the test cluster with a real node (make e2e-full).

control plane up -> real node up (images built or reused) -> site.yml -> the complete
verify.yml (no tag filter) -> site.yml again, which must change nothing -> teardown ->
node down -> control plane down. The last three run whatever happened before them.
Per-step durations are printed at the end.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))

from nodelib import harness, paths

pytestmark = [pytest.mark.e2e_full, pytest.mark.slow, pytest.mark.timeout(3600)]

INVENTORY = paths.REPO_ROOT / "inventory" / "test-node"
PLAYBOOKS = paths.REPO_ROOT / "playbooks"
RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


def ansible_playbook() -> str:
    exe = Path(sys.executable).with_name("ansible-playbook")
    return str(exe) if exe.exists() else "ansible-playbook"


def playbook(timings: harness.Timings, name: str, env: dict[str, str], label: str):
    argv = [ansible_playbook(), "-i", str(INVENTORY), str(PLAYBOOKS / f"{name}.yml")]
    # profile_tasks prints each task's duration: where a slow step spends its time.
    extra = {"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    return timings.run(label, argv, env={**env, **extra}, timeout=1800)


TASK_LINE = re.compile(r"^TASK \[(.+?)\]", re.M)


def skipped_tasks(output: str) -> list[str]:
    """Names of the tasks ansible reported as `skipping:`."""
    skipped, current = [], None
    for line in output.splitlines():
        m = TASK_LINE.match(line)
        if m:
            current = m.group(1)
        elif line.startswith("skipping:") and current and current not in skipped:
            skipped.append(current)
    return skipped


def is_other_environment(task: str) -> bool:
    """A branch for another kind of cluster (Minikube), not a check left out here."""
    return "minikube" in task.lower()


def recap(output: str) -> dict[str, int]:
    """Totals of the PLAY RECAP lines of one ansible-playbook run."""
    totals = {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0}
    for _host, ok, changed, unreachable, failed in RECAP.findall(output):
        totals["ok"] += int(ok)
        totals["changed"] += int(changed)
        totals["unreachable"] += int(unreachable)
        totals["failed"] += int(failed)
    return totals


def test_site_verify_idempotent_teardown_on_real_node():
    for name in ("site", "verify"):
        assert (PLAYBOOKS / f"{name}.yml").exists(), f"playbooks/{name}.yml does not exist yet"
    timings = harness.Timings()
    try:
        with harness.cluster_with_real_node(timings) as env:
            try:
                site = playbook(timings, "site", env, "site.yml")
                assert site.returncode == 0, "site.yml failed (its output is above)"

                verify = playbook(timings, "verify", env, "verify.yml (complete)")
                assert verify.returncode == 0, "verify.yml failed (its output is above)"
                skipped = skipped_tasks(verify.stdout)
                print(f"verify.yml skipped tasks: {skipped}")
                checks_skipped = [t for t in skipped if not is_other_environment(t)]
                assert not checks_skipped, f"verify.yml skipped checks: {checks_skipped}"

                # Memory of the node with the whole stack running on it.
                timings.run(
                    "node status", [sys.executable, str(harness.REALNODE), "status"], env=env
                )

                again = playbook(timings, "site", env, "site.yml again")
                assert again.returncode == 0, "site.yml re-run failed"
                totals = recap(again.stdout)
                assert totals["ok"] > 0, "no PLAY RECAP found in the re-run's output"
                assert totals["changed"] == 0, f"site.yml re-run changed things: {totals}"
            finally:
                if (PLAYBOOKS / "teardown.yml").exists():
                    down = playbook(timings, "teardown", env, "teardown.yml")
                    assert down.returncode == 0, "teardown.yml failed"
    finally:
        print("\n" + timings.report(), flush=True)
