"""The manager's side of agent sessions: registration, heartbeats and their
expiry, task status reports and their acknowledgements, and the numbered
assignment sets each node should hold.

Pure: the dispatcher actor feeds it decoded protocol messages, store events,
monotonic ``now`` (for expiry) and wall time (for what it records), and carries
out what it returns (store writes, messages to send).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import (
    Cluster,
    Config,
    Node,
    NodeDescription,
    NodeStatus,
    Secret,
    Task,
    TaskStatus,
    replace,
)
from pyswarmkit.api.protocol import (
    Acked,
    Assignments,
    AssignmentsRequest,
    Body,
    Heartbeat,
    HeartbeatAck,
    Leave,
    ManagerAddr,
    Message,
    Register,
    Registered,
    UpdateTaskStatus,
    UpdateTaskStatusAck,
)
from pyswarmkit.api.states import NodeRole, NodeState, TaskState
from pyswarmkit.dispatcher.deps import Dep, Held, needs
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

HEARTBEAT_GRACE_MULTIPLIER = 3
# A dispatcher that just started (a new leader) waits three times longer for
# nodes it knew nothing about to register, as SwarmKit does: their agents may
# first have to find the new leader, and a failover must not mark healthy
# nodes DOWN and move their tasks.
UNKNOWN_GRACE_MULTIPLIER = 3 * HEARTBEAT_GRACE_MULTIPLIER
DEFAULT_HEARTBEAT_PERIOD = 5.0
# A tick later than this after the one before means the dispatcher itself did
# not run in between (its process stopped, its machine suspended or starved).
STALL = 1.0

UNKNOWN_MESSAGE = 'Node moved to "unknown" state due to leadership change in cluster'
UNKNOWN_EXPIRED_MESSAGE = 'heartbeat failure for node in "unknown" state'


@dataclass(slots=True)
class Session:
    node_id: str
    session_id: str
    last_seen: float
    # The registration token that opened it: a duplicate register gets this session again.
    token: int = 0
    # The grace in force when the node was last heard from: a node told to beat
    # every 5 s is not expired by a 1 s period set since, before it has heard of it.
    grace: float = 0.0
    # What the node was last told: task id -> (desired state, spec version).
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    needs_full: bool = True
    # The sequence the last assignment set sent results in.
    seq: int = 0
    # The secrets and configs the node was sent, by the tasks that need them.
    held: Held = field(default_factory=Held)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for one node's agent; ``reply_to`` the id of the envelope it answers."""

    node_id: str
    body: Body
    reply_to: int = 0


Build = Callable[[MemoryStore], list[Change]]


@dataclass(frozen=True, slots=True)
class Write:
    """Changes to build from the newest store state (where the store is
    written), the messages to send once they are committed, and whom to tell if
    they are refused."""

    build: Build
    then: tuple[Outgoing, ...] = ()
    node_id: str = ""
    request: str = ""
    session_id: str = ""


@dataclass(slots=True)
class Effects:
    replies: list[Outgoing] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


def assignable(task: Task) -> bool:
    """Whether a node should hold this task: placed on it and not yet deleted.

    A finished task stays in its node's set until the store deletes it (the
    history limit), as in SwarmKit, so the node keeps what the task left (its
    output) for as long as `task ls -a` lists it, and removes it after."""
    return task.status.state >= TaskState.ASSIGNED


