"""The leader's log broker: one session per client stream, one subscription
per task, each fed by the node that runs the task (``logs/sender.py``).

Flow control runs end to end: a node sends a task's batches only while fewer
than ``WINDOW`` wait unconsumed; the broker holds at most those (about
``WINDOW`` x 64 KiB per task) and acknowledges a batch as consumed only when
the client has read it. A slow client therefore slows the nodes' reading; the
manager never queues without bound. A client that stops reading for
``IDLE`` seconds is taken for gone: its session ends and the nodes are told to
stop (and would stop anyway once their lease runs out).

Pure: reads the store it is given (shared reads, as every core), takes
``now`` (monotonic) as an argument, and returns the messages to send."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import Task
from pyswarmkit.api.protocol import Body, LogAck, LogCancel, LogData, LogSubscribe
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.control.resolve import resolve
from pyswarmkit.logs.lines import digits
from pyswarmkit.store.memory import MemoryStore

# Batches a node may have unconsumed per task.
WINDOW = 4
# A client read answers with about this much at most.
READ_BYTES = 256 * 1024
READ_LINES = 4000
# A subscription nothing came back for is asked again; a live one renewed.
RENEW = 3.0
# A client that has not read for this long is gone (one that reads waits at
# most a second for each answer).
IDLE = 10.0
# A follow session looks for new tasks of its service this often.
NEW_TASKS_EVERY = 1.0

Out = tuple[str, Body]


@dataclass
class Sub:
    task_id: str
    node_id: str
    since: float | None
    tail: int
    received: int = 0
    consumed: int = 0
    batches: deque[LogData] = field(default_factory=deque)
    heard: bool = False
    ended: bool = False
    # When the broker last spoke to the node about it.
    sent_at: float = float("-inf")


@dataclass
class Session:
    id: str
    follow: bool
    since: float | None
    tail: int
    # For a service's log: its ID, so a follow takes in its new tasks.
    service_id: str
    subs: dict[str, Sub] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    # Tasks the client has been told of (it names their lines).
    told: set[str] = field(default_factory=set)
    last_read: float = 0.0
    looked_at: float = 0.0
    # Where the next read starts taking, so every task gets its turn.
    turn: int = 0


def task_info(store: MemoryStore, task: Task) -> dict[str, Any]:
    """What a client needs to name a task's lines."""
    node = store.get_node(task.node_id)
    name = node.description.hostname if node is not None and node.description else ""
    return {
        "id": task.id,
        "service": task.service_name,
        "slot": task.slot,
        "node": name or task.node_id,
    }


def _has_log(task: Task) -> bool:
    """Tasks that reached a node may have written something."""
    return bool(task.node_id) and task.status.state >= TaskState.ASSIGNED


