"""Filters for verify.yml: read rollout and scheduling state from Kubernetes objects.

Kept as filters (not inline Jinja) so that the checks read as one line each and the
logic is unit-tested in tests/deploy/test_k8s_checks.py.
"""

from __future__ import annotations

from typing import Any

# Taint effects that keep a pod off a node (PreferNoSchedule only discourages).
_BLOCKING_EFFECTS = {"NoSchedule", "NoExecute"}
# The DaemonSet controller adds these tolerations to every DaemonSet pod.
_DAEMONSET_TOLERATIONS = [
    {"key": f"node.kubernetes.io/{key}", "operator": "Exists", "effect": effect}
    for key, effect in (
        ("not-ready", "NoExecute"),
        ("unreachable", "NoExecute"),
        ("disk-pressure", "NoSchedule"),
        ("memory-pressure", "NoSchedule"),
        ("pid-pressure", "NoSchedule"),
        ("unschedulable", "NoSchedule"),
    )
]


def _tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Kubernetes' toleration matching: key, operator (Equal/Exists), value and effect."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    operator = toleration.get("operator", "Equal")
    if not key:
        # An empty key with Exists matches every taint; with Equal it is invalid.
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return toleration.get("value", "") == taint.get("value", "")


def schedulable_nodes(
    nodes: list[dict[str, Any]],
    tolerations: list[dict[str, Any]] | None = None,
    node_selector: dict[str, str] | None = None,
) -> list[str]:
    """Names of the nodes a DaemonSet with these tolerations and nodeSelector runs on.

    Cordoned nodes count: DaemonSet pods tolerate node.kubernetes.io/unschedulable.
    """
    tolerations = [*(tolerations or []), *_DAEMONSET_TOLERATIONS]
    node_selector = node_selector or {}
    names = []
    for node in nodes:
        metadata = node.get("metadata", {})
        labels = metadata.get("labels") or {}
        if any(labels.get(key) != value for key, value in node_selector.items()):
            continue
        taints = (node.get("spec") or {}).get("taints") or []
        blocking = [t for t in taints if t.get("effect") in _BLOCKING_EFFECTS]
        if all(any(_tolerates(tol, taint) for tol in tolerations) for taint in blocking):
            names.append(metadata.get("name", ""))
    return names


def _condition_true(obj: dict[str, Any], condition: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == condition and c.get("status") == "True" for c in conditions)


def pod_ready(pod: dict[str, Any]) -> bool:
    """The pod's Ready condition is True (all containers ready, not terminating)."""
    terminating = (pod.get("metadata") or {}).get("deletionTimestamp") is not None
    return not terminating and _condition_true(pod, "Ready")


def ready_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods of the list whose Ready condition is True."""
    return [pod for pod in pods if pod_ready(pod)]


def rolled_out(obj: dict[str, Any]) -> bool:
    """A Deployment, StatefulSet or DaemonSet runs its current spec on every replica, all ready."""
    kind = obj.get("kind")
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        raise ValueError(f"rolled_out: unsupported kind {kind!r}")
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < metadata.get("generation", 1):
        return False
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        return (
            status.get("updatedNumberScheduled", 0) == desired
            and status.get("numberReady", 0) == desired
            and status.get("numberAvailable", 0) == desired
        )
    replicas = spec.get("replicas", 1)
    counts = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    if any(status.get(field, 0) != replicas for field in counts):
        return False
    if kind == "StatefulSet":
        return status.get("currentRevision") == status.get("updateRevision")
    return _condition_true(obj, "Available")


def job_complete(job: dict[str, Any]) -> bool:
    """The Job finished successfully (condition Complete)."""
    return _condition_true(job, "Complete")


def job_failed(job: dict[str, Any]) -> bool:
    """The Job gave up (condition Failed: backoff limit or deadline reached)."""
    return _condition_true(job, "Failed")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "k8s_schedulable_nodes": schedulable_nodes,
            "k8s_pod_ready": pod_ready,
            "k8s_ready_pods": ready_pods,
            "k8s_rolled_out": rolled_out,
            "k8s_job_complete": job_complete,
            "k8s_job_failed": job_failed,
        }
