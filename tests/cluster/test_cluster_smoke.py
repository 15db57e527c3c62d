"""The test cluster behaves like a cluster for the objects the deployment uses:
StatefulSet claims bind and pods run on KWOK nodes, a DaemonSet that tolerates the
control-plane taint covers all three nodes, a Job made from a CronJob completes;
and `down` leaves no process behind."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.cluster import harness
from tests.cluster.clusterlib import procs

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

NS = "smoke"
IMAGE = "registry.invalid/never-pulled:1"  # KWOK nodes never pull anything


def wait_for(what: str, probe: Callable[[], object], timeout: float = 90) -> object:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not reached after {timeout}s (last: {last!r})")


def read_or_none(read: Callable[[], object]) -> object:
    """The object, or None while its controller has not created it yet."""
    try:
        return read()
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def container() -> client.V1Container:
    return client.V1Container(name="main", image=IMAGE)


def statefulset() -> client.V1StatefulSet:
    labels = {"app": "store"}
    return client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="store"),
        spec=client.V1StatefulSetSpec(
            service_name="store",
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container()]),
            ),
            # No storageClassName: the default class (`standard`) must take it.
            volume_claim_templates=[
                client.V1PersistentVolumeClaim(
                    metadata=client.V1ObjectMeta(name="data"),
                    spec=client.V1PersistentVolumeClaimSpec(
                        access_modes=["ReadWriteOnce"],
                        resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
                    ),
                )
            ],
        ),
    )


def daemonset() -> client.V1DaemonSet:
    labels = {"app": "agent"}
    toleration = client.V1Toleration(
        key="node-role.kubernetes.io/control-plane", operator="Exists", effect="NoSchedule"
    )
    return client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="agent"),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container()], tolerations=[toleration]),
            ),
        ),
    )


def cronjob() -> client.V1CronJob:
    return client.V1CronJob(
        metadata=client.V1ObjectMeta(name="cleanup"),
        spec=client.V1CronJobSpec(
            schedule="0 3 * * *",
            job_template=client.V1JobTemplateSpec(
                spec=client.V1JobSpec(
                    backoff_limit=0,
                    template=client.V1PodTemplateSpec(
                        spec=client.V1PodSpec(containers=[container()], restart_policy="Never")
                    ),
                )
            ),
        ),
    )


@pytest.fixture(scope="module")
def api():
    steps = harness.Steps()
    state_dir = harness.test_state_dir()
    with harness.running_cluster(steps, state_dir) as env:
        yield config.new_client_from_config(config_file=env["KUBECONFIG"])
    assert procs.owned_by(state_dir) == {}, "`down` left processes behind"


@pytest.fixture(scope="module")
def namespace(api):
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    return NS


def test_three_ready_nodes_one_tainted_control_plane(api):
    nodes = client.CoreV1Api(api).list_node().items
    ready = {
        n.metadata.name
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
    }
    assert len(ready) == 3, [n.metadata.name for n in nodes]
    tainted = [
        n.metadata.name
        for n in nodes
        if "node-role.kubernetes.io/control-plane" in n.metadata.labels
        and any(
            t.key == "node-role.kubernetes.io/control-plane" and t.effect == "NoSchedule"
            for t in n.spec.taints or []
        )
    ]
    assert tainted == ["kwok-control-plane"]


def test_statefulset_claim_binds_and_pod_runs_on_a_kwok_node(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(namespace, statefulset())
    claim = wait_for(
        "PVC data-store-0 Bound",
        lambda: (
            c
            if (
                c := read_or_none(
                    lambda: core.read_namespaced_persistent_volume_claim("data-store-0", namespace)
                )
            )
            and c.status.phase == "Bound"
            else None
        ),
    )
    assert claim.spec.storage_class_name == "standard"
    volume = core.read_persistent_volume(claim.spec.volume_name)
    assert volume.spec.host_path is not None
    pod = wait_for(
        "pod store-0 Running and Ready",
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod(namespace, label_selector="app=store").items
                if p.status.phase == "Running"
                and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
            ),
            None,
        ),
    )
    assert pod.spec.node_name in {"kwok-worker-1", "kwok-worker-2"}
    assert pod.status.pod_ip.startswith("10.244."), pod.status.pod_ip


def test_daemonset_with_control_plane_toleration_covers_three_nodes(api, namespace):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_daemon_set(namespace, daemonset())

    def counts():
        status = apps.read_namespaced_daemon_set_status("agent", namespace).status
        wanted = (status.desired_number_scheduled, status.number_ready)
        return wanted if wanted == (3, 3) else None

    wait_for("DaemonSet agent desired == ready == 3", counts)


def test_job_created_from_cronjob_completes(api, namespace):
    batch = client.BatchV1Api(api)
    cron = batch.create_namespaced_cron_job(namespace, cronjob())
    # What `kubectl create job --from=cronjob/cleanup` does.
    job = client.V1Job(
        metadata=client.V1ObjectMeta(
            name="cleanup-manual",
            owner_references=[
                client.V1OwnerReference(
                    api_version="batch/v1",
                    kind="CronJob",
                    name=cron.metadata.name,
                    uid=cron.metadata.uid,
                    controller=True,
                )
            ],
        ),
        spec=cron.spec.job_template.spec,
    )
    batch.create_namespaced_job(namespace, job)
    done = wait_for(
        "Job cleanup-manual Complete",
        lambda: (
            s
            if (s := batch.read_namespaced_job_status("cleanup-manual", namespace).status)
            and s.succeeded == 1
            and any(c.type == "Complete" and c.status == "True" for c in s.conditions or [])
            else None
        ),
    )
    assert not done.failed
