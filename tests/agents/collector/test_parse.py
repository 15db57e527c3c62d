"""The CRI parser and record encoder, driven directly."""

from __future__ import annotations

import json

from agents.collector.parse import TRUNCATION_MARKER, ParseStats, Partial, RecordEncoder

NOW = "2030-01-01T00:00:00.000000Z"


def encoder(max_line_bytes: int = 1024, expect_cri: bool = True, **kw) -> RecordEncoder:
    return RecordEncoder(
        node="n1",
        namespace="ns",
        pod="p",
        container="c",
        file="/f.log",
        max_line_bytes=max_line_bytes,
        expect_cri=expect_cri,
        **kw,
    )


def encode(enc: RecordEncoder, text: str) -> tuple[list[dict], ParseStats]:
    out: list[bytes] = []
    stats = ParseStats()
    enc.encode_lines(text, out, stats, NOW)
    payload = b"".join(out)
    assert payload == b"" or payload.endswith(b"\n")
    return [json.loads(line) for line in payload.splitlines()], stats


def test_complete_lines_keep_time_stream_and_message_with_spaces() -> None:
    records, stats = encode(
        encoder(),
        "2024-05-01T12:00:00.1Z stdout F hello  world \n2024-05-01T12:00:00.2Z stderr F \n",
    )
    assert records[0] == {
        "time": "2024-05-01T12:00:00.1Z",
        "stream": "stdout",
        "message": "hello  world ",
        "node": "n1",
        "namespace": "ns",
        "pod": "p",
        "container": "c",
        "file": "/f.log",
    }
    assert records[1]["stream"] == "stderr" and records[1]["message"] == ""
    assert stats.lines["stdout"] == 1 and stats.lines["stderr"] == 1
    assert stats.last_time == "2024-05-01T12:00:00.2Z"


def test_partials_are_joined_per_stream_until_f() -> None:
    enc = encoder()
    records, _ = encode(
        enc,
        "2024-05-01T12:00:00.1Z stdout P out-a \n"
        "2024-05-01T12:00:00.2Z stderr P err-a \n"
        "2024-05-01T12:00:00.3Z stdout P out-b \n"
        "2024-05-01T12:00:00.4Z stderr F err-b\n",
    )
    assert [(r["stream"], r["message"]) for r in records] == [("stderr", "err-a err-b")]
    assert records[0]["time"] == "2024-05-01T12:00:00.2Z"  # when the line began
    # The stdout line is still open, across chunks (and across restarts via to_json).
    restored = encoder(partials={"stdout": Partial.from_json(enc.partials["stdout"].to_json())})
    records, _ = encode(restored, "2024-05-01T12:00:00.5Z stdout F out-c\n")
    assert records[0]["message"] == "out-a out-b out-c"


def test_overlong_joined_line_is_truncated_marked_and_counted_not_dropped() -> None:
    enc = encoder(max_line_bytes=300)
    parts = "".join(f"2024-05-01T12:00:00.{i}Z stdout P {'a' * 200}\n" for i in range(1, 6))
    records, stats = encode(enc, parts + "2024-05-01T12:00:00.9Z stdout F end\n")
    assert len(records) == 1
    assert records[0]["message"] == "a" * 300 + TRUNCATION_MARKER
    assert records[0]["truncated"] is True
    assert stats.truncated == 1
    # And the file goes on: the next line is complete and normal.
    records, stats = encode(enc, "2024-05-01T12:00:01.0Z stdout F next\n")
    assert records[0]["message"] == "next" and stats.truncated == 0


def test_overlong_single_line_cut_on_a_character_boundary() -> None:
    records, stats = encode(
        encoder(max_line_bytes=256), f"2024-05-01T12:00:00.1Z stdout F {'é' * 300}\n"
    )
    message = records[0]["message"]
    assert message.endswith(TRUNCATION_MARKER)
    kept = message[: -len(TRUNCATION_MARKER)]
    assert kept == "é" * 128 and len(kept.encode()) == 256
    assert stats.truncated == 1


def test_non_cri_lines_pass_through_and_count_as_parse_errors_in_kubernetes_files() -> None:
    records, stats = encode(encoder(), "just text\n2024-05-01 stdout F not rfc3339\n")
    assert [r["message"] for r in records] == ["just text", "2024-05-01 stdout F not rfc3339"]
    assert all(r["stream"] == "unknown" and r["time"] == NOW for r in records)
    assert stats.parse_errors == 2
    _, plain_stats = encode(encoder(expect_cri=False), "just text\n")
    assert plain_stats.parse_errors == 0


def test_replacement_characters_and_control_bytes_become_valid_json() -> None:
    text = b'2024-05-01T12:00:00.1Z stdout F bad \xff\xfe "quoted" \x01\\\n'.decode(
        "utf-8", "replace"
    )
    records, _ = encode(encoder(), text)
    assert records[0]["message"] == 'bad \ufffd\ufffd "quoted" \x01\\'


def test_flush_partials_emits_unfinished_lines() -> None:
    enc = encoder()
    encode(enc, "2024-05-01T12:00:00.1Z stdout P never finished\n")
    out: list[bytes] = []
    stats = ParseStats()
    enc.flush_partials(out, stats)
    assert json.loads(out[0])["message"] == "never finished"
    assert enc.partials == {}
