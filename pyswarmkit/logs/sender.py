"""The node's side of a log stream: read a task's log through the executor's
reader and send it to the broker in numbered batches, at most ``window`` of
them unconsumed, resending what was not received.

Pure over its inputs: the actor hands it messages, ``now`` (monotonic) and a
function opening a reader; it returns the messages to send. A reader is read
only here, one bounded batch at a time, so a log of any size costs the node
at most ``window`` batches in flight per stream: a slow client slows the
reading, nothing queues up.

A stream the broker has said nothing about for ``LEASE`` seconds is dropped
(its client went away, or the manager did): the broker acknowledges every
batch and keeps live streams alive every few seconds even when idle."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pyswarmkit.api.protocol import LogAck, LogCancel, LogData, LogRecord, LogSubscribe
from pyswarmkit.executor.base import LogReader

log = logging.getLogger(__name__)

# One batch holds at most this much text, or this many lines.
BATCH_BYTES = 64 * 1024
BATCH_LINES = 1000
# A stream nobody has renewed for this long is dropped.
LEASE = 10.0
# A batch not acknowledged as received for this long is sent again.
RESEND = 2.0
# A window larger than this is cut to it (a broker cannot make a node buffer more).
MAX_WINDOW = 16

LOST = "the log stream is no longer known on this node (its swarmd restarted)"


@dataclass
class Outbound:
    manager: str
    stream_id: str
    task_id: str
    reader: LogReader
    window: int
    heard: float
    next_seq: int = 1
    received: int = 0
    consumed: int = 0
    # Sent, not yet acknowledged as received: (batch, when last sent).
    unacked: deque[tuple[LogData, float]] = field(default_factory=deque)
    eof_sent: bool = False


Out = tuple[str, LogData]


class Sender:
    def __init__(self, open_reader: Callable[[LogSubscribe], LogReader]) -> None:
        self.open_reader = open_reader
        self.streams: dict[tuple[str, str], Outbound] = {}

    def subscribe(self, manager: str, msg: LogSubscribe, now: float) -> list[Out]:
        key = (msg.stream_id, msg.task_id)
        found = self.streams.get(key)
        if found is not None:
            # A repeat (the broker has not heard from us yet): keep going.
            found.heard = now
            return self._resend(found, now, force=True) + self._pump(found, now)
        try:
            reader = self.open_reader(msg)
        except Exception as exc:
            log.warning("log of task %s cannot be read: %s", msg.task_id, exc)
            return [(manager, LogData(msg.stream_id, msg.task_id, 1, (), True, str(exc)))]
        window = max(1, min(msg.window, MAX_WINDOW))
        o = Outbound(manager, msg.stream_id, msg.task_id, reader, window, now)
        self.streams[key] = o
        return self._pump(o, now)

    def ack(self, manager: str, msg: LogAck, now: float) -> list[Out]:
        o = self.streams.get((msg.stream_id, msg.task_id))
        if o is None:
            return [(manager, LogData(msg.stream_id, msg.task_id, 0, (), True, LOST))]
        o.heard = now
        o.received = max(o.received, min(msg.received, o.next_seq - 1))
        o.consumed = max(o.consumed, min(msg.consumed, o.received))
        while o.unacked and o.unacked[0][0].seq <= o.received:
            o.unacked.popleft()
        if o.eof_sent and o.consumed >= o.next_seq - 1:
            self._drop((msg.stream_id, msg.task_id))
            return []
        return self._pump(o, now)

    def cancel(self, msg: LogCancel) -> int:
        """End a stream (its client went away); how many tasks' logs it read."""
        keys = [k for k in self.streams if k[0] == msg.stream_id]
        for key in keys:
            self._drop(key)
        return len(keys)

    def tick(self, now: float) -> list[Out]:
        out: list[Out] = []
        for key, o in list(self.streams.items()):
            if now - o.heard > LEASE:
                log.info("log stream of task %s dropped: not renewed for %g s", o.task_id, LEASE)
                self._drop(key)
                continue
            out += self._resend(o, now)
            out += self._pump(o, now)
        return out

    def close(self) -> None:
        for key in list(self.streams):
            self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        o = self.streams.pop(key, None)
        if o is not None:
            try:
                o.reader.close()
            except Exception:
                log.exception("closing the log reader of task %s failed", o.task_id)

    def _resend(self, o: Outbound, now: float, force: bool = False) -> list[Out]:
        out: list[Out] = []
        for i, (batch, sent) in enumerate(o.unacked):
            if force or now - sent >= RESEND:
                o.unacked[i] = (batch, now)
                out.append((o.manager, batch))
        return out

    def _pump(self, o: Outbound, now: float) -> list[Out]:
        """Read and send batches while the window has room."""
        out: list[Out] = []
        while not o.eof_sent and (o.next_seq - 1) - o.consumed < o.window:
            error = ""
            try:
                lines = o.reader.read(BATCH_BYTES, BATCH_LINES)
                eof = o.reader.done
            except Exception as exc:
                log.warning("reading the log of task %s failed: %s", o.task_id, exc)
                lines, eof, error = [], True, f"reading the log failed: {exc}"
            if not lines and not eof:
                break
            records = tuple(LogRecord(ln.stream, ln.time, ln.text) for ln in lines)
            batch = LogData(o.stream_id, o.task_id, o.next_seq, records, eof, error)
            o.next_seq += 1
            o.eof_sent = eof
            o.unacked.append((batch, now))
            out.append((o.manager, batch))
        return out
