"""A process task's output files: when each line was written, rotation, and
reading them back as log lines (tail, since, follow).

A task's process writes straight into ``stdout.log`` and ``stderr.log`` (it
outlives its node's ``swarmd``, so nothing of the node sits between them). The
node looks at each file's size now and then (``checkpoint``) and appends
``<size> <wall time>`` to ``stdout.idx``/``stderr.idx`` when it grew: a line
is stamped between the first look that saw it whole and the look before,
in proportion to its place among the bytes that look found, so stamps are
within a look's interval (a second) of the truth; a line not looked at yet
gets the reading time. A file past ``limit`` bytes is rotated by copy and truncate
(the process holds it open with O_APPEND, so it writes on at the new end):
the copy is ``stdout.log.1`` with its index ``stdout.idx.1``, an older copy is
replaced, so a stream keeps at most twice the limit. The copy is made again
over what was written meanwhile, so only what lands in the instant between
its last read and the truncate can be lost (logrotate's copytruncate loses
all it took to copy).
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyswarmkit.logs.lines import STDERR, STDOUT, LogLine, decode

# Rotate a stream's file past this size (keeping one older copy).
ROTATE_BYTES = 8 * 1024 * 1024
CHUNK = 64 * 1024
# How often the node looks at its tasks' output files (``checkpoint``).
LOOK_EVERY = 1.0
STREAM_FILES = {STDOUT: "stdout", STDERR: "stderr"}


def log_path(workdir: Path, stream: int, old: bool = False) -> Path:
    return workdir / (STREAM_FILES[stream] + ".log" + (".1" if old else ""))


def idx_path(workdir: Path, stream: int, old: bool = False) -> Path:
    return workdir / (STREAM_FILES[stream] + ".idx" + (".1" if old else ""))


def checkpoint(
    workdir: Path, seen: dict[Path, int], wall: float, limit: int = ROTATE_BYTES
) -> None:
    """Record when each stream of a task grew, and rotate a stream past
    ``limit``. ``seen`` holds the sizes last recorded (the caller's memory
    between looks)."""
    for stream in (STDOUT, STDERR):
        log = log_path(workdir, stream)
        try:
            size = log.stat().st_size
        except OSError:
            continue
        last = seen.get(log, -1)
        if size == last:
            continue
        idx = idx_path(workdir, stream)
        if size > last or last < 0:
            with open(idx, "a") as f:
                f.write(f"{size} {wall:.6f}\n")
        seen[log] = size
        if size > limit:
            rotate(workdir, stream, wall)
            seen[log] = 0


def rotate(workdir: Path, stream: int, wall: float) -> None:
    """Copy the stream's file aside (replacing an older copy) and truncate it.

    What the task writes while the copy is made is copied after it, again
    until little is left, so only what lands between the last look and the
    truncate (microseconds, not the whole copy's time) can be lost."""
    log, idx = log_path(workdir, stream), idx_path(workdir, stream)
    tmp = workdir / (log.name + ".tmp")
    with open(log, "rb") as src, open(tmp, "wb") as dst:
        copied = 0
        for _ in range(8):
            src.seek(copied)
            chunk = src.read(CHUNK)
            while chunk:
                dst.write(chunk)
                copied += len(chunk)
                chunk = src.read(CHUNK)
            if os.fstat(src.fileno()).st_size - copied < CHUNK:
                break
        tail = src.read()
        dst.write(tail)
        os.truncate(log, 0)
        copied += len(tail)
    os.replace(tmp, log_path(workdir, stream, old=True))
    if idx.exists():
        os.replace(idx, idx_path(workdir, stream, old=True))
    with open(idx_path(workdir, stream, old=True), "a") as f:
        # The copy's end: what the task wrote after the last look.
        f.write(f"{copied} {wall:.6f}\n")


def load_index(path: Path) -> tuple[list[int], list[float]]:
    """A stream's recorded looks: sizes (ascending) and when each was seen."""
    sizes: list[int] = []
    times: list[float] = []
    try:
        text = path.read_text()
    except OSError:
        return sizes, times
    for line in text.splitlines():
        a, _, b = line.partition(" ")
        try:
            size, t = int(a), float(b)
        except ValueError:
            continue  # a torn last line
        if sizes and size <= sizes[-1]:
            continue
        sizes.append(size)
        times.append(t)
    return sizes, times


def stamp(
    sizes: list[int], times: list[float], end: int, now: float, size: int | None = None
) -> float:
    """When the line ending at byte ``end`` was written: between the look that
    first saw it whole and the one before (at most ``LOOK_EVERY`` earlier),
    in proportion to where it ends among the bytes that look found. Two
    streams' lines seen by one look so keep their likely order. A line no
    look has seen yet is placed the same way between the last look and
    ``now``, the file being ``size`` bytes long now."""
    i = bisect.bisect_left(sizes, end)
    if i >= len(times):
        s0 = sizes[-1] if sizes else 0
        if size is None or size <= s0:
            return now
        t0 = max(times[-1] if times else now - LOOK_EVERY, now - LOOK_EVERY)
        return t0 + (now - t0) * (end - s0) / (size - s0)
    t1 = times[i]
    if i == 0:
        return t1
    s0, s1 = sizes[i - 1], sizes[i]
    t0 = max(times[i - 1], t1 - LOOK_EVERY)
    return t0 + (t1 - t0) * (end - s0) / (s1 - s0)


def tail_start(files: list[Path], n: int) -> tuple[int, int, int]:
    """Where the last ``n`` lines of ``files`` (one stream, oldest file first)
    begin: (file index, offset, lines found, at most n). Reads backwards in
    chunks, so a long file costs only what is read."""
    sizes = [_size(p) for p in files]
    if n == 0:
        return len(files) - 1, sizes[-1], 0
    found = 0
    skip_final = True  # a newline ending the data ends the last line, starts none
    for fi in range(len(files) - 1, -1, -1):
        pos = sizes[fi]
        if pos == 0:
            continue
        with open(files[fi], "rb") as f:
            while pos > 0:
                start = max(0, pos - CHUNK)
                f.seek(start)
                block = f.read(pos - start)
                end = len(block)
                if skip_final:
                    skip_final = False
                    if block.endswith(b"\n"):
                        end -= 1
                while True:
                    at = block.rfind(b"\n", 0, end)
                    if at < 0:
                        break
                    found += 1
                    if found == n:
                        return fi, start + at + 1, n
                    end = at
                pos = start
    # Fewer newlines than asked: everything, counting the first line too.
    has_data = any(sizes)
    return 0, 0, min(n, found + 1) if has_data else 0


def _ino(p: Path) -> int:
    try:
        return p.stat().st_ino
    except OSError:
        return 0


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


@dataclass
class StreamCursor:
    """Reads one stream's lines from a position on, through rotation."""

    workdir: Path
    stream: int
    # Which file: True the rotated copy, False the live one.
    old: bool
    pos: int
    follow: bool
    buf: bytes = b""
    pending: deque[LogLine] = field(default_factory=deque)
    # The live file ran out in a read that found nothing new.
    at_end: bool = False
    # The rotated copy as last seen (its inode): a new one means the live
    # file was truncated since, even if it has grown past ``pos`` again.
    copy_ino: int | None = None
    # The file's size at the last read (stamps lines no look has seen yet).
    size: int = 0
    _index: dict[bool, tuple[float, tuple[list[int], list[float]]]] = field(default_factory=dict)

    def _times(self, old: bool) -> tuple[list[int], list[float]]:
        path = idx_path(self.workdir, self.stream, old)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return [], []
        got = self._index.get(old)
        if got is None or got[0] != mtime:
            got = (mtime, load_index(path))
            self._index[old] = got
        return got[1]

    def fill(self, now: float) -> bool:
        """Read the next chunk into ``pending``; False when nothing was there."""
        self.at_end = False
        path = log_path(self.workdir, self.stream, self.old)
        size = self.size = _size(path)
        ino = _ino(log_path(self.workdir, self.stream, True))
        if self.copy_ino is None:
            self.copy_ino = ino
        rotated = ino != self.copy_ino
        self.copy_ino = ino
        if not self.old and (size < self.pos or rotated):
            # Rotated under us: the rest of what we were reading is in the copy.
            if _size(log_path(self.workdir, self.stream, True)) >= self.pos:
                self.old = True
            else:
                self.pos, self.buf = 0, b""
            return self.fill(now)
        if self.pos >= size:
            if self.old:
                self.old, self.pos = False, 0
                return self.fill(now)
            self.at_end = True
            if not self.follow and self.buf:
                self._emit([self.buf], self.pos, now)
                self.buf = b""
                return True
            return False
        try:
            with open(path, "rb") as f:
                f.seek(self.pos)
                data = f.read(min(CHUNK, size - self.pos))
        except OSError:
            self.at_end = True
            return False
        if not data:
            self.at_end = True
            return False
        self.pos += len(data)
        data = self.buf + data
        parts = data.split(b"\n")
        self.buf = parts.pop()
        if parts:
            self._emit(parts, self.pos - len(self.buf), now)
        return True

    def _emit(self, parts: list[bytes], end: int, now: float) -> None:
        """Lines ``parts``, the last ending (newline included) at ``end``."""
        sizes, times = self._times(self.old)
        ends: list[int] = []
        at = end
        for raw in reversed(parts):
            ends.append(at)
            at -= len(raw) + 1
        ends.reverse()
        for raw, e in zip(parts, ends, strict=True):
            t = stamp(sizes, times, e, now, self.size)
            self.pending.append(LogLine(self.stream, t, decode(raw)))


class FileLogReader:
    """A task's log from its files, both streams merged in time order, for
    ``read`` to hand out in bounded batches; with ``follow`` it goes on with
    what is written later."""

    def __init__(
        self,
        workdir: Path,
        *,
        follow: bool,
        since: float | None,
        tail: int,
        clock: Callable[[], float],
    ) -> None:
        self.workdir = workdir
        self.follow = follow
        self.since = since
        self.clock = clock
        self.cursors: list[StreamCursor] = []
        skip_total = 0
        for stream in (STDOUT, STDERR):
            files = [log_path(workdir, stream, True), log_path(workdir, stream)]
            if tail >= 0:
                fi, off, found = tail_start(files, tail)
                skip_total += found
            else:
                fi, off = 0, 0
            self.cursors.append(StreamCursor(workdir, stream, fi == 0, off, follow))
        # Each stream gave its last ``tail`` lines: the merged tail drops the
        # oldest of them beyond ``tail``.
        self.skip = max(0, skip_total - tail) if tail >= 0 else 0
        self.history = True
        self.finished = False

    @property
    def done(self) -> bool:
        return self.finished

    def read(self, max_bytes: int, max_lines: int) -> list[LogLine]:
        now = self.clock()
        out: list[LogLine] = []
        size = 0
        while len(out) < max_lines and size < max_bytes:
            for c in self.cursors:
                if not c.pending and not c.at_end:
                    c.fill(now)
            ready = [c for c in self.cursors if c.pending]
            if self.history and any(not c.pending and not c.at_end for c in self.cursors):
                continue  # a stream still has history to read before merging on
            if not ready:
                if all(c.at_end for c in self.cursors):
                    self.history = False
                    if not self.follow:
                        self.finished = True
                    # Look again on the next read (a follow waits for more).
                    for c in self.cursors:
                        c.at_end = False
                    break
                continue
            c = min(ready, key=lambda c: c.pending[0].time)
            line = c.pending.popleft()
            if self.skip:
                self.skip -= 1
                continue
            if self.since is not None and line.time < self.since:
                continue
            out.append(line)
            size += len(line.text) + 1
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cursors.clear()
