"""Read offsets that survive restarts (and ``kill -9``), kept in STATE_DIR.

A file is identified by device + inode *and* a fingerprint of its first bytes, because
inodes are reused: a new log file may get the inode of one deleted a minute ago.  The
checkpoint is rewritten atomically (temporary file, fsync, rename) and only with offsets
whose records were already written to stdout -- so a crash can repeat records, never
lose them.  Unfinished ``P`` fragments are stored too, so a restart continues the line
instead of re-reading from its start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.json"
LOCK_NAME = "collector.lock"
FORMAT_VERSION = 1
# Enough to tell two CRI files apart (timestamps, messages) while staying one small read.
FINGERPRINT_BYTES = 256


class StateDirError(Exception):
    """STATE_DIR unusable (not writable, or used by another running collector)."""


def fingerprint(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


@dataclass(frozen=True)
class FileState:
    """Everything needed to resume one file exactly where the emitted records end."""

    dev: int
    ino: int
    fp: str  # sha256 of the first fp_len bytes
    fp_len: int
    offset: int  # first byte not yet emitted (or held in partials)
    path: str  # as discovered (the record's "file")
    real_path: str  # where the bytes live; where to look for it after a rotation
    partials: dict[str, dict] = field(default_factory=dict)
    skipping: bool = False  # offset is inside an over-long line being dropped

    @property
    def key(self) -> str:
        return f"{self.dev}:{self.ino}"

    def matches_head(self, head: bytes) -> bool:
        return len(head) >= self.fp_len and fingerprint(head[: self.fp_len]) == self.fp


class CheckpointStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / CHECKPOINT_NAME
        self._lock_fd: int | None = None
        self.writes = 0

    def acquire(self) -> None:
        """Create STATE_DIR and hold its lock: two collectors must not share offsets."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateDirError(
                f"STATE_DIR {str(self.state_dir)!r} unusable: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirError(
                f"STATE_DIR {str(self.state_dir)!r} is locked by another running collector"
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def load(self) -> dict[str, FileState]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = orjson.loads(raw)
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            states = [FileState(**entry) for entry in data["files"]]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Losing offsets means re-reading (duplicates), not losing logs: carry on.
            log.warning(
                "checkpoint unreadable, starting from the beginning of every file",
                extra={"path": str(self.path), "error": str(exc)[:200]},
            )
            return {}
        return {state.key: state for state in states}

    def save(self, states: Iterable[FileState]) -> None:
        payload = orjson.dumps(
            {"version": FORMAT_VERSION, "files": [asdict(state) for state in states]}
        )
        tmp = self.path.with_name(f".{CHECKPOINT_NAME}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        # The rename itself is durable only once the directory is synced.
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self.writes += 1
