"""The rendered manifests: valid for every supported Kubernetes version (strict schema),
named after their object, and compliant with the rules the deployment promises."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml

from tests.deploy.tooling import ROLES

# The Kubernetes minor versions the deployment supports (and Minikube/KWOK run).
SUPPORTED_VERSIONS = ("1.32", "1.33", "1.34")
APP_ROLES = ("redis", "postgresql", "api", "cleanup")
FIELD_NAMES = {
    "ConfigMap": "configmap",
    "Secret": "secret",
    "Service": "service",
    "HorizontalPodAutoscaler": "horizontalpodautoscaler",
}


def all_objects(rendered):
    return [(role, path, obj) for role in ROLES for path, obj in rendered[role]]


def pod_spec(obj: dict) -> dict | None:
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def test_every_role_renders_objects(rendered) -> None:
    for role in ROLES:
        assert rendered[role], f"role {role} rendered no object"


def test_one_object_per_template_named_after_its_kind(rendered) -> None:
    for _role, path, obj in all_objects(rendered):
        others = [o for _r, p, o in all_objects(rendered) if p == path]
        assert len(others) == 1, f"{path.name} holds {len(others)} objects"
        stem = path.name.removesuffix(".yml")
        assert stem.split("-")[0] == obj["kind"].lower(), f"{path.name} holds a {obj['kind']}"


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_manifests_are_valid_for_kubernetes(rendered, version: str) -> None:
    failures = []
    for _role, path, obj in all_objects(rendered):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(
                f"{path.parent.name}/{path.name}: {'.'.join(map(str, exc.path))}: {exc.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(f"{path.parent.name}/{path.name}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_validation_rejects_an_unknown_field(rendered) -> None:
    """The strict mode really is strict: a misspelt field fails (guards the test above)."""
    _path, deployment = next((p, o) for p, o in rendered["api"] if o["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SUPPORTED_VERSIONS[0], strict=True)


def test_every_object_carries_the_common_labels(rendered) -> None:
    for _role, path, obj in all_objects(rendered):
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "cloudnative-journey", path.name
        assert labels.get("app.kubernetes.io/managed-by") == "ansible", path.name
        assert labels.get("app.kubernetes.io/version"), path.name


def test_app_namespace_enforces_restricted_pod_security(rendered) -> None:
    namespaces = {o["metadata"]["name"]: o for _p, o in rendered["common"]}
    app = next(o for o in namespaces.values() if o["metadata"]["name"] == "cloudnative-journey")
    assert app["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for role in APP_ROLES:
        for path, obj in rendered[role]:
            assert obj["metadata"]["namespace"] == "cloudnative-journey", path.name


def test_every_app_pod_meets_the_restricted_profile(rendered) -> None:
    for role in APP_ROLES:
        for path, obj in rendered[role]:
            spec = pod_spec(obj)
            if spec is None:
                continue
            pod_ctx = spec["securityContext"]
            assert pod_ctx["runAsNonRoot"] is True, path.name
            assert pod_ctx["seccompProfile"]["type"] == "RuntimeDefault", path.name
            assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, (
                path.name
            )
            for volume in spec.get("volumes", []):
                assert "hostPath" not in volume, f"{path.name}: hostPath volume {volume['name']}"
            for container in spec["containers"] + spec.get("initContainers", []):
                ctx = container["securityContext"]
                where = f"{path.name}/{container['name']}"
                assert ctx["allowPrivilegeEscalation"] is False, where
                assert ctx["capabilities"]["drop"] == ["ALL"], where
                assert "add" not in ctx["capabilities"], where
                assert ctx["readOnlyRootFilesystem"] is True, where
                assert container["resources"]["limits"] and container["resources"]["requests"], (
                    where
                )


def test_images_are_pinned_never_latest(rendered) -> None:
    for _role, path, obj in all_objects(rendered):
        spec = pod_spec(obj)
        for container in (spec or {}).get("containers", []):
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{path.name}: {image} has no tag"
            assert not image.endswith(":latest"), f"{path.name}: {image}"


def find(rendered, role: str, kind: str, name_part: str = "") -> dict:
    return next(o for p, o in rendered[role] if o["kind"] == kind and name_part in p.name)


def test_statefulsets_have_headless_service_and_volume(rendered) -> None:
    for role in ("redis", "postgresql"):
        sts = find(rendered, role, "StatefulSet")
        service = find(rendered, role, "Service", "headless")
        assert service["spec"]["clusterIP"] == "None"
        assert sts["spec"]["serviceName"] == service["metadata"]["name"]
        claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
        assert claim["accessModes"] == ["ReadWriteOnce"]
        assert claim["resources"]["requests"]["storage"]


def test_redis_config_and_probes(rendered) -> None:
    conf = find(rendered, "redis", "ConfigMap")["data"]["redis.conf"]
    for line in (
        "appendonly yes",
        "appendfsync everysec",
        "maxmemory-policy allkeys-lru",
        "save 900 1",
    ):
        assert re.search(rf"(?m)^{line}$", conf), line
    assert not re.search(r"(?m)^requirepass", conf), "the password belongs in the Secret"
    assert re.search(r"(?m)^include \S+/requirepass\.conf$", conf)
    container = find(rendered, "redis", "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = " ".join(container[probe]["exec"]["command"])
        assert "redis-cli" in command and " -a " not in command, probe


def test_api_deployment_shape(rendered) -> None:
    deployment = find(rendered, "api", "Deployment")
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}
    pod = spec["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    container = pod["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["startupProbe"]
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    env_from = {next(iter(ref)) for ref in container["envFrom"]}
    assert env_from == {"configMapRef", "secretRef"}
    config = find(rendered, "api", "ConfigMap", "configmap-config")
    grace = yaml_value(config["data"]["config.yaml"], "shutdown_grace_seconds")
    assert pod["spec"]["terminationGracePeriodSeconds"] > sleep + grace
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    env_config = find(rendered, "api", "ConfigMap", "configmap-env")["data"]
    assert env_config["CONFIG_FILE"] == mount["mountPath"] + "/config.yaml"
    service = find(rendered, "api", "Service")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == 30080


def yaml_value(text: str, key: str):
    return yaml.safe_load(text)[key]


def test_api_hpa(rendered) -> None:
    hpa = find(rendered, "api", "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_collector_daemonset_shape(rendered) -> None:
    ds = find(rendered, "log_collector", "DaemonSet")
    assert ds["metadata"]["namespace"] == "cloudnative-journey-logging"
    pod = ds["spec"]["template"]
    spec = pod["spec"]
    assert {"operator": "Exists"} in spec["tolerations"]
    container = spec["containers"][0]
    env = {
        e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        for e in container["env"]
    }
    assert env == {
        "NODE_NAME": "spec.nodeName",
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in ("/var/log", "/var/log/pods"):
        assert mounts[path]["readOnly"] is True, path
        assert volumes[mounts[path]["name"]]["hostPath"]["path"] == path
    state = next(m for m in container["volumeMounts"] if m["name"] == "state")
    assert state.get("readOnly") is not True and "hostPath" in volumes["state"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9102"
    assert container["resources"]["limits"]
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_cleanup_cronjob_shape(rendered) -> None:
    spec = find(rendered, "cleanup", "CronJob")["spec"]
    assert spec["schedule"] == "0 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    job = spec["jobTemplate"]["spec"]
    assert (job["backoffLimit"], job["activeDeadlineSeconds"]) == (3, 300)
    assert job["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_only_api_and_cleanup_reach_the_data_stores(rendered) -> None:
    for role in ("redis", "postgresql"):
        policy = find(rendered, role, "NetworkPolicy")
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        (rule,) = policy["spec"]["ingress"]
        (peer,) = rule["from"]
        (expression,) = peer["podSelector"]["matchExpressions"]
        assert expression["operator"] == "In" and sorted(expression["values"]) == ["api", "cleanup"]
        selected = policy["spec"]["podSelector"]["matchLabels"]
        sts = find(rendered, role, "StatefulSet")
        assert sts["spec"]["selector"]["matchLabels"] == selected


def test_clients_read_credentials_from_secrets(rendered) -> None:
    secrets = {
        o["metadata"]["name"] for _r, _p, o in all_objects(rendered) if o["kind"] == "Secret"
    }
    for role, kind in (("api", "Deployment"), ("cleanup", "CronJob")):
        container = pod_spec(find(rendered, role, kind))["containers"][0]
        refs = {r["secretRef"]["name"] for r in container["envFrom"] if "secretRef" in r}
        refs |= {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs and refs <= secrets, (role, refs, secrets)
        for entry in container.get("env", []):
            assert "PASSWORD" not in entry["name"] or "valueFrom" in entry, entry["name"]
