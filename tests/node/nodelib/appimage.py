"""The project's own image, built from /Dockerfile on the Debian-built python base.

The Dockerfile's BASE_IMAGE build argument points at our python:3.11-slim stand-in;
pip inside the build reaches PyPI as usual. The archive is keyed by a hash of the build
context, so an unchanged tree reuses it.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess

from . import images, paths, procs

# Not part of the image's build context in any meaningful way; keeps test edits from
# forcing an image rebuild.
EXCLUDED_TOP = {"tests", "docs", "bench", "roles", "playbooks", "inventory", ".ci", ".github"}


def project_version() -> str:
    text = (paths.REPO_ROOT / "pyproject.toml").read_text()
    m = re.search(r'(?m)^version\s*=\s*"([^"]+)"', text)
    if not m:
        raise procs.NodeError("no version in pyproject.toml")
    return m.group(1)


def normalize_ref(ref: str) -> str:
    """Docker's reference normalization, as the CRI applies it to a pod's image."""
    first, _, rest = ref.partition("/")
    if not rest:
        return f"docker.io/library/{ref}"
    if "." in first or ":" in first or first == "localhost":
        return ref
    return f"docker.io/{ref}"


def app_ref(name: str = "cloudnative-journey", registry: str = "") -> str:
    return normalize_ref(f"{registry + '/' if registry else ''}{name}:{project_version()}")


def _ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, pattern in patterns:
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def _context_files() -> list:
    """Files of the build context: tracked or new files, minus what .dockerignore drops."""
    res = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    patterns = []
    ignore_file = paths.REPO_ROOT / ".dockerignore"
    if ignore_file.exists():
        for line in ignore_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                negate = line.startswith("!")
                patterns.append((negate, line.lstrip("!").strip().strip("/")))
    files = []
    for rel in res.stdout.splitlines():
        if rel.split("/", 1)[0] in EXCLUDED_TOP or _ignored(rel, patterns):
            continue
        p = paths.REPO_ROOT / rel
        if p.is_file():
            files.append(p)
    return files


def build(ref: str):
    dockerfile = paths.REPO_ROOT / "Dockerfile"
    if not dockerfile.exists():
        raise procs.NodeError(f"{dockerfile} does not exist yet: cannot build the project image")
    base = images.build_base_images()
    images.ensure_in_buildah(images.PYTHON_REF, base[images.PYTHON_REF])
    archive = images.build_recipe(
        ref,
        paths.REPO_ROOT,
        key_extra=base[images.PYTHON_REF].name,
        build_args={"BASE_IMAGE": images.PYTHON_REF},
        context=paths.REPO_ROOT,
        containerfile=dockerfile,
        context_files=_context_files(),
        trust_host_ca=True,
    )
    return archive
