"""BatchingStreamHandler: lines are batched, never lost, never reordered."""

from __future__ import annotations

import io
import logging
import time

import pytest

from app.logs import BatchingStreamHandler


class CountingStream(io.StringIO):
    """A stream that counts how often it is asked to write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logger():
    logger = logging.getLogger("tests.batching")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    for handler in [h for h in logger.handlers if isinstance(h, BatchingStreamHandler)]:
        handler.close()
        logger.removeHandler(handler)


def attach(
    logger: logging.Logger, flush_interval: float, **kwargs
) -> tuple[CountingStream, BatchingStreamHandler]:
    stream = CountingStream()
    handler = BatchingStreamHandler(stream, flush_interval, **kwargs)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    return stream, handler


def test_info_lines_wait_for_the_interval_then_arrive_in_one_write(logger):
    stream, _ = attach(logger, flush_interval=1.0)
    for n in range(100):
        logger.info("line %d", n)
    assert stream.getvalue() == ""
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stream.getvalue().splitlines() == [f"INFO line {n}" for n in range(100)]
    assert stream.writes == 1


def test_a_warning_flushes_everything_before_it_in_order(logger):
    stream, _ = attach(logger, flush_interval=60)
    logger.info("first")
    logger.debug("second")
    logger.warning("third")
    assert stream.getvalue().splitlines() == ["INFO first", "DEBUG second", "WARNING third"]


def test_close_flushes_pending_lines(logger):
    stream, handler = attach(logger, flush_interval=60)
    logger.info("pending")
    handler.close()
    assert stream.getvalue() == "INFO pending\n"


def test_a_full_buffer_is_written_without_waiting(logger):
    stream, _ = attach(logger, flush_interval=60, max_pending_chars=1000)
    for n in range(50):
        logger.info("%s", f"{n:03d}" + "x" * 46)  # 55 characters with the level
    assert stream.writes >= 2
    written = stream.getvalue().splitlines()
    assert written == [f"INFO {n:03d}" + "x" * 46 for n in range(len(written))]


def test_a_broken_stream_never_raises_into_the_caller(logger, monkeypatch):
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk gone")

    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError stays silent
    handler = BatchingStreamHandler(Broken(), flush_interval=60)
    logger.addHandler(handler)
    logger.error("must not raise")  # written (and failing) at once: ERROR flushes
    logger.info("nor this")
    handler.close()
