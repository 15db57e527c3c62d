"""Container images for the real node, built without any registry.

debootstrap makes a Debian rootfs (cached as a tarball), buildah turns it into a base
image and builds the recipes in tests/node/images/ on top, each image is saved as a
docker-archive keyed by a hash of its inputs, and imported into containerd's k8s.io
namespace. A warm run finds every archive and import marker and builds nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import containerd, paths, procs

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
ROOTFS_MAX_AGE_DAYS = int(os.environ.get("CNJ_ROOTFS_MAX_AGE_DAYS", "30"))
PREFIX = "localhost/cloudnative-journey"

DEBIAN_REF = f"{PREFIX}/debian:{SUITE}"
PYTHON_REF = f"{PREFIX}/python:3.11-slim-{SUITE}"
REDIS_REF = f"{PREFIX}/redis:7-{SUITE}"
POSTGRES_REF = f"{PREFIX}/postgres:15-{SUITE}"
PAUSE_REF = containerd.PAUSE_IMAGE


def log(msg: str) -> None:
    print(f"[images] {msg}", flush=True)


def buildah(*args: str, timeout: float = 1800, capture: bool = True) -> subprocess.CompletedProcess:
    paths.BUILDAH_ROOT.mkdir(parents=True, exist_ok=True)
    paths.BUILDAH_RUNROOT.mkdir(parents=True, exist_ok=True)
    return procs.run(
        [
            "buildah",
            "--root",
            str(paths.BUILDAH_ROOT),
            "--runroot",
            str(paths.BUILDAH_RUNROOT),
            "--storage-driver",
            "overlay",
            *args,
        ],
        timeout=timeout,
        capture=capture,
        # Builds must never reach for docker.io: every FROM is a local image.
        env={"BUILDAH_ISOLATION": "chroot"},
    )


def release_build_storage() -> None:
    """Drop working containers a build left (a failed RUN keeps its own) and unmount
    buildah's storage, so no build leaves a mount or a container behind."""
    with contextlib.suppress(procs.NodeError):
        buildah("rm", "--all", timeout=120)
    # Superseded builds: every image worth keeping also sits in an archive.
    with contextlib.suppress(procs.NodeError):
        buildah("rmi", "--prune", timeout=300)
    overlay = paths.BUILDAH_ROOT / "overlay"
    with open("/proc/self/mountinfo") as f:
        mounted = [ln.split()[4] for ln in f if ln.split()[4].startswith(str(overlay))]
    for target in sorted(mounted, key=len, reverse=True):
        procs.run(["umount", target], check=False)


def _hash_files(files: list[Path], root: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        if f.is_symlink():
            h.update(os.readlink(f).encode())
        else:
            h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _dir_files(d: Path) -> list[Path]:
    return [p for p in d.rglob("*") if p.is_file()]


# ---------------------------------------------------------------- rootfs


def rootfs_tarball() -> Path:
    """Newest cached minbase rootfs younger than ROOTFS_MAX_AGE_DAYS, else a fresh one."""
    paths.ROOTFS_CACHE.mkdir(parents=True, exist_ok=True)
    now = time.time()
    cached = sorted(paths.ROOTFS_CACHE.glob(f"debian-{SUITE}-minbase-*.tar"), reverse=True)
    for tar in cached:
        if now - tar.stat().st_mtime < ROOTFS_MAX_AGE_DAYS * 86400:
            return tar
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    target = paths.ROOTFS_CACHE / f"debian-{SUITE}-minbase-{stamp}.tar"
    work = paths.ROOTFS_CACHE / f"work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    log(f"debootstrap --variant=minbase {SUITE} (cold; takes a few minutes)")
    try:
        procs.run(
            ["debootstrap", "--variant=minbase", "--components=main", SUITE, str(work), MIRROR],
            timeout=1800,
        )
        # The official images point apt at the same mirror, with updates and security.
        (work / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} {SUITE} main\n"
            f"deb {MIRROR} {SUITE}-updates main\n"
            f"deb http://deb.debian.org/debian-security {SUITE}-security main\n"
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (work / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        tmp = target.with_suffix(".partial")
        procs.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(work), "-cf", str(tmp), "."],
            timeout=600,
        )
        os.replace(tmp, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


# ---------------------------------------------------------------- image specs


@dataclass
class ImageSpec:
    ref: str
    recipe: Path | None  # directory with a Containerfile; None for the rootfs import
    build_args: dict[str, str] = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)  # refs whose archive hash feeds ours


def archive_path(ref: str, key: str) -> Path:
    name = ref.rsplit("/", 1)[-1].replace(":", "_")
    return paths.IMAGE_CACHE / f"{name}-{key}.tar"


def _in_buildah(ref: str) -> bool:
    try:
        buildah("inspect", "--type", "image", ref, timeout=60)
        return True
    except procs.NodeError:
        return False


def ensure_in_buildah(ref: str, archive: Path) -> None:
    """A later FROM needs the image in buildah's storage; reload it from its archive if gone."""
    if not _in_buildah(ref):
        buildah("pull", f"docker-archive:{archive}", timeout=600)
        buildah("tag", _archive_image_id(archive), ref)


def _archive_image_id(archive: Path) -> str:
    import json
    import tarfile

    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
    return manifest[0]["Config"].split("/")[-1].removesuffix(".json").removeprefix("sha256:")


