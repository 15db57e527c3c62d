"""The stdout JSON-lines sink, and the only place checkpoints are written.

Records reach stdout through one writer thread: a slow reader of our stdout then blocks
that thread, not the event loop (metrics and /healthz keep answering), and the bounded
hand-off (``max_queued`` batches) stops the file readers -- back-pressure with bounded
memory.  The thread writes the batches it finds queued (up to ``max_write_bytes``) in
one go, *then* saves the checkpoint with the offsets those batches end at: a checkpoint
never covers a record that was not written, and after ``kill -9`` at most the records
of that one write are emitted again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agents.collector.checkpoint import CheckpointStore, FileState

log = logging.getLogger(__name__)

MAX_QUEUED_BATCHES = 8
# The crash-duplicate bound: one write of at most this much (plus one batch).
MAX_WRITE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Batch:
    """Records of one read (possibly none) and the file state once they are written."""

    payload: bytes
    state: FileState | None = None
    forget: str | None = None  # drop this file from the checkpoint (it is done)


_STOP = object()


class SinkError(Exception):
    """stdout is gone (e.g. the reading side closed the pipe)."""


class StdoutSink:
    def __init__(
        self,
        store: CheckpointStore,
        fd: int = 1,
        max_queued: int = MAX_QUEUED_BATCHES,
        max_write_bytes: int = MAX_WRITE_BYTES,
        on_checkpoint: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.fd = fd
        self.max_write_bytes = max_write_bytes
        self._on_checkpoint = on_checkpoint
        self._slots = asyncio.Semaphore(max_queued)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._committed: dict[str, FileState] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self.failed = asyncio.Event()
        self.written_batches = 0

    def seed(self, states: Iterable[FileState]) -> None:
        """Offsets restored at start that stay valid until a batch replaces them."""
        for state in states:
            self._committed[state.key] = state

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="stdout-writer", daemon=True)
        self._thread.start()

    async def put(self, batch: Batch) -> None:
        await self._slots.acquire()  # back-pressure: wait while the writer is behind
        if self.error is not None:
            self._slots.release()
            raise SinkError(str(self.error))
        self._queue.put(batch)

    async def close(self) -> None:
        """Write everything queued, save the final checkpoint, stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            size = len(items[0].payload) if items[0] is not _STOP else 0
            while size < self.max_write_bytes:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                if item is _STOP:
                    break
                size += len(item.payload)
            if items[-1] is _STOP:
                stopping = True
                items.pop()
            try:
                self._write_all(b"".join(item.payload for item in items))
            except OSError as exc:
                self._fail(exc)
                return
            if self._commit(items) or stopping:
                self._save()
            self.written_batches += len(items)
            for _ in items:
                self._loop.call_soon_threadsafe(self._slots.release)

    def _commit(self, items: list[Batch]) -> bool:
        changed = False
        for item in items:
            if item.state is not None:
                self._committed[item.state.key] = item.state
                changed = True
            if item.forget is not None:
                changed |= self._committed.pop(item.forget, None) is not None
        return changed

    def _save(self) -> None:
        try:
            self.store.save(list(self._committed.values()))
        except OSError as exc:
            # Without a fresh checkpoint a restart repeats more records; keep shipping logs.
            log.error("checkpoint write failed", extra={"error": exc.strerror or str(exc)})
            return
        if self._on_checkpoint is not None:
            self._loop.call_soon_threadsafe(self._on_checkpoint)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:  # someone made our stdout non-blocking
                select.select([], [self.fd], [], 1.0)
            except InterruptedError:
                time.sleep(0)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        loop = self._loop

        def wake_everyone() -> None:
            self.failed.set()
            for _ in range(MAX_QUEUED_BATCHES * 4):
                self._slots.release()

        loop.call_soon_threadsafe(wake_everyone)
