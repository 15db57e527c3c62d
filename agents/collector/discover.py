"""Which files to tail, and whose logs they are.

Kubernetes names container logs in two layouts, and the pod/namespace/container can be
read from either:

* ``/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`` -- symlinks,
* ``/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`` -- the real files
  (rotated by the kubelet to ``<restart>.log.<timestamp>``).

Pod, namespace and container names are DNS labels and never contain ``_``, which is what
makes the split unambiguous.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass

_CONTAINER_ID = re.compile(r"^(?P<container>.+)-(?P<id>[0-9a-f]{64})$")
_POD_LOG_NAME = re.compile(r"^\d+\.log(\.\d{8}-\d{6}(\.gz)?)?$")


@dataclass(frozen=True)
class Origin:
    """Whose log a file is; all None for files outside the Kubernetes layouts."""

    namespace: str | None = None
    pod: str | None = None
    container: str | None = None

    @property
    def is_kubernetes(self) -> bool:
        return self.pod is not None


def origin_of(path: str) -> Origin:
    """Read namespace/pod/container from a path in either Kubernetes layout."""
    directory, name = os.path.split(path)
    # /var/log/containers/<pod>_<namespace>_<container>-<id>.log
    if name.endswith(".log") and name.count("_") == 2:
        pod, namespace, rest = name[: -len(".log")].split("_")
        match = _CONTAINER_ID.match(rest)
        if match and pod and namespace:
            return Origin(namespace=namespace, pod=pod, container=match["container"])
    # /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log[.<timestamp>]
    if _POD_LOG_NAME.match(name):
        pod_dir, container = os.path.split(directory)
        parts = os.path.basename(pod_dir).split("_")
        if len(parts) == 3 and all(parts) and container:
            return Origin(namespace=parts[0], pod=parts[1], container=container)
    return Origin()


def origin_of_file(path: str) -> Origin:
    """Origin from the path as found, else from where a symlink points."""
    origin = origin_of(path)
    if origin.is_kubernetes:
        return origin
    return origin_of(os.path.realpath(path))


@dataclass(frozen=True)
class Found:
    path: str
    dev: int
    ino: int
    size: int
    origin: Origin

    @property
    def key(self) -> str:
        return f"{self.dev}:{self.ino}"


class Discovery:
    """Expands the LOG_PATHS globs into regular files, minus the collector's own logs."""

    def __init__(
        self, globs: Iterable[str], own_pod: str | None, own_namespace: str | None
    ) -> None:
        self.globs = list(globs)
        self.own_pod = own_pod
        self.own_namespace = own_namespace

    def is_own(self, origin: Origin) -> bool:
        # Tailing our own stdout would feed every record back in, forever.
        return (
            self.own_pod is not None
            and origin.pod == self.own_pod
            and (self.own_namespace is None or origin.namespace == self.own_namespace)
        )

    def scan(self) -> dict[str, Found]:
        """Every matching file right now, keyed by device:inode (symlinks resolved)."""
        found: dict[str, Found] = {}
        for pattern in self.globs:
            for path in sorted(glob.glob(pattern)):
                try:
                    st = os.stat(path)  # follows the /var/log/containers symlinks
                except OSError:
                    continue  # vanished between glob and stat: next scan decides
                if not _is_regular(st.st_mode):
                    continue
                origin = origin_of_file(path)
                if self.is_own(origin):
                    continue
                item = Found(path, st.st_dev, st.st_ino, st.st_size, origin)
                # Two globs may reach one file (symlink and target): first path wins.
                found.setdefault(item.key, item)
        return found


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def rotated_siblings(path: str) -> list[str]:
    """Files next to ``path`` whose name extends it (``0.log.20240101-000000``, ``a.log.1``)."""
    directory, name = os.path.split(path)
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    return sorted(
        os.path.join(directory, entry)
        for entry in entries
        if entry != name and entry.startswith(name) and not entry.endswith(".gz")
    )
