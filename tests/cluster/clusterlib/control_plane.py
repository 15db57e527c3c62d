"""Start and stop etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the
KWOK controller on loopback, and describe the running cluster.

The components are started directly rather than through `kwokctl --runtime binary`:
the PKI (and its CA key) is ours, so a real kubelet can join later; every flag is
visible here; and nothing can try to download anything.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import build, kubeconfig, paths, pki, procs

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
CLUSTER_DNS = "10.96.0.10"
KUBERNETES_SERVICE_IP = "10.96.0.1"
CONTEXT = "cloudnative-journey-test"
NODE_NAMES = ("kwok-control-plane", "kwok-worker-1", "kwok-worker-2")
# Where kube-apiserver listens and what it advertises in the `kubernetes` Service.
# Loopback by default; the real-node step may need an address its pods can reach.
BIND_ADDRESS = os.environ.get("CNJ_APISERVER_BIND_ADDRESS", "127.0.0.1")
ADVERTISE_ADDRESS = os.environ.get("CNJ_APISERVER_ADVERTISE_ADDRESS", "127.0.0.1")


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class Layout:
    """Files of one cluster under its state directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


LAYOUT = Layout(paths.STATE)


def _https_get(url: str, ca: Path | None, client: pki.Pair | None) -> int:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    if client:
        ctx.load_cert_chain(str(client.crt), str(client.key))
    with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:
        return resp.status


def _http_ok(url: str, ca: Path | None = None, client: pki.Pair | None = None) -> bool:
    try:
        if url.startswith("https:"):
            return _https_get(url, ca, client) == 200
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status == 200
    except (OSError, ssl.SSLError):
        return False


# --- routes ---------------------------------------------------------------------------


def _blackhole_exists(cidr: str) -> bool:
    out = subprocess.run(["ip", "route", "show", "exact", cidr], capture_output=True, text=True)
    return out.stdout.strip().startswith("blackhole")


def add_blackhole_routes() -> list[str]:
    """Blackhole the service and pod ranges (no fake IP may leak to the default route).
    Returns the routes this call added; ones already there (another cluster's) are kept."""
    if os.environ.get("CNJ_SKIP_ROUTES") == "1":
        return []
    added = []
    for cidr in (SERVICE_CIDR, POD_CIDR):
        if _blackhole_exists(cidr):
            continue
        res = subprocess.run(
            ["ip", "route", "replace", "blackhole", cidr], capture_output=True, text=True
        )
        if res.returncode != 0:
            raise ClusterError(
                f"cannot add the blackhole route for {cidr}: {res.stderr.strip()} "
                "(needs root; CNJ_SKIP_ROUTES=1 skips it)"
            )
        added.append(cidr)
    return added


def remove_blackhole_routes(added: list[str]) -> None:
    for cidr in added:
        subprocess.run(["ip", "route", "del", "blackhole", cidr], capture_output=True)


# --- components -----------------------------------------------------------------------


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(*(procs.free_port() for _ in range(6)))