class Broker:
    def __init__(self, new_id: Callable[[], str]) -> None:
        self.new_id = new_id
        self.sessions: dict[str, Session] = {}

    # --- the client's side ----------------------------------------------------------

    def open(
        self, store: MemoryStore, body: dict[str, Any], now: float
    ) -> tuple[dict[str, Any], list[Out]]:
        follow = bool(body.get("follow", False))
        since = body.get("since")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
            raise InvalidArgument("since must be a time in seconds")
        tail = body.get("tail", -1)
        if isinstance(tail, bool) or not isinstance(tail, int) or tail < -1:
            raise InvalidArgument(f"invalid tail {tail!r}: a number of lines (0 or more) or all")
        service_ref, task_ref = body.get("service"), body.get("task")
        padding = 1
        if isinstance(service_ref, str) and service_ref:
            service = resolve("service", service_ref, store.services())
            tasks = [t for t in store.tasks_by_service(service.id) if _has_log(t)]
            service_id = service.id
            if service.spec.mode.kind == "replicated":
                padding = digits(service.spec.mode.replicas)
        elif isinstance(task_ref, str) and task_ref:
            task = resolve("task", task_ref, store.tasks())
            if not _has_log(task):
                raise NotFound(f"task {task.id} has not reached a node yet: it has no log")
            tasks, service_id = [task], ""
            padding = digits(task.slot)
        else:
            raise InvalidArgument("name a service or a task")
        s = Session(self.new_id(), follow, since, tail, service_id, last_read=now, looked_at=now)
        self.sessions[s.id] = s
        out: list[Out] = []
        tasks.sort(key=lambda t: (t.slot, t.meta.created_index))
        for t in tasks:
            out += self._add(store, s, t, now)
        info = [task_info(store, t) for t in tasks]
        s.told.update(t.id for t in tasks)
        return {"stream": s.id, "tasks": info, "padding": padding}, out

    def _add(
        self, store: MemoryStore, s: Session, task: Task, now: float, tail: int | None = None
    ) -> list[Out]:
        sub = Sub(task.id, task.node_id, s.since, s.tail if tail is None else tail)
        s.subs[task.id] = sub
        down = self._node_down(store, task.node_id)
        if down:
            sub.ended = True
            s.errors.append((task.id, down))
            return []
        sub.sent_at = now
        return [(task.node_id, self._subscribe(s, sub))]

    def _subscribe(self, s: Session, sub: Sub) -> LogSubscribe:
        return LogSubscribe(s.id, sub.task_id, s.follow, sub.since, sub.tail, WINDOW)

    @staticmethod
    def _node_down(store: MemoryStore, node_id: str, streaming: bool = False) -> str:
        """Why the node cannot send a task's log, or "" when it can."""
        node = store.get_node(node_id)
        if node is None:
            return f"node {node_id} is no longer in the swarm: its log cannot be read"
        name = node.description.hostname if node.description else node_id
        if node.status.state == NodeState.READY:
            return ""
        state = node.status.state.name.lower()
        if streaming:
            return f"node {name} went {state}: its log stream ended"
        return f"node {name} is {state}: its log cannot be read now"

    def readable(self, stream_id: str) -> bool:
        """Whether a read of the stream would answer with something now."""
        s = self.sessions.get(stream_id)
        if s is None:
            return True
        return (
            bool(s.errors)
            or bool(s.subs.keys() - s.told)
            or self._finished(s)
            or any(sub.batches for sub in s.subs.values())
        )

    def read(
        self, store: MemoryStore, stream_id: str, now: float
    ) -> tuple[dict[str, Any], list[Out]]:
        """What is there for the client: lines ``[task_id, stream, time,
        text]``, errors ``[task_id, message]``, tasks it was not told of yet
        (a follow takes in new ones), and ``done``."""
        s = self.sessions.get(stream_id)
        if s is None:
            raise NotFound(f"log stream {stream_id} not found: it ended or was idle too long")
        s.last_read = now
        tasks: list[dict[str, Any]] = []
        for tid in s.subs:
            if tid not in s.told:
                task = store.get_task(tid)
                if task is not None:
                    tasks.append(task_info(store, task))
                s.told.add(tid)
        out: list[Out] = []
        lines: list[list[Any]] = []
        size = 0
        subs = list(s.subs.values())
        n = len(subs)
        for k in range(n):
            sub = subs[(s.turn + k) % n]
            took = False
            while sub.batches and size < READ_BYTES and len(lines) < READ_LINES:
                batch = sub.batches.popleft()
                took = True
                for r in batch.lines:
                    lines.append([sub.task_id, r.stream, r.time, r.text])
                    size += len(r.text) + 32
                sub.consumed = batch.seq
                if batch.error:
                    s.errors.append((sub.task_id, batch.error))
                if batch.eof:
                    sub.ended = True
            if took:
                sub.sent_at = now
                out.append((sub.node_id, LogAck(s.id, sub.task_id, sub.received, sub.consumed)))
        s.turn = (s.turn + 1) % max(n, 1)
        errors = [list(e) for e in s.errors]
        s.errors = []
        done = self._finished(s)
        if done:
            del self.sessions[s.id]
        return {"tasks": tasks, "lines": lines, "errors": errors, "done": done}, out

    def close(self, stream_id: str) -> list[Out]:
        s = self.sessions.pop(stream_id, None)
        if s is None:
            return []
        return self._cancel(s)

    def _cancel(self, s: Session) -> list[Out]:
        nodes = sorted({sub.node_id for sub in s.subs.values() if not sub.ended})
        return [(node, LogCancel(s.id)) for node in nodes]

    @staticmethod
    def _finished(s: Session) -> bool:
        """A stream that does not follow ends once every task's log was read."""
        return (
            not s.follow
            and not s.errors
            and all(sub.ended and not sub.batches for sub in s.subs.values())
        )

    # --- the nodes' side ----------------------------------------------------------

    def data(self, source: str, msg: LogData) -> list[Out]:
        s = self.sessions.get(msg.stream_id)
        sub = s.subs.get(msg.task_id) if s is not None else None
        if s is None or sub is None:
            # A stream this broker no longer holds (a client gone, a new leader).
            return [(source, LogCancel(msg.stream_id))]
        if source != sub.node_id or sub.ended:
            return []
        sub.heard = True
        if msg.seq == 0:
            # The node no longer knows the stream.
            sub.ended = True
            s.errors.append((sub.task_id, msg.error))
            return []
        # Only the next batch, and only within the window: a node cannot make
        # the manager hold more than WINDOW batches of a task.
        if msg.seq == sub.received + 1 and msg.seq <= sub.consumed + WINDOW:
            sub.received = msg.seq
            sub.batches.append(msg)
        return [(source, LogAck(s.id, sub.task_id, sub.received, sub.consumed))]

    def tick(self, store: MemoryStore, now: float) -> list[Out]:
        """Renew live subscriptions, ask again where nothing came back, end
        those whose node went down, drop idle clients, take in new tasks."""
        out: list[Out] = []
        for s in list(self.sessions.values()):
            if now - s.last_read > IDLE:
                del self.sessions[s.id]
                out += self._cancel(s)
                continue
            for sub in s.subs.values():
                if sub.ended:
                    continue
                down = self._node_down(store, sub.node_id, streaming=True)
                if down:
                    # What it sent before is still read out; nothing more comes.
                    sub.ended = True
                    s.errors.append((sub.task_id, down))
                    continue
                if now - sub.sent_at >= RENEW:
                    sub.sent_at = now
                    if sub.heard:
                        out.append(
                            (sub.node_id, LogAck(s.id, sub.task_id, sub.received, sub.consumed))
                        )
                    else:
                        out.append((sub.node_id, self._subscribe(s, sub)))
            if s.follow and s.service_id and now - s.looked_at >= NEW_TASKS_EVERY:
                s.looked_at = now
                for t in store.tasks_by_service(s.service_id):
                    if t.id not in s.subs and _has_log(t):
                        # A task started meanwhile: all of its log is new.
                        out += self._add(store, s, t, now, tail=-1)
        return out
