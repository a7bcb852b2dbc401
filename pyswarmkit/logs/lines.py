"""The pure parts of task logs: option parsing as Docker's CLI takes them,
line splitting, tail and since selection, and the ``name.slot.id@node`` prefix.

Nothing here reads a clock or a file: times and bytes are arguments."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

STDOUT = 1
STDERR = 2

# Docker's TruncateID: the first 12 characters of an ID.
SHORT_ID = 12
# Docker's prefix and the message are separated by four spaces and a bar.
SEPARATOR = "    | "

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIX = re.compile(r"^\d+(\.\d{1,9})?$")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?$"
)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a task's output: which stream, when (wall seconds), what
    (without its newline)."""

    stream: int
    time: float
    text: str


def parse_tail(value: str) -> int:
    """``--tail``: ``all`` (returned as -1) or a number of lines, at least 0."""
    v = value.strip()
    if v.lower() == "all" or v == "":
        return -1
    if not v.isdigit():
        raise ValueError(f"invalid --tail {value!r}: expected a number of lines (0 or more) or all")
    return int(v)


def parse_duration(value: str) -> float:
    """A Go duration (``10m``, ``1h30m``, ``1.5s``, ``300ms``) in seconds."""
    v = value.strip()
    if not v:
        raise ValueError("empty duration")
    total, at = 0.0, 0
    for m in _DURATION_PART.finditer(v):
        if m.start() != at:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        at = m.end()
    if at != len(v) or at == 0:
        raise ValueError(f"not a duration: {value!r}")
    return total


def parse_since(value: str, now: float) -> float:
    """``--since`` as Docker takes it: an RFC 3339 date or time (``2026-11-29``,
    ``2026-11-29T10:00:00Z``, with an offset or local time without one), a
    Unix timestamp (``1764410400.5``) or a duration before ``now`` (``10m``);
    returns wall seconds."""
    v = value.strip()
    try:
        return now - parse_duration(v)
    except ValueError:
        pass
    if _UNIX.match(v):
        return float(v)
    m = _RFC3339.match(v)
    if m:
        year, month, day, hh, mm, ss, frac, zone = m.groups()
        try:
            stamp = datetime(
                int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0)
            )
        except ValueError as exc:
            raise ValueError(f"invalid --since {value!r}: {exc}") from None
        if zone == "Z":
            stamp = stamp.replace(tzinfo=UTC)
        elif zone:
            sign = 1 if zone[0] == "+" else -1
            offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
            return stamp.replace(tzinfo=UTC).timestamp() - offset + _fraction(frac)
        # No zone: the local time, as Docker reads it.
        return stamp.timestamp() + _fraction(frac)
    raise ValueError(
        f"invalid --since {value!r}: expected a time (2026-11-29T10:00:00Z), "
        "a Unix timestamp or a duration (10m, 1h30m)"
    )


def _fraction(frac: str | None) -> float:
    return float(f"0.{frac}") if frac else 0.0


def rfc3339nano(t: float) -> str:
    """A wall time as Docker prints it with ``--timestamps``: UTC, nine digits
    of fraction, so every stamp has the same width."""
    whole = int(t // 1)
    nanos = round((t - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def split_lines(buf: bytes, final: bool) -> tuple[list[bytes], bytes]:
    """Whole lines of ``buf`` (without their newlines) and what is left after
    the last newline; with ``final`` that rest is a line too (output that
    ended without a newline)."""
    parts = buf.split(b"\n")
    rest = parts.pop()
    if final and rest:
        parts.append(rest)
        rest = b""
    return parts, rest


def decode(raw: bytes) -> str:
    """A line's text: UTF-8, with what is not UTF-8 replaced rather than refused;
    a carriage return before the newline goes with it."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", errors="replace")


def select(lines: Sequence[LogLine], since: float | None, tail: int) -> list[LogLine]:
    """Those of ``lines`` (in time order) at or after ``since``, then the last
    ``tail`` of them (-1: all)."""
    picked = [ln for ln in lines if since is None or ln.time >= since]
    if tail >= 0:
        picked = picked[len(picked) - tail :] if tail else []
    return picked


def merge(*streams: Iterable[LogLine]) -> list[LogLine]:
    """Lines of several streams (each in time order) in one time order; a
    stable sort keeps each stream's own order among equal times."""
    out: list[LogLine] = [ln for s in streams for ln in s]
    out.sort(key=lambda ln: ln.time)
    return out


def digits(n: int) -> int:
    return len(str(max(n, 0)))


def task_name(
    service: str, slot: int, task_id: str, node: str, *, no_task_ids: bool, no_trunc: bool
) -> str:
    """Docker's ``service.slot.taskid@node``: the ID cut to 12 characters unless
    ``no_trunc``, left out with ``no_task_ids``. A global task's slot is 0,
    as in Docker's output."""
    name = f"{service}.{slot}"
    if not no_task_ids:
        name += "." + (task_id if no_trunc else task_id[:SHORT_ID])
    return f"{name}@{node}"


def prefix(name: str, slot: int, padding: int) -> str:
    """The name and its padding: slot numbers of fewer digits than the
    service's replica count get spaces, so the bars line up (Docker's way)."""
    return name + " " * max(0, padding - digits(slot)) + SEPARATOR


def format_line(line: LogLine, head: str, *, timestamps: bool, raw: bool) -> str:
    """One output line as Docker prints it: ``[time ]name.slot.id@node    | text``,
    or with ``raw`` only ``[time ]text``."""
    stamp = rfc3339nano(line.time) + " " if timestamps else ""
    return stamp + line.text if raw else stamp + head + line.text


_STAMP = re.compile(rb"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z ")


def split_stamp(raw: bytes, fallback: float) -> tuple[float, bytes]:
    """A line as Docker sends it with ``timestamps``: its RFC 3339 stamp
    (fraction trimmed of zeros, as Go prints it) and the text after it; a
    line without one keeps ``fallback``."""
    m = _STAMP.match(raw)
    if m is None:
        return fallback, raw
    y, mo, d, h, mi, s, frac = m.groups()
    whole = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC).timestamp()
    return whole + (float(b"0." + frac) if frac else 0.0), raw[m.end() :]
