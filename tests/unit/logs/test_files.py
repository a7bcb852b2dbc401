"""A process task's output files read back as log lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswarmkit.logs.files import FileLogReader, checkpoint, idx_path, log_path, tail_start
from pyswarmkit.logs.lines import STDERR, STDOUT

pytestmark = pytest.mark.unit


def write(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def read_all(r: FileLogReader, max_lines: int = 1000) -> list[tuple[int, float, str]]:
    out = []
    for _ in range(10_000):
        got = r.read(1 << 20, max_lines)
        out += [(ln.stream, ln.time, ln.text) for ln in got]
        if r.done or not got:
            break
    return out


def reader(d: Path, **kw: object) -> FileLogReader:
    opts: dict[str, object] = {"follow": False, "since": None, "tail": -1, "clock": lambda: 99.0}
    opts.update(kw)
    return FileLogReader(d, **opts)  # type: ignore[arg-type]


def test_lines_are_stamped_by_the_look_that_first_saw_them(tmp_path: Path) -> None:
    seen: dict[Path, int] = {}
    write(log_path(tmp_path, STDOUT), "a\nb\n")
    checkpoint(tmp_path, seen, 10.0)
    write(log_path(tmp_path, STDERR), "oops\n")
    write(log_path(tmp_path, STDOUT), "c\n")
    checkpoint(tmp_path, seen, 20.0)
    write(log_path(tmp_path, STDOUT), "d")  # not looked at yet, no newline
    got = read_all(reader(tmp_path))
    assert got == [
        (STDOUT, 10.0, "a"),
        (STDOUT, 10.0, "b"),
        (STDOUT, 20.0, "c"),
        (STDERR, 20.0, "oops"),
        (STDOUT, 99.0, "d"),
    ]
    assert [t for _, _, t in read_all(reader(tmp_path, since=15.0))] == ["c", "oops", "d"]


def test_tail_counts_over_both_streams(tmp_path: Path) -> None:
    seen: dict[Path, int] = {}
    for i in range(5):
        write(log_path(tmp_path, STDOUT), f"out{i}\n")
        write(log_path(tmp_path, STDERR), f"err{i}\n")
        checkpoint(tmp_path, seen, float(i))
    got = [t for _, _, t in read_all(reader(tmp_path, tail=3))]
    assert got == ["err3", "out4", "err4"]
    assert read_all(reader(tmp_path, tail=0)) == []
    assert len(read_all(reader(tmp_path, tail=100))) == 10


def test_tail_start_reads_backwards_through_the_rotated_copy(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("1\n2\n3\n")
    b.write_text("4\n5\n")
    assert tail_start([a, b], 2) == (0, 6, 2)  # the end of the copy
    assert tail_start([a, b], 3) == (0, 4, 3)
    assert tail_start([a, b], 9) == (0, 0, 5)


def test_rotation_keeps_one_copy_and_a_follower_reads_through_it(tmp_path: Path) -> None:
    seen: dict[Path, int] = {}
    out = log_path(tmp_path, STDOUT)
    r = reader(tmp_path, follow=True)
    write(out, "x" * 50 + "\n")
    assert [t for _, _, t in read_all(r)] == ["x" * 50]
    write(out, "before\n")
    checkpoint(tmp_path, seen, 1.0, limit=40)  # rotated: the copy holds both lines
    assert out.stat().st_size == 0
    assert log_path(tmp_path, STDOUT, old=True).exists()
    assert idx_path(tmp_path, STDOUT, old=True).exists()
    write(out, "after\n")
    assert [t for _, _, t in read_all(r)] == ["before", "after"]
    assert not r.done
    # History reads the copy, then the live file.
    assert [t for _, _, t in read_all(reader(tmp_path))] == ["x" * 50, "before", "after"]


def test_a_burst_is_handed_out_in_bounded_batches(tmp_path: Path) -> None:
    write(log_path(tmp_path, STDOUT), "".join(f"line {i}\n" for i in range(100_000)))
    r = reader(tmp_path)
    sizes = []
    while not r.done:
        sizes.append(len(r.read(64 * 1024, 1000)))
    assert sum(sizes) == 100_000
    assert max(sizes) == 1000


def test_lines_one_look_found_are_spread_over_the_second_before_it() -> None:
    from pyswarmkit.logs.files import LOOK_EVERY, stamp

    sizes, times = [10, 30], [100.0, 200.0]
    # Seen by the first look: its time.
    assert stamp(sizes, times, 10, 999.0) == 100.0
    # Seen by the second, long after the first: within the second before it,
    # by where the line ends among the bytes it found.
    assert stamp(sizes, times, 20, 999.0) == pytest.approx(200.0 - LOOK_EVERY / 2)
    assert stamp(sizes, times, 30, 999.0) == 200.0
    # Not looked at yet: the reading time, or, knowing the file's size now,
    # spread over the second before it like the lines a look found.
    assert stamp(sizes, times, 31, 999.0) == 999.0
    assert stamp(sizes, times, 35, 999.0, size=40) == pytest.approx(999.0 - LOOK_EVERY / 2)


def test_a_follower_sees_a_rotation_even_when_the_file_grew_back(tmp_path: Path) -> None:
    seen: dict[Path, int] = {}
    out = log_path(tmp_path, STDOUT)
    write(out, "a\nb\n")
    r = reader(tmp_path, follow=True)
    assert [t for _, _, t in read_all(r)] == ["a", "b"]
    write(out, "c\n")
    checkpoint(tmp_path, seen, 1.0, limit=4)  # rotated, "c" unread
    write(out, "d\ne\nf\ng\n")  # longer than what the reader had read
    assert [t for _, _, t in read_all(r)] == ["c", "d", "e", "f", "g"]


def test_a_follow_of_a_task_not_started_yet_waits_for_its_files(tmp_path: Path) -> None:
    from pyswarmkit.executor.process import ProcessExecutor

    ex = ProcessExecutor(tmp_path, "node-1")
    assert ex.logs("t1", follow=False, since=None, tail=-1).done
    r = ex.logs("t1", follow=True, since=None, tail=-1)
    assert r.read(1 << 16, 100) == [] and not r.done
    (tmp_path / "worker" / "tasks" / "t1").mkdir(parents=True)
    write(log_path(tmp_path / "worker" / "tasks" / "t1", STDOUT), "hello\n")
    assert [ln.text for ln in r.read(1 << 16, 100)] == ["hello"]
