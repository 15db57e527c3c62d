"""The collector's main loop: discover, read, emit -- and track rotations on the way.

One event loop does all reading (reads of local files are short and bounded), a writer
thread does all writing (see emit.py).  Every round reads at most one chunk per file, so
a busy file cannot starve a quiet one; a scan every SCAN_INTERVAL finds new files and
notices rotations, deletions and truncations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from agents.collector.checkpoint import CheckpointStore, FileState
from agents.collector.discover import Discovery, Found, origin_of_file, rotated_siblings
from agents.collector.emit import Batch, StdoutSink
from agents.collector.metrics import CollectorMetrics
from agents.collector.parse import ParseStats, utc_now_rfc3339
from agents.collector.tailer import ReadResult, Tailer
from app.settings import CollectorSettings

log = logging.getLogger(__name__)

# One open descriptor per tracked file; beyond this new files wait (and are logged).
MAX_OPEN_FILES = 1024


class Collector:
    def __init__(
        self,
        settings: CollectorSettings,
        metrics: CollectorMetrics,
        store: CheckpointStore,
        sink: StdoutSink,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.sink = sink
        self.discovery = Discovery(settings.log_globs, settings.pod_name, settings.pod_namespace)
        self.tailers: dict[str, Tailer] = {}
        self.scan_interval = settings.scan_interval
        self.idle_poll = min(0.25, settings.scan_interval)
        # Rotated/deleted files stay open this long after their last byte: the writer
        # (containerd) may still append a little before it switches files.
        self.drain_grace = max(2 * settings.scan_interval, 1.0)
        self.heartbeat = time.monotonic()
        self._full_warned = False

    # -- start ---------------------------------------------------------------------------

    def restore(self) -> None:
        """Reopen files from the checkpoint, including ones rotated while we were down."""
        saved = self.store.load()
        for found in self.discovery.scan().values():
            state = saved.pop(found.key, None)
            tailer = self._track(found, state)
            if tailer is not None and state is not None and not tailer.resumed:
                # Same inode, other content: copytruncated (or reused) while we were down.
                self._resume_rotated(state)
        for state in saved.values():
            self._resume_rotated(state)
        self.sink.seed(tailer.state() for tailer in self.tailers.values())
        self.metrics.files.set({}, len(self.tailers))
        log.info("collector restored", extra={"files": len(self.tailers)})

    def _resume_rotated(self, state: FileState) -> None:
        """A checkpointed file no glob matches any more: find it by inode or by content."""
        if any(
            t.real_path == state.real_path and t.key == state.key for t in self.tailers.values()
        ):
            return
        for candidate in [state.real_path, *rotated_siblings(state.real_path)]:
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            key = f"{st.st_dev}:{st.st_ino}"
            if key in self.tailers:
                continue
            same_inode = key == state.key
            if not same_inode and st.st_size < state.offset:
                continue
            try:
                tailer = Tailer.open(
                    candidate,
                    origin_of_file(state.path),
                    self.settings.node_name,
                    self.settings.max_line_bytes,
                    saved=state,
                    display_path=state.path,
                )
            except OSError:
                continue
            if tailer.resumed and (same_inode or state.fp_len > 0):
                # Rotated by rename (same inode) or copied by copytruncate (same head).
                tailer.detached_at = time.monotonic()
                self.tailers[tailer.key] = tailer
                log.info("resuming rotated file", extra={"file": candidate})
                return
            tailer.close()

    # -- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        next_scan = time.monotonic() + self.scan_interval
        while not stop.is_set() and not self.sink.failed.is_set():
            self.heartbeat = time.monotonic()
            progressed = await self._read_round(stop)
            now = time.monotonic()
            if now >= next_scan:
                self.scan()
                next_scan = now + self.scan_interval
            if not progressed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.idle_poll)
            else:
                await asyncio.sleep(0)  # let /metrics and signal handlers run

    async def _read_round(self, stop: asyncio.Event) -> bool:
        progressed = False
        now = utc_now_rfc3339()
        for tailer in list(self.tailers.values()):
            if stop.is_set():
                break
            result = tailer.read_batch(now)
            if result is not None:
                await self._emit(tailer, result)
                progressed = True
            elif tailer.at_eof:
                await self._at_eof(tailer)
        return progressed

    async def _emit(self, tailer: Tailer, result: ReadResult, forget: bool = False) -> None:
        payload = b"".join(result.records)
        state = None if forget else tailer.state()
        await self.sink.put(Batch(payload, state, tailer.key if forget else None))
        self.metrics.observe(tailer.origin.namespace, result.stats)

    async def _at_eof(self, tailer: Tailer) -> None:
        if tailer.truncated():
            await self._handle_truncation(tailer)
        elif (
            tailer.detached_at is not None
            and time.monotonic() - max(tailer.detached_at, tailer.last_data_at) >= self.drain_grace
        ):
            await self._close(tailer)

    async def _close(self, tailer: Tailer) -> None:
        """A rotated or deleted file read to its end: emit unfinished lines, forget it."""
        await self._emit(tailer, tailer.flush_partials(), forget=True)
        tailer.close()
        self.tailers.pop(tailer.key, None)
        self.metrics.files.set({}, len(self.tailers))
        log.info("finished file", extra={"file": tailer.real_path})

    async def _handle_truncation(self, tailer: Tailer) -> None:
        """copytruncate: read what we missed from the copy, then the file from zero."""
        self.metrics.rotations.inc({})
        copy = self._find_copy(tailer)
        drain = self._open_copy(tailer, copy) if copy is not None else None
        partials = tailer.restart_from_zero()
        if drain is None:
            log.warning(
                "file truncated; lines written after the last read and before the"
                " truncation are gone (no copy found next to it)",
                extra={"file": tailer.real_path},
            )
            if partials:  # the rest of those lines is gone: emit what we have
                tailer.encoder.partials = partials
                await self._emit(tailer, tailer.flush_partials())
        else:
            self.tailers[drain.key] = drain
            log.info("copytruncate: reading the rest from the copy", extra={"file": copy})
        # Record offset 0 now, so a restart does not skip the new content.
        await self._emit(tailer, ReadResult([], ParseStats(), 0))

    def _open_copy(self, tailer: Tailer, copy: str) -> Tailer | None:
        """A tailer on the copy, continuing exactly where ``tailer`` was."""
        try:
            fd = os.open(copy, os.O_RDONLY)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            drain = Tailer(
                fd=fd,
                path=tailer.path,
                real_path=copy,
                dev=st.st_dev,
                ino=st.st_ino,
                origin=tailer.origin,
                node=self.settings.node_name,
                max_line_bytes=self.settings.max_line_bytes,
                offset=tailer.offset,
                partials=tailer.encoder.partials,
                skipping=tailer.skipping,
            )
        except OSError:
            os.close(fd)
            return None
        drain.detached_at = time.monotonic()
        return drain

    def _find_copy(self, tailer: Tailer) -> str | None:
        """The file copytruncate made: a sibling starting with the bytes we had read."""
        if not tailer.head:
            return None
        for candidate in rotated_siblings(tailer.real_path):
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if f"{st.st_dev}:{st.st_ino}" in self.tailers or st.st_size < tailer.offset:
                continue
            try:
                fd = os.open(candidate, os.O_RDONLY)
                try:
                    head = os.pread(fd, len(tailer.head), 0)
                finally:
                    os.close(fd)
            except OSError:
                continue
            if head == tailer.head:
                return candidate
        return None

    # -- scan ----------------------------------------------------------------------------

    def scan(self) -> None:
        found = self.discovery.scan()
        now = time.monotonic()
        current_paths = {item.path: item.key for item in found.values()}
        for tailer in list(self.tailers.values()):
            if tailer.detached_at is not None:
                continue
            key = current_paths.get(tailer.path)
            if key != tailer.key:
                # Renamed away (rotation) or deleted: read on to the end, then close.
                tailer.detached_at = now
                if key is not None:
                    self.metrics.rotations.inc({})
                    log.info("rotation detected", extra={"file": tailer.path})
        for item in found.values():
            if item.key not in self.tailers:
                self._track(item, None)
        self.metrics.files.set({}, len(self.tailers))
        self.metrics.read_lag.set(
            {}, max((t.lag_seconds for t in self.tailers.values()), default=0.0)
        )

    def _track(self, found: Found, saved: FileState | None) -> Tailer | None:
        if len(self.tailers) >= MAX_OPEN_FILES:
            if not self._full_warned:
                log.warning(
                    "too many open log files; new files wait", extra={"limit": MAX_OPEN_FILES}
                )
                self._full_warned = True
            return None
        try:
            tailer = Tailer.open(
                found.path,
                found.origin,
                self.settings.node_name,
                self.settings.max_line_bytes,
                saved=saved,
                expect_key=found.key,
            )
        except OSError:
            return None  # gone or replaced since the scan; the next scan sees the truth
        self.tailers[tailer.key] = tailer
        log.info("tracking file", extra={"file": found.path, "offset": tailer.offset})
        return tailer

    # -- stop ----------------------------------------------------------------------------

    def close(self) -> None:
        for tailer in self.tailers.values():
            tailer.close()
        self.tailers.clear()
