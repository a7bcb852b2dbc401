"""The node's side of a log stream: the window, resends, the lease, the end."""

from __future__ import annotations

import pytest

from pyswarmkit.api.protocol import LogAck, LogCancel, LogData, LogSubscribe
from pyswarmkit.logs.lines import STDOUT, LogLine
from pyswarmkit.logs.sender import LEASE, LOST, RESEND, Sender

pytestmark = pytest.mark.unit


class Reader:
    """``total`` lines (None: endless), handed out as asked."""

    def __init__(self, total: int | None = None) -> None:
        self.total = total
        self.at = 0
        self.closed = False
        self.fail = False

    @property
    def done(self) -> bool:
        return self.total is not None and self.at >= self.total

    def read(self, max_bytes: int, max_lines: int) -> list[LogLine]:
        if self.fail:
            raise OSError("disk on fire")
        n = max_lines if self.total is None else min(max_lines, self.total - self.at)
        out = [LogLine(STDOUT, 1.0, f"line {self.at + i}") for i in range(n)]
        self.at += n
        return out

    def close(self) -> None:
        self.closed = True


SUB = LogSubscribe("s1", "t1", follow=True, since=None, tail=-1, window=4)


def sender(reader: Reader) -> Sender:
    return Sender(lambda msg: reader)


def seqs(out: list[tuple[str, LogData]]) -> list[int]:
    return [m.seq for _, m in out]


def test_a_burst_goes_out_a_window_at_a_time() -> None:
    r = Reader()  # endless: a task writing as fast as it can
    s = sender(r)
    out = s.subscribe("mgr", SUB, 0.0)
    assert seqs(out) == [1, 2, 3, 4]
    assert all(dest == "mgr" and len(m.lines) == 1000 for dest, m in out)
    # Nothing consumed: nothing more is read, however often the node ticks.
    assert s.tick(0.5) == []
    assert r.at == 4000
    # Received but not consumed (a slow client): still nothing.
    assert s.ack("mgr", LogAck("s1", "t1", received=4, consumed=0), 1.0) == []
    # Two consumed: two more.
    assert seqs(s.ack("mgr", LogAck("s1", "t1", received=4, consumed=2), 1.0)) == [5, 6]


def test_what_was_not_received_is_sent_again() -> None:
    s = sender(Reader())
    s.subscribe("mgr", SUB, 0.0)
    s.ack("mgr", LogAck("s1", "t1", received=2, consumed=0), 0.5)
    assert s.tick(0.5 + RESEND / 2) == []
    assert seqs(s.tick(RESEND + 0.1)) == [3, 4]
    # A repeated subscription (the broker heard nothing) resends at once.
    assert seqs(s.subscribe("mgr", SUB, RESEND + 0.2)) == [3, 4]


def test_a_stream_nobody_renews_is_dropped() -> None:
    r = Reader()
    s = sender(r)
    s.subscribe("mgr", SUB, 0.0)
    s.ack("mgr", LogAck("s1", "t1", 4, 4), 5.0)
    s.tick(5.0 + LEASE - 0.1)
    assert s.streams and not r.closed
    s.tick(5.0 + LEASE + 0.1)
    assert not s.streams and r.closed
    # The broker, if it still holds the stream, is told the node no longer does.
    ((_, lost),) = s.ack("mgr", LogAck("s1", "t1", 4, 4), 20.0)
    assert (lost.seq, lost.eof, lost.error) == (0, True, LOST)


def test_a_whole_log_ends_with_eof_and_the_stream_with_its_consumption() -> None:
    r = Reader(total=2500)
    s = sender(r)
    out = s.subscribe("mgr", LogSubscribe("s1", "t1", False, None, -1, 4), 0.0)
    assert [len(m.lines) for _, m in out] == [1000, 1000, 500]
    assert [m.eof for _, m in out] == [False, False, True]
    s.ack("mgr", LogAck("s1", "t1", 3, 2), 1.0)
    assert s.streams
    s.ack("mgr", LogAck("s1", "t1", 3, 3), 1.0)
    assert not s.streams and r.closed


def test_a_failing_reader_ends_the_stream_with_its_error() -> None:
    r = Reader()
    r.fail = True
    ((_, m),) = sender(r).subscribe("mgr", SUB, 0.0)
    assert m.eof and "disk on fire" in m.error


def test_a_log_that_cannot_be_opened_says_why() -> None:
    def refuse(msg: LogSubscribe) -> Reader:
        raise OSError("no such container")

    ((_, m),) = Sender(refuse).subscribe("mgr", SUB, 0.0)
    assert m.eof and m.error == "no such container"


def test_cancel_drops_every_task_of_the_stream() -> None:
    r1, r2 = Reader(), Reader()
    readers = iter([r1, r2])
    s = Sender(lambda msg: next(readers))
    s.subscribe("mgr", SUB, 0.0)
    s.subscribe("mgr", LogSubscribe("s1", "t2", True, None, -1, 4), 0.0)
    assert s.cancel(LogCancel("s1")) == 2
    assert not s.streams and r1.closed and r2.closed