class Dispatcher:
    def __init__(
        self,
        heartbeat_period: float = DEFAULT_HEARTBEAT_PERIOD,
        id_gen: Callable[[], str] = new_id,
    ) -> None:
        self.heartbeat_period = heartbeat_period
        self.id_gen = id_gen
        self.sessions: dict[str, Session] = {}
        # Sessions closed so far because their node fell silent.
        self.missed = 0
        # Nodes marked UNKNOWN when this dispatcher started, with when they expire.
        self.unknown: dict[str, float] = {}
        self._dirty_nodes: set[str] = set()
        # Per node with a session: the tasks whose assignment may have changed
        # since its last set, with their newest object (None: deleted or moved
        # off the node). A node needing a full set is scanned in the store instead.
        self._changed: dict[str, dict[str, Task | None]] = {}
        # Every manager and its address, as agents are told with each session.
        self._managers: dict[str, str] = {}
        self.managers: tuple[ManagerAddr, ...] = ()
        self.last_tick: float | None = None
        # Stalls seen, and how long the last one lasted beyond STALL.
        self.stalls = 0
        self.last_stall = 0.0
        # Nodes whose certificate is of another role than the node now has.
        self.role_changed: set[str] = set()

    @property
    def grace(self) -> float:
        return self.heartbeat_period * HEARTBEAT_GRACE_MULTIPLIER

    # --- start ---------------------------------------------------------------

    def start(self, store: MemoryStore, now: float) -> Effects:
        """A newly started dispatcher knows no session: every node not already
        DOWN becomes UNKNOWN, and DOWN if it does not register within the grace."""
        fx = Effects()
        for node in store.nodes():
            self._note_manager(node)
            self._note_role(node)
        cluster = first_cluster(store)
        if cluster is not None:
            self.heartbeat_period = cluster.spec.dispatcher.heartbeat_period
        known = set(self.sessions)
        for node in store.nodes():
            if node.id not in known and node.status.state != NodeState.DOWN:
                self.unknown[node.id] = now + self.heartbeat_period * UNKNOWN_GRACE_MULTIPLIER
        fx.writes.append(Write(lambda st: mark_unknown(st, known)))
        return fx

    # --- agent requests ------------------------------------------------------

    def handle(
        self, node_id: str, msg: Message, addr: str, now: float, reply_to: int = 0
    ) -> Effects:
        """One message from a node's agent, ``addr`` its address as the
        connection shows it. Raises SwarmError for a request to refuse (the
        caller answers with an Error message)."""
        fx = Effects()
        if isinstance(msg, Register):
            self._on_register(node_id, msg, addr, now, reply_to, fx)
        elif isinstance(msg, Heartbeat):
            self.heartbeat(node_id, msg.session_id, now)
            session = self.sessions[node_id]
            renew = node_id in self.role_changed
            beat = HeartbeatAck(self.heartbeat_period, session.seq, self.managers, renew)
            fx.replies.append(Outgoing(node_id, beat, reply_to))
        elif isinstance(msg, UpdateTaskStatus):
            self.update_task_status(node_id, msg.session_id, now)
            updates = [(u.task_id, u.status) for u in msg.updates]
            acked = tuple(Acked(u.task_id, u.status.state) for u in msg.updates)
            ack = Outgoing(node_id, UpdateTaskStatusAck(msg.session_id, acked), reply_to)
            fx.writes.append(
                Write(
                    lambda store: task_status_changes(store, node_id, updates),
                    (ack,),
                    node_id,
                    msg.kind,
                    msg.session_id,
                )
            )
        elif isinstance(msg, AssignmentsRequest):
            session = self.session(node_id, msg.session_id)
            self._seen(session, now)
            session.needs_full = True
            self._dirty_nodes.add(node_id)
        elif isinstance(msg, Leave):
            self.session(node_id, msg.session_id)
            self.close_session(node_id)
            fx.writes.append(
                Write(lambda store: self.mark_down(store, [node_id], "node shut down"))
            )
        else:
            raise InvalidArgument(f"a dispatcher does not take {msg.kind} messages")
        return fx

    def _on_register(
        self, node_id: str, msg: Register, addr: str, now: float, reply_to: int, fx: Effects
    ) -> None:
        session = self.sessions.get(node_id)
        if session is not None and session.token == msg.token:
            # A duplicate, or a retry whose answer was lost: the same session again.
            self._seen(session, now)
            session.needs_full = True
            self._dirty_nodes.add(node_id)
        else:
            session = self._open(node_id, now, msg.token)
        self.unknown.pop(node_id, None)
        description = msg.description
        fx.writes.append(Write(lambda store: self.register(store, node_id, description, addr)))
        reply = Registered(msg.token, session.session_id, self.heartbeat_period, self.managers)
        fx.replies.append(Outgoing(node_id, reply, reply_to))

    def tick(self, store: MemoryStore, now: float) -> Effects:
        """Expire silent sessions and UNKNOWN nodes, and send each node what
        changed in its assignments."""
        fx = Effects()
        self._discount_stall(now)
        expired = self.expire(now)
        if expired:
            fx.writes.append(Write(lambda st: self.mark_down(st, expired, "heartbeat failure")))
        lapsed = [n for n, deadline in self.unknown.items() if now > deadline]
        if lapsed:
            for node_id in lapsed:
                del self.unknown[node_id]
            fx.writes.append(
                Write(lambda st: mark_unknown_down(st, lapsed, UNKNOWN_EXPIRED_MESSAGE))
            )
        fx.replies.extend(self.assignments(store))
        return fx

    def _discount_stall(self, now: float) -> None:
        """Silence counts only while this dispatcher runs. After a stall, what
        the nodes sent meanwhile is still queued on its way here (the manager,
        not they, went quiet), so each node keeps the time it had left."""
        last, self.last_tick = self.last_tick, now
        if last is None:
            return
        stalled = now - last - STALL
        if stalled <= 0:
            return
        self.stalls += 1
        self.last_stall = stalled
        for session in self.sessions.values():
            session.last_seen += stalled
        for node_id in self.unknown:
            self.unknown[node_id] += stalled

    def open_session(self, node_id: str, now: float) -> str:
        """A new session for the node, replacing any older one; returns its id."""
        return self._open(node_id, now, 0).session_id

    def _open(self, node_id: str, now: float, token: int) -> Session:
        session = Session(node_id, self.id_gen(), now, token, self.grace)
        self.sessions[node_id] = session
        self._dirty_nodes.add(node_id)
        return session

    def close_session(self, node_id: str) -> None:
        self.sessions.pop(node_id, None)

    @staticmethod
    def register(
        store: MemoryStore, node_id: str, description: NodeDescription, addr: str
    ) -> list[Change]:
        """Changes recording a node's registration: its description, the
        address its connection came from, and READY."""
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
        self._seen(self.session(node_id, session_id), now)
        return self.heartbeat_period

    def update_task_status(self, node_id: str, session_id: str, now: float) -> None:
        """Accept a status report on this session; ``task_status_changes`` makes its changes."""
        self._seen(self.session(node_id, session_id), now)

    def _seen(self, session: Session, now: float) -> None:
        session.last_seen = now
        session.grace = self.grace

    # --- store events and time ---------------------------------------------

    def observe(self, batch: EventBatch) -> None:
        for ev in batch.events:
            if ev.kind == "cluster" and isinstance(ev.obj, Cluster):
                self.heartbeat_period = ev.obj.spec.dispatcher.heartbeat_period
                continue
            if ev.kind == "node" and isinstance(ev.obj, Node):
                self._note_manager(ev.obj, ev.op == "delete")
                self._note_role(ev.obj, ev.op == "delete")
                continue
            if ev.kind != "task":
                continue
            new, old = ev.obj, ev.old
            if not isinstance(new, Task):
                continue
            if ev.op == "delete":
                self._note(new.node_id, new.id, None)
                continue
            if isinstance(old, Task):
                if old.node_id == new.node_id and _same_assignment(old, new):
                    # A status report (usually the node's own): nothing it holds
                    # changes, but a set still to go out carries the newest object.
                    pending = self._changed.get(new.node_id)
                    if pending is not None and new.id in pending:
                        pending[new.id] = new
                    continue
                if old.node_id != new.node_id:
                    self._note(old.node_id, old.id, None)
            self._note(new.node_id, new.id, new)

    def _note_role(self, node: Node, deleted: bool = False) -> None:
        cert = node.certificate
        if not deleted and cert is not None and cert.role != node.role:
            self.role_changed.add(node.id)
        else:
            self.role_changed.discard(node.id)

    def _note_manager(self, node: Node, deleted: bool = False) -> None:
        status = node.manager_status
        addr = status.addr if status is not None and node.role == NodeRole.MANAGER else ""
        if deleted or not addr:
            changed = self._managers.pop(node.id, None) is not None
        else:
            changed = self._managers.get(node.id) != addr
            self._managers[node.id] = addr
        if changed:
            self.managers = tuple(ManagerAddr(n, a) for n, a in sorted(self._managers.items()))

    def _note(self, node_id: str, task_id: str, task: Task | None) -> None:
        if node_id not in self.sessions:
            return
        self._dirty_nodes.add(node_id)
        self._changed.setdefault(node_id, {})[task_id] = task

    def expire(self, now: float) -> list[str]:
        """Close sessions silent for longer than the grace; returns their nodes."""
        grace = self.grace
        expired = [n for n, s in self.sessions.items() if now - s.last_seen > max(grace, s.grace)]
        for node_id in expired:
            del self.sessions[node_id]
        self.missed += len(expired)
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
        """For each node whose tasks changed: a full set when it needs one, else
        the difference from what it was last told, numbered so a lost set shows."""
        out: list[Outgoing] = []
        for node_id in sorted(self._dirty_nodes):
            pending = self._changed.pop(node_id, {})
            session = self.sessions.get(node_id)
            if session is None:
                continue
            if session.needs_full:
                out.append(self._full_set(store, session))
                continue
            # Only the tasks whose events arrived since the last set can differ
            # from what the node was told.
            changed: list[Task] = []
            removed: list[str] = []
            sent = session.sent
            held = session.held
            added: list[Dep] = []
            dropped: list[Dep] = []
            for task_id, task in pending.items():
                if task is not None and task.node_id == node_id and assignable(task):
                    key = (int(task.desired_state), task.spec_version)
                    if sent.get(task_id) != key:
                        sent[task_id] = key
                        changed.append(task)
                        more, fewer = held.set(task_id, needs(task))
                        added += more
                        dropped += fewer
                elif task_id in sent:
                    del sent[task_id]
                    removed.append(task_id)
                    dropped += held.drop(task_id)
            if changed or removed:
                # A dependency dropped by one task and needed by another in
                # the same set stays; one needed and dropped again never goes.
                secrets, configs = _objects(store, [d for d in added if d in held.count])
                gone = [d for d in dropped if d not in held.count]
                msg = Assignments(
                    session.session_id,
                    False,
                    session.seq,
                    session.seq + 1,
                    tuple(changed),
                    tuple(removed),
                    secrets,
                    configs,
                    tuple(i for k, i in gone if k == "secret"),
                    tuple(i for k, i in gone if k == "config"),
                )
                out.append(Outgoing(node_id, msg))
                session.seq += 1
        self._dirty_nodes.clear()
        self._changed.clear()
        return out

    def _full_set(self, store: MemoryStore, session: Session) -> Outgoing:
        current = [t for t in store.tasks_by_node(session.node_id) if assignable(t)]
        held = session.held
        held.reset()
        for t in current:
            held.set(t.id, needs(t))
        secrets, configs = _objects(store, list(held.count))
        msg = Assignments(
            session.session_id, True, 0, session.seq + 1, tuple(current), (), secrets, configs
        )
        session.seq += 1
        session.needs_full = False
        session.sent = {t.id: (int(t.desired_state), t.spec_version) for t in current}
        return Outgoing(session.node_id, msg)


