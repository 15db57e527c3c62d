"""One open log file, read forward in bounded chunks from a known offset.

The tailer holds the file descriptor, so a file that is renamed (kubelet rotation) or
deleted keeps being readable to its end; the collector decides when it is done.  Reads
stop at the last newline; the unfinished tail (bounded) waits for the next read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime

from agents.collector.checkpoint import FINGERPRINT_BYTES, FileState, fingerprint
from agents.collector.discover import Origin
from agents.collector.parse import ParseStats, Partial, RecordEncoder

CHUNK_BYTES = 256 * 1024
# Bounds one batch's output even for files of tiny lines (each record adds ~200 bytes).
MAX_BATCH_LINES = 4096
# Room for the CRI prefix in front of a message of MAX_LINE_BYTES.
CRI_PREFIX_ROOM = 1024


@dataclass
class ReadResult:
    records: list[bytes]
    stats: ParseStats
    consumed: int  # file bytes this read moved past


class Tailer:
    def __init__(
        self,
        *,
        fd: int,
        path: str,
        real_path: str,
        dev: int,
        ino: int,
        origin: Origin,
        node: str,
        max_line_bytes: int,
        offset: int = 0,
        partials: dict[str, Partial] | None = None,
        skipping: bool = False,
    ) -> None:
        self.fd = fd
        self.path = path
        self.real_path = real_path
        self.dev = dev
        self.ino = ino
        self.origin = origin
        self.node = node
        self.max_line_bytes = max_line_bytes
        self.physical_cap = max_line_bytes + CRI_PREFIX_ROOM
        self.encoder = RecordEncoder(
            node=node,
            namespace=origin.namespace,
            pod=origin.pod,
            container=origin.container,
            file=path,
            max_line_bytes=max_line_bytes,
            expect_cri=origin.is_kubernetes,
            partials=partials,
        )
        self.offset = offset  # file position of carry[0]: everything before is handled
        self.carry = b""  # bytes read past the last newline
        self.carry_has_lines = False  # carry holds complete lines left by a batch cut
        self.skipping = skipping  # inside an over-long line: drop bytes until newline
        self.head = b""
        self._fp: str | None = None
        self.at_eof = False
        self.detached_at: float | None = None  # monotonic time the path stopped leading here
        self.lag_seconds = 0.0
        self.last_data_at = time.monotonic()
        self.resumed = False  # offset came from the checkpoint
        self.refresh_head()

    @classmethod
    def open(
        cls,
        path: str,
        origin: Origin,
        node: str,
        max_line_bytes: int,
        saved: FileState | None = None,
        expect_key: str | None = None,
        display_path: str | None = None,
    ) -> Tailer:
        """Open ``path``; resume from ``saved`` if it is provably the same file."""
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if expect_key is not None and f"{st.st_dev}:{st.st_ino}" != expect_key:
                raise FileNotFoundError(path)  # replaced between scan and open
            tailer = cls(
                fd=fd,
                path=display_path or path,
                real_path=os.path.realpath(path),
                dev=st.st_dev,
                ino=st.st_ino,
                origin=origin,
                node=node,
                max_line_bytes=max_line_bytes,
            )
        except BaseException:
            os.close(fd)
            raise
        if saved is not None and saved.matches_head(tailer.head):
            tailer.offset = saved.offset
            tailer.resumed = True
            tailer.skipping = saved.skipping
            tailer.encoder.partials = {
                stream: Partial.from_json(data) for stream, data in saved.partials.items()
            }
        return tailer

    @property
    def key(self) -> str:
        return f"{self.dev}:{self.ino}"

    @property
    def read_pos(self) -> int:
        return self.offset + len(self.carry)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- identity ------------------------------------------------------------------------

    def refresh_head(self) -> None:
        """Grow the fingerprint while the file is shorter than FINGERPRINT_BYTES."""
        if len(self.head) < FINGERPRINT_BYTES:
            head = os.pread(self.fd, FINGERPRINT_BYTES, 0)
            if len(head) > len(self.head) and head.startswith(self.head):
                self.head = head
                self._fp = None

    def truncated(self) -> bool:
        """Shrunk below what we read, or rewritten from the start (copytruncate)."""
        if os.fstat(self.fd).st_size < self.read_pos:
            return True
        return bool(self.head) and os.pread(self.fd, len(self.head), 0) != self.head

    def restart_from_zero(self) -> dict[str, Partial]:
        """After truncation: forget the old content, hand back its unfinished lines."""
        partials = self.encoder.partials
        self.encoder.partials = {}
        self.offset = 0
        self.carry = b""
        self.carry_has_lines = False
        self.skipping = False
        self.head = b""
        self._fp = None
        self.at_eof = False
        self.refresh_head()
        return partials

    def state(self) -> FileState:
        if self._fp is None:
            self._fp = fingerprint(self.head)
        return FileState(
            dev=self.dev,
            ino=self.ino,
            fp=self._fp,
            fp_len=len(self.head),
            offset=self.offset,
            path=self.path,
            real_path=self.real_path,
            partials={stream: p.to_json() for stream, p in self.encoder.partials.items()},
            skipping=self.skipping,
        )

    # -- reading -------------------------------------------------------------------------

    def read_batch(self, now: str) -> ReadResult | None:
        """Parse the next chunk; None at end of file (nothing new to hand on)."""
        if self.carry_has_lines:
            data = self.carry
            self.carry_has_lines = False
        else:
            new = os.pread(self.fd, CHUNK_BYTES, self.read_pos)
            if not new:
                self.at_eof = True
                self.lag_seconds = 0.0
                return None
            self.at_eof = len(new) < CHUNK_BYTES
            self.last_data_at = time.monotonic()
            if len(self.head) < FINGERPRINT_BYTES:
                self.refresh_head()
            data = self.carry + new if self.carry else new
        self.carry = b""
        records: list[bytes] = []
        stats = ParseStats()
        start = 0
        if self.skipping:
            newline = data.find(b"\n")
            if newline < 0:
                self.offset += len(data)
                return ReadResult(records, stats, len(data))
            start = newline + 1
            self.skipping = False
        end = data.rfind(b"\n") + 1
        if end <= start:
            rest = data[start:]
            if len(rest) > self.physical_cap:
                # No newline in sight: emit what a line may hold, drop the rest of it.
                text = rest[: self.physical_cap].decode("utf-8", "replace")
                self.encoder.encode_overlong(text, records, stats, now)
                self.skipping = True
                self.offset += len(data)
                return ReadResult(records, stats, len(data))
            self.offset += start
            self.carry = rest
            return ReadResult(records, stats, start) if start else None
        if data.count(b"\n", start, end) > MAX_BATCH_LINES:
            end = start
            for _ in range(MAX_BATCH_LINES):
                end = data.index(b"\n", end) + 1
            self.carry_has_lines = True
        text = str(memoryview(data)[start:end], "utf-8", "replace")
        self.encoder.encode_lines(text, records, stats, now)
        self.carry = data[end:]
        self.offset += end
        if stats.last_time is not None:
            self.lag_seconds = 0.0 if self.at_eof else _age(stats.last_time)
        return ReadResult(records, stats, end)

    def flush_partials(self) -> ReadResult:
        records: list[bytes] = []
        stats = ParseStats()
        self.encoder.flush_partials(records, stats)
        return ReadResult(records, stats, 0)


def _age(timestamp: str) -> float:
    try:
        return max(0.0, time.time() - datetime.fromisoformat(timestamp).timestamp())
    except ValueError:
        return 0.0
