"""The cluster's certificates, made with the openssl CLI (keeps the helper stdlib-only).

One CA signs everything, and its key stays in the state directory: that is what lets
a later step issue a real kubelet its client certificate, as kubeadm's join would.
ECDSA P-256 keys: generated in milliseconds, so every `up` starts from a fresh PKI.
"""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "365"


class PKIError(RuntimeError):
    pass


@dataclass(frozen=True)
class Pair:
    crt: Path
    key: Path


def _openssl(*args: str, stdin: str | None = None) -> None:
    res = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True)
    if res.returncode != 0:
        raise PKIError(f"openssl {args[0]} failed: {res.stderr.strip()}")


def _new_key(path: Path) -> None:
    curve = "ec_paramgen_curve:P-256"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", curve, "-out", str(path))
    path.chmod(0o600)


def create_ca(directory: Path, name: str) -> Pair:
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    _new_key(pair.key)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(pair.key),
        "-out",
        str(pair.crt),
        "-days",
        "3650",
        "-subj",
        "/CN=cloudnative-journey-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )
    return pair


def issue(
    ca: Pair,
    directory: Path,
    name: str,
    common_name: str,
    organization: str | None = None,
    server_names: tuple[str, ...] = (),
    client: bool = True,
) -> Pair:
    """A leaf certificate; with server_names it is also a serving certificate for them."""
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    _new_key(pair.key)
    subject = (f"/O={organization}" if organization else "") + f"/CN={common_name}"
    _openssl("req", "-new", "-key", str(pair.key), "-subj", subject, "-out", str(csr))
    usages = (["serverAuth"] if server_names else []) + (["clientAuth"] if client else [])
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(usages)}",
    ]
    if server_names:
        ext.append("subjectAltName=" + ",".join(_san(n) for n in server_names))
    ext_file = directory / f"{name}.ext"
    ext_file.write_text("\n".join(ext) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca.crt),
        "-CAkey",
        str(ca.key),
        "-set_serial",
        str(secrets.randbits(63)),
        "-days",
        DAYS,
        "-extfile",
        str(ext_file),
        "-out",
        str(pair.crt),
    )
    csr.unlink()
    ext_file.unlink()
    return pair


def service_account_keys(directory: Path) -> Pair:
    """(public, private) key pair that signs service account tokens; `crt` is the public key."""
    pair = Pair(directory / "sa.pub", directory / "sa.key")
    _new_key(pair.key)
    _openssl("pkey", "-in", str(pair.key), "-pubout", "-out", str(pair.crt))
    return pair


def _san(name: str) -> str:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return f"DNS:{name}"
    return f"IP:{name}"
