"""Discovery, tailer, checkpoint and sink, driven directly on real files."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from agents.collector.checkpoint import CheckpointStore, FileState, StateDirError, fingerprint
from agents.collector.discover import Discovery, Origin, origin_of, rotated_siblings
from agents.collector.emit import Batch, StdoutSink
from agents.collector.tailer import CHUNK_BYTES, MAX_BATCH_LINES, Tailer
from tests.agents.collector.conftest import cri, pod_log

NOW = "2030-01-01T00:00:00.000000Z"
CONTAINER_ID = "0123456789abcdef" * 4


def test_origin_from_both_kubernetes_layouts() -> None:
    assert origin_of(f"/var/log/containers/web-5f7_shop_nginx-{CONTAINER_ID}.log") == Origin(
        "shop", "web-5f7", "nginx"
    )
    assert origin_of(f"/var/log/containers/a_b_side-car-{CONTAINER_ID}.log").container == "side-car"
    pods = "/var/log/pods/shop_web-5f7_1b2c-3d/nginx"
    assert origin_of(f"{pods}/0.log") == Origin("shop", "web-5f7", "nginx")
    assert origin_of(f"{pods}/3.log.20240501-120000") == Origin("shop", "web-5f7", "nginx")
    assert origin_of("/var/log/syslog.log") == Origin()
    assert not origin_of("/tmp/x_y_z.log").is_kubernetes  # no container id: not a k8s name


def test_discovery_follows_symlinks_dedupes_and_skips_own_pod(tmp_path: Path) -> None:
    mine = pod_log(tmp_path, "logging", "collector-x", "collector")
    theirs = pod_log(tmp_path, "shop", "web", "app")
    mine.write_bytes(b"")
    theirs.write_bytes(b"")
    links = tmp_path / "containers"
    links.mkdir()
    (links / f"web_shop_app-{CONTAINER_ID}.log").symlink_to(theirs)
    (links / f"collector-x_logging_collector-{CONTAINER_ID}.log").symlink_to(mine)
    (links / f"dangling_shop_app-{CONTAINER_ID}.log").symlink_to(tmp_path / "nowhere")
    discovery = Discovery(
        [f"{links}/*.log", f"{tmp_path}/pods/*/*/*.log"], "collector-x", "logging"
    )
    found = list(discovery.scan().values())
    assert len(found) == 1  # one file, reached through two globs
    assert found[0].path == str(links / f"web_shop_app-{CONTAINER_ID}.log")
    assert found[0].origin == Origin("shop", "web", "app")


def test_rotated_siblings(tmp_path: Path) -> None:
    for name in ("0.log", "0.log.20240501-120000", "0.log.20240501-110000.gz", "1.log"):
        (tmp_path / name).write_bytes(b"")
    assert rotated_siblings(str(tmp_path / "0.log")) == [str(tmp_path / "0.log.20240501-120000")]


def _tailer(path: Path, max_line_bytes: int = 1024, saved: FileState | None = None) -> Tailer:
    return Tailer.open(str(path), Origin("ns", "p", "c"), "n1", max_line_bytes, saved=saved)


def _drain(tailer: Tailer, rounds: int = 1000) -> list[dict]:
    records = []
    for _ in range(rounds):
        result = tailer.read_batch(NOW)
        if result is None:
            return records
        records += [json.loads(r) for r in result.records]
    raise AssertionError("tailer did not reach the end of the file")


def test_line_without_newline_waits_then_completes(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(cri(0) + b"2024-05-01T12:00:00.1Z stdout F half")
    tailer = _tailer(path)
    assert [r["message"] for r in _drain(tailer)] == ["seq=0000000"]
    with open(path, "ab") as handle:
        handle.write(b" done\n")
    assert [r["message"] for r in _drain(tailer)] == ["half done"]
    assert tailer.offset == path.stat().st_size


def test_endless_line_without_newline_is_cut_not_buffered(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"z" * (3 * CHUNK_BYTES) + b"\n" + cri(1))
    tailer = _tailer(path, max_line_bytes=1024)
    records = _drain(tailer)
    assert len(records) == 2
    assert records[0]["truncated"] is True and len(records[0]["message"]) < 3000
    assert records[1]["message"] == "seq=0000001"
    assert len(tailer.carry) == 0


def test_batches_of_tiny_lines_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "tiny.log"
    path.write_bytes(b"x\n" * (3 * MAX_BATCH_LINES))
    tailer = _tailer(path)
    sizes = []
    while (result := tailer.read_batch(NOW)) is not None and len(sizes) < 100:
        sizes.append(len(result.records))
    assert max(sizes) <= MAX_BATCH_LINES and sum(sizes) == 3 * MAX_BATCH_LINES


def test_invalid_utf8_never_crashes(tmp_path: Path) -> None:
    path = tmp_path / "bad.log"
    path.write_bytes(b"2024-05-01T12:00:00.1Z stdout F \xc3\x28 \xed\xa0\x80 ok\n\xff\n")
    records = _drain(_tailer(path))
    assert records[0]["message"].endswith(" ok") and "\ufffd" in records[0]["message"]
    assert records[1]["message"] == "\ufffd"


def test_fingerprint_grows_and_rejects_a_reused_inode(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(cri(0))
    tailer = _tailer(path)
    _drain(tailer)
    short = tailer.state()
    assert short.fp_len == len(cri(0))
    with open(path, "ab") as handle:
        handle.write(b"".join(cri(seq) for seq in range(1, 20)))
    _drain(tailer)
    state = tailer.state()
    assert state.fp_len == 256 and state.fp == fingerprint(path.read_bytes()[:256])
    tailer.close()
    # Same file: resumes.  Same inode but other content (reuse): starts from zero.
    assert _tailer(path, saved=state).offset == state.offset
    path.write_bytes(b"".join(cri(seq, text=f"other {seq}") for seq in range(20)))
    assert _tailer(path, saved=state).offset == 0


def test_checkpoint_roundtrip_corruption_and_lock(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state")
    store.acquire()
    state = FileState(1, 2, "ab", 2, 10, "/p", "/r", {"stdout": {"time": "t", "text": "x"}})
    store.save([state])
    assert store.load() == {"1:2": state}
    assert not list((tmp_path / "state").glob(".*.tmp"))  # nothing half-written left over
    other = CheckpointStore(tmp_path / "state")
    with pytest.raises(StateDirError, match="locked"):
        other.acquire()
    store.release()
    (tmp_path / "state" / "checkpoint.json").write_text("{not json")
    assert store.load() == {}  # unreadable: start over (duplicates), do not crash


@pytest.mark.timeout(30)
async def test_sink_checkpoints_only_what_was_written_and_applies_back_pressure(
    tmp_path: Path,
) -> None:
    store = CheckpointStore(tmp_path / "state")
    store.acquire()
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    sink = StdoutSink(store, fd=write_end, max_queued=2, max_write_bytes=1)
    sink.start()
    record = b"x" * 65536 + b"\n"
    puts = 0

    async def producer() -> None:
        nonlocal puts
        for offset in range(1, 50):
            await sink.put(Batch(record, FileState(1, 1, "", 0, offset, "/p", "/p")))
            puts += 1

    task = asyncio.create_task(producer())
    await asyncio.sleep(1.0)
    # Nobody reads the pipe: the writer is stuck, the producer must be held back.
    assert puts < 6, "no back-pressure"
    on_disk = store.load()
    written_offset = on_disk["1:1"].offset if on_disk else 0
    assert written_offset < puts  # the checkpoint never runs ahead of stdout
    closing = asyncio.create_task(_close_after(task, sink))
    drained = 0
    for _ in range(3000):  # read our "stdout" until the sink has shut down
        try:
            chunk = os.read(read_end, 1 << 20)
        except BlockingIOError:
            if closing.done():
                break
            await asyncio.sleep(0.01)
            continue
        drained += len(chunk)
    await asyncio.wait_for(closing, 10)
    assert drained == 49 * len(record)
    assert store.load()["1:1"].offset == 49
    os.close(read_end)
    os.close(write_end)
    store.release()


async def _close_after(task: asyncio.Task, sink: StdoutSink) -> None:
    await asyncio.wait_for(task, 10)
    await sink.close()