def _objects(
    store: MemoryStore, deps: list[Dep]
) -> tuple[tuple[Secret, ...], tuple[Config, ...]]:
    """The secrets and configs named, as the store holds them (data
    included); one removed meanwhile is left out, and the task needing it
    is refused by its node."""
    secrets: list[Secret] = []
    configs: list[Config] = []
    for kind, obj_id in sorted(set(deps)):
        obj = store.get(kind, obj_id)
        if isinstance(obj, Secret):
            secrets.append(obj)
        elif isinstance(obj, Config):
            configs.append(obj)
    return tuple(secrets), tuple(configs)


def _same_assignment(old: Task, new: Task) -> bool:
    """Whether a task update leaves what its node should hold as it was: same
    desired state and spec, and still (or still not) assignable."""
    return (
        old.desired_state == new.desired_state
        and old.spec_version == new.spec_version
        and assignable(old) == assignable(new)
    )


def first_cluster(store: MemoryStore) -> Cluster | None:
    clusters = store.clusters()
    return clusters[0] if clusters else None


def mark_unknown(store: MemoryStore, keep: set[str]) -> list[Change]:
    """Every node but those in ``keep`` and those already DOWN becomes UNKNOWN."""
    changes: list[Change] = []
    for node in store.nodes():
        if node.id in keep or node.status.state in (NodeState.DOWN, NodeState.UNKNOWN):
            continue
        status = replace(node.status, state=NodeState.UNKNOWN, message=UNKNOWN_MESSAGE)
        changes.append(Change("update", replace(node, status=status)))
    return changes


