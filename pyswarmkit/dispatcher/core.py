"""The manager's side of agent sessions: registration, heartbeats and their
expiry, task status reports, and the assignments each node should hold.

Pure: the dispatcher actor feeds it agent messages, store events and ``now``,
and carries out what it returns (store changes to propose, messages to send).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import Node, NodeDescription, NodeStatus, Task, TaskStatus, replace
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

HEARTBEAT_GRACE_MULTIPLIER = 3


@dataclass(slots=True)
class Session:
    node_id: str
    session_id: str
    last_seen: float
    # What the node was last told: task id -> (desired state, spec version).
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    needs_full: bool = True


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for one node's agent."""

    node_id: str
    method: str
    body: dict[str, Any]


Build = Callable[[MemoryStore], list[Change]]


@dataclass(slots=True)
class Effects:
    """What handling one agent message asks for: replies to send, and writes to
    make against the newest store state (each ``build`` runs where the store is
    written)."""

    replies: list[Outgoing] = field(default_factory=list)
    writes: list[Build] = field(default_factory=list)


def assignable(task: Task) -> bool:
    """Whether a node should hold this task: placed on it, and not yet finished
    with (a task stays until it is terminal and no longer wanted running)."""
    if task.status.state < TaskState.ASSIGNED:
        return False
    return not (task.status.state.terminal and task.desired_state > TaskState.RUNNING)


