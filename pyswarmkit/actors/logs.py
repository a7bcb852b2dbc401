"""Task logs across the swarm: the leader's broker and each node's sender.

- ``LogBrokerActor`` (the leader, beside the dispatcher, whose sessions make
  every node reachable from it) serves the control API's ``logs.open``,
  ``logs.read`` and ``logs.close`` through ``logs/broker.py``, and talks to
  the nodes over the bus. A read with nothing to give is held until lines
  come or ``LONG_POLL`` passes, so a following client costs a request a second
  when the tasks are quiet, and gets lines as soon as they arrive otherwise.
- A manager that does not lead forwards its clients' ``logs.*`` requests to
  the leader's broker (``LogControl``, answered by ``LogControlReply``):
  every node keeps its session with the leader, so only the leader can
  reach them all.
- ``LogSenderActor`` (every node running tasks) answers the broker through
  ``logs/sender.py`` with the executor's log readers, and has the executor
  stamp and rotate its output files once a second."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.control import answer, failed, ok
from pyswarmkit.actors.messages import ControlRequest, Deliver, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api import codec
from pyswarmkit.api.errors import InvalidArgument, SwarmError
from pyswarmkit.api.ids import new_id
from pyswarmkit.api.protocol import (
    Body,
    LogAck,
    LogCancel,
    LogControl,
    LogControlReply,
    LogData,
    LogSubscribe,
)
from pyswarmkit.executor.base import Executor, LogReader
from pyswarmkit.logs.broker import Broker, Out
from pyswarmkit.logs.files import LOOK_EVERY
from pyswarmkit.logs.sender import Sender
from pyswarmkit.store.memory import MemoryStore
from pyswarmkit.transport.bus import Bus, Envelope

log = logging.getLogger(__name__)

# A read with nothing to give waits at most this long for lines.
LONG_POLL = 1.0
# How long a manager that does not lead waits for the leader's answer to a
# request it forwarded (a held read included).
FORWARD_WAIT = LONG_POLL + 5.0
# Messages between broker and sender are stale past this.
MESSAGE_TTL = 5.0


def _send(
    bus: Bus, source: str, dest_actor: str, outs: Sequence[tuple[str, Body]], now: float
) -> None:
    for dest, body in outs:
        bus.send(Envelope(source, dest, dest_actor, body, deadline=now + MESSAGE_TTL))


class LogBrokerActor(GuardedActor):
    name = "logbroker"

    def __init__(self, registry: Registry, store: MemoryStore, bus: Bus) -> None:
        super().__init__()
        self.registry = registry
        self.store = store
        self.bus = bus
        self.core = Broker(new_id)
        # Reads waiting for lines: stream ID -> (request, when to answer anyway).
        self.waiting: dict[str, tuple[ControlRequest, float]] = {}

    def handle(self, message: Any) -> Any:
        now = clock.monotonic()
        if isinstance(message, ControlRequest):
            self._request(message, now)
        elif isinstance(message, Deliver):
            body = message.envelope.body
            if isinstance(body, LogData):
                self._out(self.core.data(message.envelope.source, body), now)
                self._answer_ready(now)
            elif isinstance(body, LogControl):
                self._forwarded(message.envelope, body, now)
        elif isinstance(message, Tick):
            self._out(self.core.tick(self.store, message.now), message.now)
            self._answer_ready(message.now)
        return None

    def _out(self, outs: list[Out], now: float) -> None:
        _send(self.bus, self.registry.node_id, "logsender", outs, now)

    def _request(self, req: ControlRequest, now: float) -> None:
        try:
            if req.method == "logs.open":
                result, outs = self.core.open(self.store, req.body, now)
                self._out(outs, now)
                answer(req, ok(result))
            elif req.method == "logs.read":
                stream = self._stream(req)
                old = self.waiting.pop(stream, None)
                if old is not None:
                    # A client asks once at a time: an older read was abandoned.
                    answer(old[0], ok({"tasks": [], "lines": [], "errors": [], "done": False}))
                if self.core.readable(stream):
                    self._read(req, stream, now)
                else:
                    self.waiting[stream] = (req, now + LONG_POLL)
            elif req.method == "logs.close":
                stream = self._stream(req)
                held = self.waiting.pop(stream, None)
                if held is not None:
                    answer(held[0], ok({"tasks": [], "lines": [], "errors": [], "done": True}))
                self._out(self.core.close(stream), now)
                answer(req, ok({}))
            else:
                raise InvalidArgument(f"unknown method {req.method}")
        except SwarmError as err:
            answer(req, failed(err))

    def _forwarded(self, env: Envelope, msg: LogControl, now: float) -> None:
        """A request a manager that does not lead took from its client: served
        here, answered to that manager (only managers may send this)."""
        bus, me = self.bus, self.registry.node_id

        def reply(result: dict[str, Any]) -> None:
            body = LogControlReply(codec.packb(result))
            bus.send(
                Envelope(
                    me, env.source, "logbroker", body, reply_to=env.id, deadline=now + FORWARD_WAIT
                )
            )

        try:
            body = codec.unpackb(msg.body)
            if not isinstance(body, dict):
                raise codec.CodecError("the body is not a map")
        except codec.CodecError as exc:
            answer(
                ControlRequest(msg.method, {}, reply),
                failed(InvalidArgument(f"malformed logs request: {exc}")),
            )
            return
        self._request(ControlRequest(msg.method, body, reply), now)

    @staticmethod
    def _stream(req: ControlRequest) -> str:
        stream = req.body.get("stream")
        if not isinstance(stream, str) or not stream:
            raise InvalidArgument("name the log stream to read")
        return stream

    def _read(self, req: ControlRequest, stream: str, now: float) -> None:
        try:
            result, outs = self.core.read(self.store, stream, now)
        except SwarmError as err:
            answer(req, failed(err))
            return
        self._out(outs, now)
        answer(req, ok(result))

    def _answer_ready(self, now: float) -> None:
        for stream, (req, due) in list(self.waiting.items()):
            if now >= due or self.core.readable(stream):
                del self.waiting[stream]
                self._read(req, stream, now)

    def on_stop(self) -> None:
        now = clock.monotonic()
        for req, _ in self.waiting.values():
            answer(req, ok({"tasks": [], "lines": [], "errors": [], "done": False}))
        self.waiting.clear()
        for stream in list(self.core.sessions):
            self._out(self.core.close(stream), now)


class LogSenderActor(GuardedActor):
    name = "logsender"

    def __init__(self, registry: Registry, bus: Bus, executor: Executor) -> None:
        super().__init__()
        self.registry = registry
        self.bus = bus
        self.executor = executor
        self.core = Sender(self._open)
        self.next_scan = 0.0

    def _open(self, msg: LogSubscribe) -> LogReader:
        return self.executor.logs(msg.task_id, follow=msg.follow, since=msg.since, tail=msg.tail)

    def handle(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            now = clock.monotonic()
            env = message.envelope
            body = env.body
            if isinstance(body, LogSubscribe):
                self._out(self.core.subscribe(env.source, body, now), now)
            elif isinstance(body, LogAck):
                self._out(self.core.ack(env.source, body, now), now)
            elif isinstance(body, LogCancel) and self.core.cancel(body):
                log.info("log stream %s ended: its reader went away", body.stream_id)
        elif isinstance(message, Tick):
            if message.now >= self.next_scan:
                self.next_scan = message.now + LOOK_EVERY
                scan = getattr(self.executor, "scan_logs", None)
                if callable(scan):
                    scan(message.wall)
            self._out(self.core.tick(message.now), message.now)
        return None

    def _out(self, outs: list[tuple[str, LogData]], now: float) -> None:
        _send(self.bus, self.registry.node_id, "logbroker", outs, now)

    def on_stop(self) -> None:
        self.core.close()