def mark_unknown_down(store: MemoryStore, node_ids: Iterable[str], message: str) -> list[Change]:
    """Nodes still UNKNOWN become DOWN; one that registered meanwhile is left alone."""
    changes: list[Change] = []
    for node_id in node_ids:
        node = store.get_node(node_id)
        if node is not None and node.status.state == NodeState.UNKNOWN:
            status = replace(node.status, state=NodeState.DOWN, message=message)
            changes.append(Change("update", replace(node, status=status)))
    return changes


def task_status_changes(
    store: MemoryStore, node_id: str, updates: Iterable[tuple[str, TaskStatus]]
) -> list[Change]:
    """Changes recording what an agent saw. Reports about tasks that are not on
    the node are refused; backward moves are ignored (a task only moves forward).

    Meant to run where the store is written, so it reads the newest tasks and
    never loses to a concurrent write of another field."""
    updates = list(updates)
    for _, status in updates:
        if not isinstance(status, TaskStatus):
            raise InvalidArgument("task status update carries no status")
    # One read of the store for the whole report, not one per task.
    tasks = store.get_tasks(task_id for task_id, _ in updates)
    latest: dict[str, Task] = {}
    for task_id, status in updates:
        task = latest.get(task_id) or tasks.get(task_id)
        if task is None:
            continue
        if task.node_id != node_id:
            raise InvalidArgument(f"task {task_id} is not assigned to node {node_id}")
        if status.state <= task.status.state:
            continue
        latest[task_id] = replace(task, status=status)
    return [Change("update", t) for t in latest.values()]