class Dispatcher:
    def __init__(self, heartbeat_period: float = 5.0, id_gen: Callable[[], str] = new_id) -> None:
        self.heartbeat_period = heartbeat_period
        self.id_gen = id_gen
        self.sessions: dict[str, Session] = {}
        self._dirty_nodes: set[str] = set()

    # --- agent requests ------------------------------------------------------

    def handle(self, node_id: str, method: str, body: dict[str, Any], now: float) -> Effects:
        """One message from a node's agent. Raises SwarmError for a request to
        refuse (the caller answers with an error message), InvalidArgument for a
        malformed one."""
        fx = Effects()
        try:
            if method == "register":
                self._on_register(node_id, body, now, fx)
            elif method == "heartbeat":
                period = self.heartbeat(node_id, str(body["session_id"]), now)
                fx.replies.append(Outgoing(node_id, "heartbeat_ack", {"heartbeat_period": period}))
            elif method == "update_task_status":
                updates = [(str(tid), status) for tid, status in body["updates"]]
                self.update_task_status(node_id, str(body["session_id"]), now)
                fx.writes.append(lambda store: task_status_changes(store, node_id, updates))
            elif method == "leave":
                self.close_session(node_id)
                fx.writes.append(lambda store: self.mark_down(store, [node_id], "node shut down"))
            else:
                raise InvalidArgument(f"unknown dispatcher method {method!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed {method} message: {exc}") from None
        return fx

    def _on_register(self, node_id: str, body: dict[str, Any], now: float, fx: Effects) -> None:
        description = body["description"]
        if not isinstance(description, NodeDescription):
            raise InvalidArgument("register needs a node description")
        addr = str(body.get("addr", ""))
        session_id = self.open_session(node_id, now)
        fx.writes.append(lambda store: self.register(store, node_id, description, addr))
        fx.replies.append(
            Outgoing(
                node_id,
                "registered",
                {"session_id": session_id, "heartbeat_period": self.heartbeat_period},
            )
        )

    def tick(self, store: MemoryStore, now: float) -> Effects:
        """Expire silent sessions and send each node what changed in its assignments."""
        fx = Effects()
        expired = self.expire(now)
        if expired:
            fx.writes.append(lambda st: self.mark_down(st, expired, "heartbeat failure"))
        fx.replies.extend(self.assignments(store))
        return fx

    def open_session(self, node_id: str, now: float) -> str:
        """A new session for the node, replacing any older one; returns its id."""
        session = Session(node_id, self.id_gen(), now)
        self.sessions[node_id] = session
        self._dirty_nodes.add(node_id)
        return session.session_id

    def close_session(self, node_id: str) -> None:
        self.sessions.pop(node_id, None)

    @staticmethod
    def register(
        store: MemoryStore, node_id: str, description: NodeDescription, addr: str
    ) -> list[Change]:
        """Changes recording a node's registration: its description, and READY."""
        status = NodeStatus(state=NodeState.READY, addr=addr)
        node = store.get_node(node_id)
        if node is None:
            return [Change("create", Node(id=node_id, description=description, status=status))]
        updated = replace(node, description=description, status=status)
        return [Change("update", updated)]

    def session(self, node_id: str, session_id: str) -> Session:
        s = self.sessions.get(node_id)
        if s is None or s.session_id != session_id:
            raise NotFound("session invalid: register again")
        return s

    def heartbeat(self, node_id: str, session_id: str, now: float) -> float:
        self.session(node_id, session_id).last_seen = now
        return self.heartbeat_period

    def update_task_status(self, node_id: str, session_id: str, now: float) -> None:
        """Accept a status report on this session; ``task_status_changes`` makes its changes."""
        self.session(node_id, session_id).last_seen = now

    # --- store events and time ---------------------------------------------

    def observe(self, batch: EventBatch) -> None:
        for ev in batch.events:
            if ev.kind != "task":
                continue
            for t in (ev.obj, ev.old):
                if isinstance(t, Task) and t.node_id in self.sessions:
                    self._dirty_nodes.add(t.node_id)

    def expire(self, now: float) -> list[str]:
        """Close sessions silent for longer than the grace; returns their nodes."""
        grace = self.heartbeat_period * HEARTBEAT_GRACE_MULTIPLIER
        expired = [n for n, s in self.sessions.items() if now - s.last_seen > grace]
        for node_id in expired:
            del self.sessions[node_id]
        return expired

    @staticmethod
    def mark_down(store: MemoryStore, node_ids: Iterable[str], message: str) -> list[Change]:
        changes: list[Change] = []
        for node_id in node_ids:
            node = store.get_node(node_id)
            if node is not None and node.status.state != NodeState.DOWN:
                status = replace(node.status, state=NodeState.DOWN, message=message)
                changes.append(Change("update", replace(node, status=status)))
        return changes

    def assignments(self, store: MemoryStore) -> list[Outgoing]:
        """For each node whose tasks changed: the difference from what it was last told."""
        out: list[Outgoing] = []
        for node_id in sorted(self._dirty_nodes):
            session = self.sessions.get(node_id)
            if session is None:
                continue
            current = {t.id: t for t in store.tasks_by_node(node_id) if assignable(t)}
            changed = [
                t
                for t in current.values()
                if session.sent.get(t.id) != (int(t.desired_state), t.spec_version)
            ]
            removed = [tid for tid in session.sent if tid not in current]
            if session.needs_full or changed or removed:
                out.append(
                    Outgoing(
                        node_id,
                        "assignments",
                        {
                            "session_id": session.session_id,
                            "full": session.needs_full,
                            "tasks": changed if not session.needs_full else list(current.values()),
                            "removed": removed,
                        },
                    )
                )
                session.needs_full = False
                session.sent = {
                    t.id: (int(t.desired_state), t.spec_version) for t in current.values()
                }
        self._dirty_nodes.clear()
        return out


def task_status_changes(
    store: MemoryStore, node_id: str, updates: Iterable[tuple[str, TaskStatus]]
) -> list[Change]:
    """Changes recording what an agent saw. Reports about tasks that are not on
    the node are refused; backward moves are ignored (a task only moves forward).

    Meant to run where the store is written, so it reads the newest tasks and
    never loses to a concurrent write of another field."""
    latest: dict[str, Task] = {}
    for task_id, status in updates:
        if not isinstance(status, TaskStatus):
            raise InvalidArgument("task status update carries no status")
        task = latest.get(task_id) or store.get_task(task_id)
        if task is None:
            continue
        if task.node_id != node_id:
            raise InvalidArgument(f"task {task_id} is not assigned to node {node_id}")
        if status.state <= task.status.state:
            continue
        latest[task_id] = replace(task, status=status)
    return [Change("update", t) for t in latest.values()]
