"""Log options as Docker's CLI takes them, selection and the line prefix."""

from __future__ import annotations

import pytest

from pyswarmkit.logs.lines import (
    STDERR,
    STDOUT,
    LogLine,
    format_line,
    merge,
    parse_duration,
    parse_since,
    parse_tail,
    prefix,
    rfc3339nano,
    select,
    split_lines,
    task_name,
)

pytestmark = pytest.mark.unit

NOW = 1_764_410_400.0  # 2025-11-29T10:00:00Z


def test_tail_takes_all_or_a_count_and_refuses_the_rest() -> None:
    assert parse_tail("all") == -1
    assert parse_tail("0") == 0
    assert parse_tail("25") == 25
    for bad in ("-3", "ten", "1.5"):
        with pytest.raises(ValueError, match="invalid --tail"):
            parse_tail(bad)


def test_since_takes_durations_times_and_unix_stamps() -> None:
    assert parse_since("10m", NOW) == NOW - 600
    assert parse_since("1h30m", NOW) == NOW - 5400
    assert parse_since("1.5s", NOW) == NOW - 1.5
    assert parse_since("2025-11-29T10:00:00Z", NOW) == NOW
    assert parse_since("2025-11-29T11:00:00+01:00", NOW) == NOW
    assert parse_since("2025-11-29T10:00:00.25Z", NOW) == NOW + 0.25
    assert parse_since("1764410400.5", NOW) == NOW + 0.5
    for bad in ("yesterday", "10x", "2025-13-01T00:00:00Z", ""):
        with pytest.raises(ValueError, match=r"--since|duration"):
            parse_since(bad, NOW)
    assert parse_duration("300ms") == pytest.approx(0.3)


def test_timestamps_are_rfc3339_with_nine_digits() -> None:
    assert rfc3339nano(NOW) == "2025-11-29T10:00:00.000000000Z"
    assert rfc3339nano(NOW + 0.5) == "2025-11-29T10:00:00.500000000Z"


def test_lines_split_keep_the_unfinished_rest() -> None:
    assert split_lines(b"a\nb\nc", final=False) == ([b"a", b"b"], b"c")
    assert split_lines(b"a\nb\nc", final=True) == ([b"a", b"b", b"c"], b"")
    assert split_lines(b"a\n", final=True) == ([b"a"], b"")


def test_select_applies_since_then_tail() -> None:
    lines = [LogLine(STDOUT, float(t), f"l{t}") for t in range(10)]
    assert [ln.text for ln in select(lines, None, 3)] == ["l7", "l8", "l9"]
    assert [ln.text for ln in select(lines, 8.0, -1)] == ["l8", "l9"]
    assert [ln.text for ln in select(lines, 8.0, 5)] == ["l8", "l9"]
    assert select(lines, None, 0) == []
    out = merge([LogLine(STDOUT, 1, "a"), LogLine(STDOUT, 3, "c")], [LogLine(STDERR, 2, "b")])
    assert [ln.text for ln in out] == ["a", "b", "c"]


def test_prefix_as_docker_prints_it() -> None:
    tid = "abc123def456ghi789jkl0mno"
    name = task_name("redis", 1, tid, "node-1", no_task_ids=False, no_trunc=False)
    assert name == "redis.1.abc123def456@node-1"
    assert task_name("redis", 1, tid, "n", no_task_ids=False, no_trunc=True) == f"redis.1.{tid}@n"
    assert task_name("redis", 1, tid, "n", no_task_ids=True, no_trunc=False) == "redis.1@n"
    # Slots of fewer digits than the replica count are padded so the bars line up.
    head = prefix(name, 1, 2)
    assert head == "redis.1.abc123def456@node-1     | "
    line = LogLine(STDOUT, NOW, "hello")
    assert format_line(line, head, timestamps=False, raw=False) == head + "hello"
    stamped = format_line(line, head, timestamps=True, raw=False)
    assert stamped == "2025-11-29T10:00:00.000000000Z " + head + "hello"
    assert format_line(line, head, timestamps=False, raw=True) == "hello"
