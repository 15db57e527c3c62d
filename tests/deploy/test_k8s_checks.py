"""Unit tests of the verify.yml filters (pure logic on Kubernetes object dicts)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.deploy.tooling import REPO

_spec = importlib.util.spec_from_file_location(
    "k8s_checks", REPO / "roles/common/filter_plugins/k8s_checks.py"
)
k8s_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(k8s_checks)


def node(name: str, taints=None, labels=None) -> dict:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", **(labels or {})}},
        "spec": {"taints": taints or []},
    }


CONTROL_PLANE = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
KWOK = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}


def test_tolerate_everything_counts_every_node() -> None:
    nodes = [node("cp", [CONTROL_PLANE]), node("kwok-0", [KWOK]), node("plain")]
    assert k8s_checks.schedulable_nodes(nodes, [{"operator": "Exists"}]) == [
        "cp",
        "kwok-0",
        "plain",
    ]


def test_untolerated_taint_excludes_the_node() -> None:
    nodes = [node("cp", [CONTROL_PLANE]), node("kwok-0", [KWOK]), node("plain")]
    tolerations = [
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule",
        }
    ]
    assert k8s_checks.schedulable_nodes(nodes, tolerations) == ["cp", "plain"]


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake"}, True),
        ({"key": "kwok.x-k8s.io/node", "value": "fake"}, True),  # Equal is the default
        ({"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "real"}, False),
        ({"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Equal"}, False),
    ],
)
def test_toleration_matching(toleration: dict, tolerated: bool) -> None:
    assert k8s_checks.schedulable_nodes([node("kwok-0", [KWOK])], [toleration]) == (
        ["kwok-0"] if tolerated else []
    )


def test_prefer_no_schedule_and_daemonset_defaults_do_not_exclude() -> None:
    nodes = [
        node("soft", [{"key": "x", "effect": "PreferNoSchedule"}]),
        node("cordoned", [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        node("not-ready", [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
    ]
    assert k8s_checks.schedulable_nodes(nodes, []) == ["soft", "cordoned", "not-ready"]


def test_node_selector_filters() -> None:
    nodes = [node("linux"), node("windows", labels={"kubernetes.io/os": "windows"})]
    assert k8s_checks.schedulable_nodes(nodes, [], {"kubernetes.io/os": "linux"}) == ["linux"]


def ready_pod(status: str = "True", deleting: bool = False) -> dict:
    metadata = {"name": "p", **({"deletionTimestamp": "2025-01-01T00:00:00Z"} if deleting else {})}
    return {"metadata": metadata, "status": {"conditions": [{"type": "Ready", "status": status}]}}


def test_pod_ready() -> None:
    assert k8s_checks.pod_ready(ready_pod())
    assert not k8s_checks.pod_ready(ready_pod("False"))
    assert not k8s_checks.pod_ready(ready_pod(deleting=True))
    assert not k8s_checks.pod_ready({"metadata": {}, "status": {}})
    assert k8s_checks.ready_pods([ready_pod(), ready_pod("False")]) == [ready_pod()]


def deployment(**status) -> dict:
    base = {
        "observedGeneration": 2,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "conditions": [{"type": "Available", "status": "True"}],
    }
    return {
        "kind": "Deployment",
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {**base, **status},
    }


def test_rolled_out_deployment() -> None:
    assert k8s_checks.rolled_out(deployment())
    assert not k8s_checks.rolled_out(deployment(observedGeneration=1))  # new spec not seen yet
    assert not k8s_checks.rolled_out(deployment(updatedReplicas=1))  # old pod still there
    assert not k8s_checks.rolled_out(deployment(replicas=3))  # surge pod not yet gone
    assert not k8s_checks.rolled_out(deployment(readyReplicas=1))


def test_rolled_out_statefulset_needs_current_revision() -> None:
    sts = deployment(currentRevision="a", updateRevision="a")
    sts["kind"] = "StatefulSet"
    assert k8s_checks.rolled_out(sts)
    sts["status"]["updateRevision"] = "b"
    assert not k8s_checks.rolled_out(sts)


def test_rolled_out_daemonset() -> None:
    ds = {
        "kind": "DaemonSet",
        "metadata": {"generation": 1},
        "spec": {},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": 3,
            "updatedNumberScheduled": 3,
            "numberReady": 3,
            "numberAvailable": 3,
        },
    }
    assert k8s_checks.rolled_out(ds)
    ds["status"]["numberReady"] = 2
    assert not k8s_checks.rolled_out(ds)


def test_rolled_out_rejects_other_kinds() -> None:
    with pytest.raises(ValueError, match="unsupported kind"):
        k8s_checks.rolled_out({"kind": "Job", "metadata": {}, "spec": {}, "status": {}})


def test_job_conditions() -> None:
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert k8s_checks.job_complete(done) and not k8s_checks.job_failed(done)
    assert k8s_checks.job_failed(failed) and not k8s_checks.job_complete(failed)
    assert not k8s_checks.job_complete({"status": {}})
