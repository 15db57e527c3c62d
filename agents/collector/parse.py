"""CRI log lines in, JSON-lines records out: the collector's hot path.

A CRI line is ``<RFC3339Nano time> <stdout|stderr> <P|F> <message>``.  ``P`` lines are
fragments of one logical line that the runtime split; they are joined (per file and
stream) until the closing ``F`` line.  Anything that does not look like CRI is passed
through whole as the message, so plain files listed in LOG_PATHS work too.

Speed matters (hundreds of thousands of lines per second on one core), so the common
case -- a complete ``F`` line with nothing pending -- is handled inline in one loop over
a whole decoded chunk, and each record is assembled from pre-encoded byte pieces: only
the time and the message go through the JSON encoder.  Every other case takes
:meth:`RecordEncoder._slow_line`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

STREAMS = ("stdout", "stderr")
# Lines that are not CRI carry no stream; they are labelled so, not guessed.
PLAIN_STREAM = "unknown"
TRUNCATION_MARKER = " [truncated]"

_dumps = orjson.dumps
_STREAM_FIELD = {
    name: b',"stream":' + _dumps(name) + b',"message":' for name in (*STREAMS, PLAIN_STREAM)
}


def utc_now_rfc3339() -> str:
    """Collection time for lines that carry no time of their own."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utf8_len(text: str) -> int:
    # isascii() is O(1) on CPython's compact strings, so ASCII text costs no encode.
    return len(text) if text.isascii() else len(text.encode())


