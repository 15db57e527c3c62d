"""Client certificates for the node's components, signed by the test cluster's CA.

The kubelet authenticates as system:node:<name> (group system:nodes) so the Node
authorizer and NodeRestriction admission treat it like any kubeadm-joined node;
kube-proxy as system:kube-proxy (bound to system:node-proxier by default RBAC);
CoreDNS as system:coredns (bound by coredns.py to a ClusterRole of its own).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from . import paths, procs

PKI_DIR = paths.RUN / "pki"


def client_cert(
    name: str, cn: str, org: str | None, ca_crt: Path, ca_key: Path, days: int = 30
) -> tuple[Path, Path]:
    """(cert, key) for `cn`/`org`, reissued when the CA changes (a new cluster)."""
    PKI_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    crt, key, csr = PKI_DIR / f"{name}.crt", PKI_DIR / f"{name}.key", PKI_DIR / f"{name}.csr"
    stamp = PKI_DIR / f"{name}.ca-sha256"
    ca_digest = hashlib.sha256(ca_crt.read_bytes()).hexdigest()
    if crt.exists() and key.exists() and stamp.exists() and stamp.read_text() == ca_digest:
        return crt, key
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    procs.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])
    key.chmod(0o600)
    procs.run(["openssl", "req", "-new", "-key", str(key), "-subj", subj, "-out", str(csr)])
    ext = PKI_DIR / f"{name}.ext"
    ext.write_text(
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n"
    )
    procs.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-CAserial",
            str(PKI_DIR / "ca.srl"),
            "-days",
            str(days),
            "-sha256",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ]
    )
    csr.unlink(missing_ok=True)
    stamp.write_text(ca_digest)
    return crt, key


def kubeconfig(name: str, server: str, ca_crt: Path, crt: Path, key: Path) -> Path:
    """A kubeconfig with the certs embedded, so it stays valid on its own."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    path = PKI_DIR / f"{name}.kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority-data: {b64(ca_crt)}
users:
- name: {name}
  user:
    client-certificate-data: {b64(crt)}
    client-key-data: {b64(key)}
contexts:
- name: {name}
  context: {{cluster: test, user: {name}}}
current-context: {name}
""")
    path.chmod(0o600)
    return path
