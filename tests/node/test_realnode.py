"""The real node works: a pod from the Debian-built image runs, gets an IP, resolves
cluster DNS, reaches a ClusterIP Service, and the Service's NodePort answers on the host.

Needs root, the Kubernetes binaries and the Debian packages from tests/node/README.md;
starts and stops the control plane and the node itself.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from nodelib import harness, images, node
from nodelib.cluster import discover

pytestmark = [pytest.mark.e2e_full, pytest.mark.slow, pytest.mark.timeout(1800)]

NS = "cnj-node-smoke"
NODE_SELECTOR = {"cloudnative-journey.io/real-node": "true"}

PROBE = r"""
import json, socket, sys, time, urllib.request
out = {}
out["pod_ip"] = socket.gethostbyname(socket.gethostname())
out["kubernetes"] = socket.gethostbyname("kubernetes.default.svc.cluster.local")
out["web_svc"] = socket.gethostbyname("web.%s.svc.cluster.local" % sys.argv[1])
# kube-proxy programs a new Service's endpoints within a second or two: retry briefly.
for attempt in range(30):
    try:
        url = "http://web.%s.svc.cluster.local/" % sys.argv[1]
        with urllib.request.urlopen(url, timeout=5) as r:
            out["web_status"] = r.status
            out["web_body"] = r.read().decode()
        break
    except OSError:
        if attempt == 29:
            raise
        time.sleep(1)
msg = json.dumps(out)
print(msg)
open("/dev/termination-log", "w").write(msg)
"""


def manifests() -> list[dict]:
    base = images.PYTHON_REF
    web_cmd = [
        "sh",
        "-c",
        "mkdir -p /tmp/www && echo hello-from-real-node > /tmp/www/index.html"
        " && cd /tmp/www && exec python3 -m http.server 8000",
    ]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
            "spec": {
                "nodeSelector": NODE_SELECTOR,
                "containers": [
                    {
                        "name": "web",
                        "image": base,
                        "imagePullPolicy": "Never",
                        "command": web_cmd,
                        "ports": [{"containerPort": 8000}],
                        "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8000}],
            },
        },
    ]


def probe_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": NS},
        "spec": {
            "nodeSelector": NODE_SELECTOR,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": images.PYTHON_REF,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", PROBE, NS],
                }
            ],
        },
    }


def _get(cluster, kind: str, name: str) -> dict:
    return json.loads(cluster.kubectl("-n", NS, "get", kind, name, "-o", "json").stdout)


@pytest.fixture(scope="module")
def cluster():
    timings = harness.Timings()
    with harness.cluster_with_real_node(timings, with_app=False) as env:
        yield discover(env)
    print("\n" + timings.report())


def test_pod_runs_and_reaches_dns_clusterip_and_nodeport(cluster):
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests()}),
    )
    cluster.kubectl(
        "-n", NS, "wait", "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=150
    )
    web = _get(cluster, "pod", "web")
    assert web["spec"]["nodeName"] == "cnj-realnode"
    assert web["status"]["podIP"].startswith("10.244.")

    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(probe_pod()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        probe = _get(cluster, "pod", "probe")
        if probe["status"].get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    state = probe["status"]["containerStatuses"][0]["state"]
    assert probe["status"]["phase"] == "Succeeded", json.dumps(state)
    result = json.loads(state["terminated"]["message"])
    svc = _get(cluster, "service", "web")
    assert result["kubernetes"] == "10.96.0.1"
    assert result["web_svc"] == svc["spec"]["clusterIP"]
    assert result["web_status"] == 200
    assert result["web_body"].strip() == "hello-from-real-node"

    # From the host: the ClusterIP itself, and the NodePort on loopback and the node IP.
    node_port = svc["spec"]["ports"][0]["nodePort"]
    for url in (
        f"http://{svc['spec']['clusterIP']}/",
        f"http://127.0.0.1:{node_port}/",
        f"http://{node.NODE_IP}:{node_port}/",
    ):
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read().decode().strip() == "hello-from-real-node", url

    status = node.status()
    print(json.dumps(status, indent=2))
    assert all(status["healthy"].values()), status["healthy"]
    # The control plane is torn down next: no need to wait for the namespace to go.
    cluster.kubectl("delete", "namespace", NS, "--wait=false")