def clip_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits in ``limit`` bytes."""
    if text.isascii():
        return text[:limit]
    return text.encode()[:limit].decode("utf-8", "ignore")


@dataclass
class ParseStats:
    """What one chunk produced; the caller turns it into metrics."""

    lines: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_STREAM_FIELD, 0))
    chars: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_STREAM_FIELD, 0))
    truncated: int = 0
    parse_errors: int = 0
    last_time: str | None = None


@dataclass
class Partial:
    """Fragments of one logical line, bounded by MAX_LINE_BYTES."""

    time: str
    parts: list[str]
    size: int  # UTF-8 bytes kept in parts
    dropped: int = 0  # bytes beyond the limit, thrown away but reported via the marker

    def to_json(self) -> dict:
        return {"time": self.time, "text": "".join(self.parts), "dropped": self.dropped}

    @classmethod
    def from_json(cls, data: dict) -> Partial:
        text = str(data["text"])
        return cls(
            time=str(data["time"]),
            parts=[text],
            size=utf8_len(text),
            dropped=int(data.get("dropped", 0)),
        )


class RecordEncoder:
    """Turns the lines of one file into JSON records; keeps that file's pending partials."""

    def __init__(
        self,
        *,
        node: str,
        namespace: str | None,
        pod: str | None,
        container: str | None,
        file: str,
        max_line_bytes: int,
        expect_cri: bool,
        partials: dict[str, Partial] | None = None,
    ) -> None:
        meta = _dumps(
            {
                "node": node,
                "namespace": namespace,
                "pod": pod,
                "container": container,
                "file": file,
            }
        )
        # Every record ends with the same enrichment: encode it once per file.
        self._suffix = b"," + meta[1:] + b"\n"
        self._truncated_suffix = b',"truncated":true,' + meta[1:] + b"\n"
        self.max_line_bytes = max_line_bytes
        # Below this many characters a message cannot exceed the limit even at 4 bytes each.
        self._safe_chars = max_line_bytes // 4
        self.expect_cri = expect_cri
        self.partials: dict[str, Partial] = dict(partials or {})

    def encode_lines(self, text: str, out: list[bytes], stats: ParseStats, now: str) -> None:
        """Append one record per complete line in ``text`` (each line ends with "\\n")."""
        lines = text.split("\n")
        lines.pop()  # the empty string after the final newline
        append = out.append
        dumps = _dumps
        stream_field = _STREAM_FIELD
        suffix = self._suffix
        safe = self._safe_chars
        partials = self.partials
        slow = self._slow_line
        n_out = n_err = c_out = c_err = 0
        ts = None
        for line in lines:
            p = line.split(" ", 3)
            if len(p) == 4:
                ts, stream, tag, msg = p
                head = stream_field.get(stream)
                if (
                    tag == "F"
                    and head is not None
                    and not partials
                    and len(msg) <= safe
                    and len(ts) > 19
                    and ts[10] == "T"
                ):
                    append(b'{"time":' + dumps(ts) + head + dumps(msg) + suffix)
                    if stream == "stdout":
                        n_out += 1
                        c_out += len(line)
                    else:
                        n_err += 1
                        c_err += len(line)
                    continue
            slow(line, out, stats, now)
        lines_ = stats.lines
        chars = stats.chars
        lines_["stdout"] += n_out
        lines_["stderr"] += n_err
        # +1 per line for its newline, so for ASCII the figures are exact byte counts.
        chars["stdout"] += c_out + n_out
        chars["stderr"] += c_err + n_err
        if ts is not None:
            stats.last_time = ts

    def encode_overlong(self, text: str, out: list[bytes], stats: ParseStats, now: str) -> None:
        """A physical line longer than any legal line, cut by the reader: mark it truncated."""
        self._slow_line(text, out, stats, now, cut=True)

    def flush_partials(self, out: list[bytes], stats: ParseStats) -> None:
        """Emit unfinished lines (file gone for good): incomplete beats silently dropped."""
        for stream, partial in sorted(self.partials.items()):
            self._emit(out, stats, partial.time, stream, "".join(partial.parts), partial.dropped)
        self.partials.clear()

    # -- everything but the common case --------------------------------------------------

    def _slow_line(
        self, line: str, out: list[bytes], stats: ParseStats, now: str, cut: bool = False
    ) -> None:
        p = line.split(" ", 3)
        if len(p) == 3 and p[2] in ("F", "P"):
            p.append("")  # "<time> <stream> F" with an empty message is still CRI
        if (
            len(p) == 4
            and p[1] in STREAMS
            and p[2] in ("F", "P")
            and len(p[0]) > 19
            and p[0][10] == "T"
        ):
            ts, stream, tag, msg = p
            stats.last_time = ts
            pending = self.partials.get(stream)
            if tag == "P" or pending is not None:
                if pending is None:
                    pending = self.partials[stream] = Partial(time=ts, parts=[], size=0)
                room = self.max_line_bytes - pending.size
                size = utf8_len(msg)
                if size <= room:
                    pending.parts.append(msg)
                    pending.size += size
                else:
                    kept = clip_utf8(msg, max(room, 0))
                    pending.parts.append(kept)
                    pending.size += utf8_len(kept)
                    pending.dropped += size - utf8_len(kept)
                if cut:
                    pending.dropped += 1  # the reader cut this fragment: size unknown, >0
                if tag == "P":
                    return
                del self.partials[stream]
                self._emit(
                    out, stats, pending.time, stream, "".join(pending.parts), pending.dropped
                )
                return
            self._emit(out, stats, ts, stream, msg, 1 if cut else 0)
            return
        if self.expect_cri:
            stats.parse_errors += 1
        self._emit(out, stats, now, PLAIN_STREAM, line, 1 if cut else 0)

    def _emit(
        self, out: list[bytes], stats: ParseStats, ts: str, stream: str, msg: str, dropped: int
    ) -> None:
        size = utf8_len(msg)
        if size > self.max_line_bytes:
            dropped += size - self.max_line_bytes
            msg = clip_utf8(msg, self.max_line_bytes)
        stats.lines[stream] += 1
        stats.chars[stream] += size + 1
        if dropped:
            stats.truncated += 1
            out.append(
                b'{"time":'
                + _dumps(ts)
                + _STREAM_FIELD[stream]
                + _dumps(msg + TRUNCATION_MARKER)
                + self._truncated_suffix
            )
        else:
            out.append(
                b'{"time":' + _dumps(ts) + _STREAM_FIELD[stream] + _dumps(msg) + self._suffix
            )
