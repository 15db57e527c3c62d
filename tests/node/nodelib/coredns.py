"""CoreDNS built from its Go module, run on the host, serving cluster.local from the API.

It listens on the node IP (port 1053, so it never competes for :53) and is published
as the `kube-dns` Service at the cluster DNS IP through a selector-less Service with a
hand-made EndpointSlice: pods reach it through kube-proxy like any cluster DNS.
"""

from __future__ import annotations

from pathlib import Path

from . import paths, pki, procs
from .cluster import ClusterInfo

VERSION = "v1.14.7"
PORT = 1053
HEALTH_PORT = 18053
READY_PORT = 18054
MODULE = "github.com/coredns/coredns"

RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
  labels: {app.kubernetes.io/managed-by: cloudnative-journey-realnode}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
  labels: {app.kubernetes.io/managed-by: cloudnative-journey-realnode}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: system:coredns}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
    kubernetes.io/name: CoreDNS
    app.kubernetes.io/managed-by: cloudnative-journey-realnode
spec:
  clusterIP: {dns_ip}
  ports:
    - {{name: dns, port: 53, protocol: UDP, targetPort: {port}}}
    - {{name: dns-tcp, port: 53, protocol: TCP, targetPort: {port}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: cloudnative-journey-realnode
addressType: IPv4
ports:
  - {{name: dns, port: {port}, protocol: UDP}}
  - {{name: dns-tcp, port: {port}, protocol: TCP}}
endpoints:
  - addresses: ["{node_ip}"]
    conditions: {{ready: true}}
"""


def binary() -> Path:
    """The CoreDNS binary, built once per version with `go install` into the cache."""
    out = paths.BIN_CACHE / f"coredns-{VERSION}"
    exe = out / "coredns"
    if exe.exists():
        return exe
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    print(f"[coredns] go install {MODULE}@{VERSION} (cold; several minutes)", flush=True)
    procs.run(
        ["go", "install", "-trimpath", "-ldflags", "-s -w", f"{MODULE}@{VERSION}"],
        # Its go.mod has no replace directives, so a plain `go install mod@version` works.
        env={"CGO_ENABLED": "0", "GOBIN": str(partial), "GOWORK": "off"},
        timeout=3600,
    )
    # Renamed only once complete: a half-built binary is never taken for a cached one.
    partial.rename(out)
    return exe


def corefile(node_ip: str, kubeconfig: Path) -> Path:
    text = f""".:{PORT} {{
    bind {node_ip}
    errors
    health 127.0.0.1:{HEALTH_PORT}
    ready 127.0.0.1:{READY_PORT}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""
    # No `forward`: names outside cluster.local are not resolved, so pods cannot reach
    # the host's upstream resolver (nothing leaves this machine).
    path = paths.CONFIG_DIR / "Corefile"
    path.write_text(text)
    return path


def start(cluster: ClusterInfo, node_ip: str) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=RBAC)
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input_text=SERVICE.format(dns_ip=cluster.dns_ip, port=PORT, node_ip=node_ip),
    )
    if procs.running_pid("coredns") is not None:
        return
    crt, key = pki.client_cert("coredns", "system:coredns", None, cluster.ca_crt, cluster.ca_key)
    kubeconfig = pki.kubeconfig("coredns", cluster.server, cluster.ca_crt, crt, key)
    procs.start("coredns", [str(binary()), "-conf", str(corefile(node_ip, kubeconfig))])


def ready() -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{READY_PORT}/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop() -> None:
    procs.stop("coredns", timeout=10)