def save(ref: str, archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    buildah("push", "--format", "v2s2", ref, f"docker-archive:{tmp}:{ref}", timeout=1200)
    os.replace(tmp, archive)
    for old in archive.parent.glob(archive.name.rsplit("-", 1)[0] + "-*.tar"):
        if old != archive:
            old.unlink()


def build_debian() -> Path:
    tar = rootfs_tarball()
    key = hashlib.sha256(tar.name.encode() + str(tar.stat().st_size).encode()).hexdigest()[:16]
    archive = archive_path(DEBIAN_REF, key)
    if archive.exists():
        return archive
    log(f"importing {tar.name} as {DEBIAN_REF}")
    cid = buildah("from", "--pull=never", "scratch").stdout.strip()
    try:
        buildah("add", cid, str(tar), "/", timeout=600)
        buildah(
            "config",
            "--env",
            "LANG=C.UTF-8",
            "--env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--cmd",
            "bash",
            "--label",
            f"org.opencontainers.image.source=debootstrap:{tar.name}",
            cid,
        )
        buildah("commit", "--rm", cid, DEBIAN_REF, timeout=600)
    except procs.NodeError:
        buildah("rm", cid)
        raise
    save(DEBIAN_REF, archive)
    return archive


def build_recipe(
    ref: str,
    recipe: Path,
    key_extra: str,
    build_args: dict[str, str],
    context: Path | None = None,
    containerfile: Path | None = None,
    context_files: list[Path] | None = None,
    trust_host_ca: bool = False,
) -> Path:
    context = context or recipe
    containerfile = containerfile or recipe / "Containerfile"
    files = context_files if context_files is not None else _dir_files(context)
    files = sorted(set(files) | {containerfile})
    key = _hash_files(
        files,
        Path(os.path.commonpath([context, containerfile.parent])),
        key_extra + repr(sorted(build_args.items())),
    )
    archive = archive_path(ref, key)
    if archive.exists():
        return archive
    log(f"building {ref} from {containerfile.relative_to(paths.REPO_ROOT)}")
    args = [
        "bud",
        "--pull=never",
        # No --layers: Debian's buildah 1.28 reused a cached COPY layer after the copied
        # sources had changed (a stale app in the image). The archive cache above,
        # keyed by a hash of the context, already skips unchanged builds.
        "--network",
        "host",
        "--isolation",
        "chroot",
        "-f",
        str(containerfile),
        "-t",
        ref,
    ]
    for k, v in build_args.items():
        args += ["--build-arg", f"{k}={v}"]
    # RUN steps trust what this machine trusts (PyPI may sit behind a TLS-inspecting
    # proxy whose CA only the host knows); bind-mounted, so it never lands in a layer.
    # Not for recipes that install ca-certificates themselves: its postinst rewrites
    # that file, which a read-only mount refuses (apt itself uses plain HTTP here).
    host_bundle = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    if trust_host_ca and host_bundle.is_file():
        args += ["--volume", f"{host_bundle.resolve()}:/etc/ssl/certs/ca-certificates.crt:ro"]
    started = time.monotonic()
    try:
        buildah(*args, str(context), timeout=3600)
    finally:
        release_build_storage()
    log(f"built {ref} in {time.monotonic() - started:.0f}s")
    save(ref, archive)
    return archive


def build_pause() -> Path:
    src = paths.GO_DIR / "pause"
    key = _hash_files(_dir_files(src), src)
    out_dir = paths.BIN_CACHE / f"pause-{key}"
    binary = out_dir / "pause"
    if not binary.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        procs.run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), "."],
            env={"CGO_ENABLED": "0", "GOWORK": "off"},
            timeout=600,
            cwd=src,
        )
    ctx = paths.NODE_CACHE / "pause-context"
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, ctx / "pause")
    return build_recipe(
        PAUSE_REF,
        paths.IMAGE_RECIPES / "pause",
        key,
        {},
        context=ctx,
        containerfile=paths.IMAGE_RECIPES / "pause" / "Containerfile",
        context_files=[ctx / "pause"],
    )


def build_base_images() -> dict[str, Path]:
    """Debian, python, redis, postgres and pause images, each as a cached archive."""
    debian = build_debian()
    ensure_in_buildah(DEBIAN_REF, debian)
    dep = {"DEBIAN_IMAGE": DEBIAN_REF}
    out = {DEBIAN_REF: debian}
    for ref, name in ((PYTHON_REF, "python"), (REDIS_REF, "redis"), (POSTGRES_REF, "postgres")):
        out[ref] = build_recipe(ref, paths.IMAGE_RECIPES / name, debian.name, dep)
    out[PAUSE_REF] = build_pause()
    return out


# ---------------------------------------------------------------- containerd import


def _marker(ref: str) -> Path:
    return paths.NODE_CACHE / "imported" / (ref.replace("/", "_").replace(":", "_") + ".archive")


def import_into_containerd(ref: str, archive: Path, also_tag: list[str] | None = None) -> None:
    """Load `archive` into containerd (k8s.io namespace) unless that exact archive is there."""
    marker = _marker(ref)
    have = containerd.ctr("images", "ls", "-q", check=False, timeout=60).stdout.split()
    wanted = [ref, *(also_tag or [])]
    # Name, size and mtime: an archive rebuilt under the same key is imported again.
    stat = archive.stat()
    identity = f"{archive.name} {stat.st_size} {stat.st_mtime_ns}"
    fresh = marker.exists() and marker.read_text() == identity
    if not (fresh and all(r in have for r in wanted)):
        log(f"importing {ref} into containerd")
        containerd.ctr("images", "import", "--all-platforms", str(archive), timeout=1200)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(identity)
        have = containerd.ctr("images", "ls", "-q", check=False, timeout=60).stdout.split()
    for alias in also_tag or []:
        if alias not in have:
            containerd.ctr("images", "tag", "--force", ref, alias)
