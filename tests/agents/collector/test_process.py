"""The collector as a real process: the guarantees that are about files, signals and stdout."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.agents.collector.conftest import (
    REPO,
    SeqWriter,
    assert_all_arrived,
    cri,
    pod_log,
    seqs,
    wait_for,
)

POD_GLOB = "{root}/pods/*/*/*.log"


def arrived(collector, count: int):
    return lambda: len(seqs(collector.records())) >= count


def test_record_fields_and_clean_sigterm(tmp_path: Path, run_collector) -> None:
    log = pod_log(tmp_path, "shop", "cart-7d9f", "api")
    log.write_bytes(cri(0) + cri(1, stream="stderr"))
    collector = run_collector(POD_GLOB.format(root=tmp_path))
    assert wait_for(arrived(collector, 2), 10)
    first = collector.records()[0]
    assert first == {
        "time": "2024-05-01T12:00:00.000000000Z",
        "stream": "stdout",
        "message": "seq=0000000",
        "node": "node-test",
        "namespace": "shop",
        "pod": "cart-7d9f",
        "container": "api",
        "file": str(log),
    }
    assert collector.records()[1]["stream"] == "stderr"
    assert collector.stop(signal.SIGTERM) == 0
    checkpoint = (tmp_path / "state" / "checkpoint.json").read_text()
    assert f'"offset":{log.stat().st_size}' in checkpoint


def test_sigterm_flushes_everything_read_and_restart_does_not_repeat(
    tmp_path: Path, run_collector
) -> None:
    log = pod_log(tmp_path)
    log.write_bytes(b"".join(cri(seq) for seq in range(20_000)))
    first = run_collector(POD_GLOB.format(root=tmp_path))
    # Stop while it is (probably) still reading: whatever it read must be on stdout.
    time.sleep(0.3)
    assert first.stop(signal.SIGTERM) == 0
    emitted = len(first.records())
    assert emitted > 0
    second = run_collector(POD_GLOB.format(root=tmp_path))
    assert wait_for(lambda: len(first.records()) + len(second.records()) >= 20_000, 30)
    assert_all_arrived(first.records() + second.records(), 20_000, max_duplicates=0)
    assert second.stop() == 0


def test_rotation_by_rename_while_writing(tmp_path: Path, run_collector) -> None:
    log = pod_log(tmp_path)
    log.touch()
    collector = run_collector(POD_GLOB.format(root=tmp_path))
    writer = SeqWriter(log, 3000, per_second=3000).start()
    for index in range(3):  # three kubelet-style rotations while the writer writes
        assert wait_for(lambda index=index: writer.written > (index + 1) * 700, 20)
        with writer.lock:
            log.rename(log.with_name(f"0.log.2024050112000{index}"))
    writer.join()
    assert wait_for(arrived(collector, 3000), 20), collector.stderr()
    assert_all_arrived(collector.records(), 3000)
    _, body = collector.get("/metrics")
    assert _metric(body, "collector_rotations_total") >= 3
    assert collector.stop() == 0


def test_copytruncate_while_writing(tmp_path: Path, run_collector) -> None:
    log = tmp_path / "app.log"  # a plain file as logrotate's copytruncate handles them
    log.touch()
    collector = run_collector(str(tmp_path / "*.log"))
    writer = SeqWriter(log, 3000, per_second=3000).start()
    for index in range(2):
        assert wait_for(lambda index=index: writer.written > (index + 1) * 1000, 20)
        with writer.lock:  # logrotate copies, then truncates; the writer keeps appending
            shutil.copyfile(log, log.with_name(f"app.log.{index + 1}"))
            with open(log, "r+b") as handle:
                handle.truncate(0)
    writer.join()
    assert wait_for(arrived(collector, 3000), 20), collector.stderr()
    assert_all_arrived(collector.records(), 3000)
    assert collector.stop() == 0


def test_truncation_restarts_at_zero(tmp_path: Path, run_collector) -> None:
    log = pod_log(tmp_path)
    log.write_bytes(b"".join(cri(seq) for seq in range(100)))
    collector = run_collector(POD_GLOB.format(root=tmp_path))
    assert wait_for(arrived(collector, 100), 10)
    log.write_bytes(b"")  # truncated, no copy: then new content shorter than before
    time.sleep(0.5)
    with open(log, "ab") as handle:
        handle.write(b"".join(cri(seq) for seq in range(100, 150)))
    assert wait_for(arrived(collector, 150), 10), collector.stderr()
    assert_all_arrived(collector.records(), 150)
    assert collector.stop() == 0


def test_deleted_while_reading_is_read_to_the_end(tmp_path: Path, run_collector) -> None:
    log = pod_log(tmp_path)
    log.touch()
    # The writing process keeps its descriptor: lines keep landing in the deleted file.
    writer = SeqWriter(log, 2000, per_second=2000, reopen=False).start()
    collector = run_collector(POD_GLOB.format(root=tmp_path))
    assert wait_for(lambda: writer.written > 500 and len(collector.records()) > 0, 10)
    log.unlink()
    writer.join()
    assert wait_for(arrived(collector, 2000), 20), collector.stderr()
    assert_all_arrived(collector.records(), 2000)
    # Read to its end, then let go of it.
    assert wait_for(
        lambda: _metric(collector.get("/metrics")[1], "collector_files_tracked") == 0, 5
    )
    assert "finished file" in collector.stderr()
    assert collector.stop() == 0


def test_kill_9_mid_stream_restarts_from_the_checkpoint(tmp_path: Path, run_collector) -> None:
    log = pod_log(tmp_path)
    log.touch()
    writer = SeqWriter(log, 12_000, per_second=4000).start()
    first = run_collector(POD_GLOB.format(root=tmp_path))
    assert wait_for(lambda: writer.written > 4_000, 20)
    first.stop(signal.SIGKILL)
    got_first = first.records()
    assert 0 < len(seqs(got_first)) < 12_000, "the kill must land mid-stream"
    second = run_collector(POD_GLOB.format(root=tmp_path))
    writer.join()
    assert wait_for(lambda: len(seqs(got_first + second.records())) >= 12_000, 30)
    # At most one write (MAX_WRITE_BYTES = 4 MiB, ~230-byte records) may repeat.
    assert_all_arrived(got_first + second.records(), 12_000, max_duplicates=4 * 1024 * 1024 // 230)
    duplicated = sorted(set(seqs(got_first)) & set(seqs(second.records())))
    # The repeats are one contiguous run right before the crash point, not scattered.
    if duplicated:
        assert duplicated[-1] - duplicated[0] + 1 == len(duplicated)
        assert duplicated[-1] == max(seqs(got_first))
    assert second.stop() == 0


def test_file_appearing_late_is_picked_up(tmp_path: Path, run_collector) -> None:
    collector = run_collector(POD_GLOB.format(root=tmp_path))
    time.sleep(0.5)
    log = pod_log(tmp_path, pod="late")
    log.write_bytes(cri(0))
    assert wait_for(arrived(collector, 1), 10)
    assert collector.records()[0]["pod"] == "late"
    assert collector.stop() == 0


def test_own_logs_are_excluded(tmp_path: Path, run_collector) -> None:
    own = pod_log(tmp_path, "logging", "collector-abcde", "collector")
    other = pod_log(tmp_path, "logging", "someone-else", "collector")
    own.write_bytes(cri(0, text="from myself"))
    other.write_bytes(cri(1))
    containers = tmp_path / "containers"
    containers.mkdir()
    (containers / ("collector-abcde_logging_collector-" + "a" * 64 + ".log")).symlink_to(own)
    collector = run_collector(
        f"{containers}/*.log,{tmp_path}/pods/*/*/*.log",
        POD_NAME="collector-abcde",
        POD_NAMESPACE="logging",
    )
    assert wait_for(arrived(collector, 1), 10)
    time.sleep(3 * 0.1 + 0.5)
    messages = [record["message"] for record in collector.records()]
    assert messages == ["seq=0000001"]
    assert collector.stop() == 0


def test_metrics_and_healthz(tmp_path: Path, run_collector) -> None:
    log = pod_log(tmp_path, "shop")
    long_line = cri(0, text="y" * 20_000)
    log.write_bytes(cri(1) + b"not a cri line\n" + long_line)
    collector = run_collector(POD_GLOB.format(root=tmp_path))
    assert wait_for(lambda: len(collector.records()) >= 3, 10)
    status, body = collector.get("/healthz")
    assert status == 200
    status, body = collector.get("/metrics")
    assert status == 200
    for name in (
        "collector_lines_total",
        "collector_bytes_total",
        "collector_truncated_lines_total",
        "collector_parse_errors_total",
        "collector_files_tracked",
        "collector_rotations_total",
        "collector_checkpoint_writes_total",
        "collector_read_lag_seconds",
        "collector_node_info",
    ):
        assert f"# TYPE {name} " in body, name
    assert 'collector_lines_total{namespace="shop",stream="stdout"} 2' in body
    assert _metric(body, "collector_truncated_lines_total") == 1
    assert _metric(body, "collector_parse_errors_total") == 1
    assert _metric(body, "collector_checkpoint_writes_total") >= 1
    assert 'node="node-test"' in body and "kernel=" in body
    assert "file=" not in body.split("collector_node_info")[0]  # no per-file labels
    assert collector.stop() == 0


def run_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the collector with only ``env`` and wait for it to exit on its own."""
    return subprocess.run(
        [sys.executable, "-m", "agents.collector"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "SCAN_INTERVAL": "-1", "STATE_DIR": str(tmp_path)}
    result = run_to_exit(env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SCAN_INTERVAL" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_state_dir_in_use_exits_1(tmp_path: Path, run_collector) -> None:
    run_collector(str(tmp_path / "*.log"))
    env = {
        "PATH": os.environ["PATH"],
        "STATE_DIR": str(tmp_path / "state"),
        "LOG_PATHS": str(tmp_path / "*.log"),
        "METRICS_PORT": "0",
    }
    result = run_to_exit(env)
    assert result.returncode == 1
    assert "locked by another running collector" in result.stderr
    assert "Traceback" not in result.stderr


def _metric(body: str, name: str) -> float:
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total