def _make_pki(layout: Layout) -> dict[str, pki.Pair]:
    d = layout.pki
    d.mkdir(parents=True)
    ca = pki.create_ca(d, "ca")
    server_names = (
        "localhost",
        "127.0.0.1",
        BIND_ADDRESS,
        ADVERTISE_ADDRESS,
        KUBERNETES_SERVICE_IP,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    sans = tuple(dict.fromkeys(n for n in server_names if n != "0.0.0.0"))
    return {
        "ca": ca,
        "sa": pki.service_account_keys(d),
        "apiserver": pki.issue(
            ca, d, "apiserver", "kube-apiserver", server_names=sans, client=False
        ),
        "apiserver-kubelet-client": pki.issue(
            ca, d, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
        ),
        "admin": pki.issue(ca, d, "admin", "kubernetes-admin", "system:masters"),
        "controller-manager": pki.issue(
            ca, d, "controller-manager", "system:kube-controller-manager"
        ),
        "scheduler": pki.issue(ca, d, "scheduler", "system:kube-scheduler"),
        "kwok": pki.issue(ca, d, "kwok", "kwok-controller", "system:masters"),
    }


def _endpoint_reconciler() -> list[str]:
    # Endpoints may not hold a loopback IP: with the default advertise address the
    # `kubernetes` Service keeps no endpoints instead of an error every 10 seconds.
    if ipaddress.ip_address(ADVERTISE_ADDRESS).is_loopback:
        return ["--endpoint-reconciler-type=none"]
    return []


def _component_argv(
    bins: build.Binaries,
    layout: Layout,
    ports: Ports,
    certs: dict[str, pki.Pair],
    kubeconfigs: dict[str, Path],
) -> dict[str, list]:
    etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
    ca = str(certs["ca"].crt)
    return {
        "etcd": [
            str(bins.etcd / "etcd"),
            "--name=test",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
            f"--initial-cluster=test=http://127.0.0.1:{ports.etcd_peer}",
            "--listen-metrics-urls=",
            "--log-level=warn",
            # A throw-away test store: fsync buys nothing and costs seconds per run.
            "--unsafe-no-fsync",
        ],
        "kube-apiserver": [
            str(bins.kube("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={BIND_ADDRESS}",
            f"--secure-port={ports.apiserver}",
            f"--advertise-address={ADVERTISE_ADDRESS}",
            f"--tls-cert-file={certs['apiserver'].crt}",
            f"--tls-private-key-file={certs['apiserver'].key}",
            f"--client-ca-file={ca}",
            f"--kubelet-client-certificate={certs['apiserver-kubelet-client'].crt}",
            f"--kubelet-client-key={certs['apiserver-kubelet-client'].key}",
            # Reach kubelets (logs, exec) by IP, as kubeadm does: node names need no DNS.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--service-account-key-file={certs['sa'].crt}",
            f"--service-account-signing-key-file={certs['sa'].key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # Lets a real kubelet join with a bootstrap token, as with kubeadm.
            "--enable-bootstrap-token-auth",
            "--allow-privileged=true",
            *_endpoint_reconciler(),
            "--profiling=false",
            "--v=1",
        ],
        "kube-controller-manager": [
            str(bins.kube("kube-controller-manager")),
            f"--kubeconfig={kubeconfigs['controller-manager']}",
            f"--authentication-kubeconfig={kubeconfigs['controller-manager']}",
            f"--authorization-kubeconfig={kubeconfigs['controller-manager']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.controller_manager}",
            f"--cert-dir={layout.root / 'controller-manager'}",
            f"--service-account-private-key-file={certs['sa'].key}",
            f"--root-ca-file={ca}",
            f"--cluster-signing-cert-file={ca}",
            f"--cluster-signing-key-file={certs['ca'].key}",
            "--use-service-account-credentials=true",
            "--controllers=*,bootstrap-signer-controller,token-cleaner-controller",
            # Node podCIDRs: KWOK hands out pod IPs from them, a real kubelet's CNI too.
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={POD_CIDR}",
            "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Backs the `standard` StorageClass (kubernetes.io/host-path).
            "--enable-hostpath-provisioner=true",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        "kube-scheduler": [
            str(bins.kube("kube-scheduler")),
            f"--kubeconfig={kubeconfigs['scheduler']}",
            f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
            f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.scheduler}",
            f"--cert-dir={layout.root / 'scheduler'}",
            "--leader-elect=false",
            "--profiling=false",
        ],
        "kwok": [
            str(bins.kwok / "kwok"),
            f"--kubeconfig={kubeconfigs['kwok']}",
            f"--config={layout.root / 'kwok.yaml'}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40",
            "--node-ip=127.0.0.1",
            f"--cidr={POD_CIDR}",
            f"--server-address=127.0.0.1:{ports.kwok}",
        ],
    }


def _kubectl(
    bins: build.Binaries, layout: Layout, *args: str, stdin: str | None = None, timeout: float = 120
) -> str:
    res = subprocess.run(
        [str(bins.kube("kubectl")), f"--kubeconfig={layout.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


def read_state(layout: Layout = LAYOUT) -> dict | None:
    try:
        return json.loads(layout.state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_running(layout: Layout = LAYOUT) -> bool:
    state = read_state(layout)
    pids = (state or {}).get("pids") or {}
    return bool(pids) and all(procs.alive(pid) for pid in pids.values())


def up(log=print, layout: Layout = LAYOUT) -> dict:
    """Start a fresh cluster (after stopping any leftover of a previous one)."""
    started = time.monotonic()
    bins = build.ensure_built(log)
    built = time.monotonic()
    down(log=lambda _msg: None, layout=layout)
    layout.root.mkdir(parents=True, exist_ok=True)
    # Fresh state every time: etcd data, certificates and logs of a previous run go.
    for child in layout.root.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    layout.logs.mkdir()

    state: dict = {"pids": {}, "routes_added": [], "bin_dir": str(bins.kubernetes)}
    try:
        state["routes_added"] = add_blackhole_routes()
        _write_state(layout, state)
        ports = Ports.pick()
        state["ports"] = ports.__dict__
        certs = _make_pki(layout)
        host = "127.0.0.1" if BIND_ADDRESS == "0.0.0.0" else BIND_ADDRESS
        server = f"https://{host}:{ports.apiserver}"
        state["server"] = server
        kubeconfigs = {
            "admin": kubeconfig.write(
                layout.kubeconfig,
                server,
                certs["ca"].crt,
                "kubernetes-admin",
                certs["admin"],
                CONTEXT,
            ),
        }
        for name in ("controller-manager", "scheduler", "kwok"):
            kubeconfigs[name] = kubeconfig.write(
                layout.root / f"{name}.kubeconfig",
                server,
                certs["ca"].crt,
                name,
                certs[name],
                CONTEXT,
            )
        shutil.copyfile(paths.KWOK_STAGES, layout.root / "kwok.yaml")
        argv = _component_argv(bins, layout, ports, certs, kubeconfigs)

        def launch(name: str) -> int:
            pid = procs.start(argv[name], layout.log(name))
            state["pids"][name] = pid
            _write_state(layout, state)
            return pid

        pid = launch("etcd")
        procs.wait_until(
            "etcd",
            lambda: _http_ok(f"http://127.0.0.1:{ports.etcd_client}/health"),
            30,
            pid,
            layout.log("etcd"),
        )
        pid = launch("kube-apiserver")
        procs.wait_until(
            "kube-apiserver",
            lambda: _http_ok(f"{server}/readyz", certs["ca"].crt, certs["admin"]),
            120,
            pid,
            layout.log("kube-apiserver"),
        )
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            launch(name)
        for name, port in (
            ("kube-controller-manager", ports.controller_manager),
            ("kube-scheduler", ports.scheduler),
        ):
            procs.wait_until(
                name,
                lambda port=port: _http_ok(f"https://127.0.0.1:{port}/healthz"),
                60,
                state["pids"][name],
                layout.log(name),
            )
        procs.wait_until(
            "kwok",
            lambda: _http_ok(f"http://127.0.0.1:{ports.kwok}/healthz"),
            30,
            state["pids"]["kwok"],
            layout.log("kwok"),
        )

        _kubectl(bins, layout, "apply", "-f", str(paths.MANIFESTS_DIR / "bootstrap.yaml"))
        _kubectl(
            bins,
            layout,
            "wait",
            "--for=condition=Ready",
            "--timeout=90s",
            *(f"node/{n}" for n in NODE_NAMES),
            timeout=120,
        )
        # Pods are refused until the namespace's `default` ServiceAccount exists.
        procs.wait_until(
            "default ServiceAccount",
            lambda: (
                _kubectl(
                    bins,
                    layout,
                    "get",
                    "serviceaccount",
                    "default",
                    "-n",
                    "default",
                    "--ignore-not-found",
                    "-o",
                    "name",
                ).strip()
                != ""
            ),
            60,
        )
    except BaseException:
        log("start failed: stopping what was started")
        down(log=log, layout=layout)
        raise
    state["build_seconds"] = round(built - started, 1)
    state["start_seconds"] = round(time.monotonic() - built, 1)
    _write_state(layout, state)
    return state


def _write_state(layout: Layout, state: dict) -> None:
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(layout.state_file)


def down(log=print, layout: Layout = LAYOUT) -> None:
    """Stop every daemon of this cluster and remove the routes it added. Idempotent."""
    state = read_state(layout) or {}
    stopped = procs.stop_all(layout.root)
    remove_blackhole_routes(state.get("routes_added", []))
    if state:
        state["pids"] = {}
        state["routes_added"] = []
        _write_state(layout, state)
    log(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def env_lines(layout: Layout = LAYOUT) -> list[str]:
    state = read_state(layout)
    if not state or not is_running(layout):
        raise ClusterError("the test cluster is not running: start it with `kubecluster.py up`")
    return [
        f"export KUBECONFIG={layout.kubeconfig}",
        f"export CNJ_APISERVER={state['server']}",
        f"export CNJ_CLUSTER_CA_KEY={layout.pki / 'ca.key'}",
        f"export CNJ_K8S_BIN_DIR={state['bin_dir']}",
        f"export CNJ_SERVICE_CIDR={SERVICE_CIDR}",
        f"export CNJ_POD_CIDR={POD_CIDR}",
        f"export CNJ_CLUSTER_DNS={CLUSTER_DNS}",
        f"# kubectl: {state['bin_dir']}/kubectl",
    ]


def status(layout: Layout = LAYOUT) -> tuple[bool, list[str]]:
    state = read_state(layout)
    if not state or not state.get("pids"):
        return False, ["not running"]
    lines, healthy = [], True
    for name, pid in state["pids"].items():
        ok = procs.alive(pid)
        healthy &= ok
        lines.append(f"{name:<24} pid {pid:<8} {'running' if ok else 'DEAD'}")
    admin = pki.Pair(layout.pki / "admin.crt", layout.pki / "admin.key")
    ready = _http_ok(f"{state['server']}/readyz", layout.pki / "ca.crt", admin)
    healthy &= ready
    lines.append(f"{'api /readyz':<24} {state['server']:<14} {'ok' if ready else 'NOT READY'}")
    return healthy, lines
