"""The dispatcher core: agent sessions, registration, heartbeat expiry, status reports
and assignment diffs."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import (
    Cluster,
    ClusterSpec,
    DispatcherConfig,
    ManagerStatus,
    Node,
    NodeCertificate,
    NodeDescription,
    NodeStatus,
    Platform,
    Task,
    TaskStatus,
    replace,
)
from pyswarmkit.api.protocol import (
    Acked,
    Assignments,
    AssignmentsRequest,
    Heartbeat,
    HeartbeatAck,
    Leave,
    Register,
    Registered,
    StatusUpdate,
    UpdateTaskStatus,
    UpdateTaskStatusAck,
)
from pyswarmkit.api.states import NodeRole, NodeState, Reachability, TaskState
from pyswarmkit.dispatcher.core import (
    UNKNOWN_EXPIRED_MESSAGE,
    UNKNOWN_MESSAGE,
    Dispatcher,
    Outgoing,
    assignable,
    task_status_changes,
)
from pyswarmkit.store import Change, EventBatch, MemoryStore

pytestmark = pytest.mark.unit

DESC = NodeDescription(hostname="worker-1", platform=Platform(os="linux", architecture="x86_64"))


def dispatcher(period: float = 5.0) -> Dispatcher:
    counter = itertools.count(1)
    return Dispatcher(heartbeat_period=period, id_gen=lambda: f"session-{next(counter)}")


def apply(store: MemoryStore, changes: list[Change], now: float = 1.0) -> EventBatch:
    return store.apply(changes, store.index + 1, now)


def status(state: TaskState, now: float = 1.0, err: str = "") -> TaskStatus:
    return TaskStatus(timestamp=now, state=state, err=err)


def placed(tid: str, node: str = "n1", state: TaskState = TaskState.ASSIGNED, **kw: Any) -> Task:
    return Task(id=tid, node_id=node, status=status(state), **kw)


# --- sessions --------------------------------------------------------------------


def test_a_session_accepts_heartbeats_with_its_id() -> None:
    d = dispatcher(period=4.0)
    sid = d.open_session("n1", 10.0)
    assert sid == "session-1"
    assert d.heartbeat("n1", sid, 11.0) == 4.0
    assert d.sessions["n1"].last_seen == 11.0
    d.update_task_status("n1", sid, 12.0)
    assert d.sessions["n1"].last_seen == 12.0


@pytest.mark.parametrize("case", ["unknown-node", "wrong-id", "closed", "replaced"])
def test_an_invalid_session_is_not_found(case: str) -> None:
    d = dispatcher()
    sid = d.open_session("n1", 0.0)
    node, session = "n1", sid
    if case == "unknown-node":
        node = "n2"
    elif case == "wrong-id":
        session = "nope"
    elif case == "closed":
        d.close_session("n1")
    else:
        assert d.open_session("n1", 1.0) != sid
    with pytest.raises(NotFound, match="register again"):
        d.heartbeat(node, session, 2.0)
    with pytest.raises(NotFound):
        d.update_task_status(node, session, 2.0)


def test_closing_an_unknown_session_is_harmless() -> None:
    dispatcher().close_session("nobody")


# --- registration ------------------------------------------------------------------


def test_register_creates_a_ready_node() -> None:
    store = MemoryStore()
    changes = Dispatcher.register(store, "n1", DESC, "10.0.0.1")
    apply(store, changes)
    node = store.get_node("n1")
    assert node is not None
    assert node.description == DESC
    assert node.status == NodeStatus(state=NodeState.READY, addr="10.0.0.1")
    assert node.name == "worker-1"


def test_register_updates_a_known_node_and_keeps_its_role() -> None:
    store = MemoryStore()
    manager = ManagerStatus(
        raft_id=7, addr="10.0.0.1:4242", leader=True, reachability=Reachability.REACHABLE
    )
    down = NodeStatus(state=NodeState.DOWN, message="heartbeat failure")
    apply(
        store,
        [
            Change(
                "create", Node(id="n1", role=NodeRole.MANAGER, status=down, manager_status=manager)
            )
        ],
    )
    new_desc = replace(DESC, hostname="renamed")
    changes = Dispatcher.register(store, "n1", new_desc, "10.0.0.2")
    assert [c.op for c in changes] == ["update"]
    apply(store, changes)
    node = store.get_node("n1")
    assert node is not None
    assert node.description == new_desc
    assert node.status.state == NodeState.READY
    assert node.status.addr == "10.0.0.2"
    assert node.status.message == ""
    assert node.role == NodeRole.MANAGER
    assert node.manager_status == manager


# --- heartbeat expiry ----------------------------------------------------------------


def test_a_silent_node_expires_after_three_periods() -> None:
    d = dispatcher(period=5.0)
    d.open_session("n1", 0.0)
    sid2 = d.open_session("n2", 0.0)
    d.heartbeat("n2", sid2, 10.0)
    assert d.expire(15.0) == []
    assert d.expire(15.01) == ["n1"]
    assert "n1" not in d.sessions
    assert d.expire(25.0) == []
    assert d.expire(25.5) == ["n2"]
    assert d.sessions == {}


def test_heartbeats_keep_a_node_alive() -> None:
    d = dispatcher(period=5.0)
    sid = d.open_session("n1", 0.0)
    for now in range(5, 100, 5):
        d.heartbeat("n1", sid, float(now))
        assert d.expire(float(now) + 14.9) == []


def test_expired_nodes_are_marked_down_with_heartbeat_failure() -> None:
    store = MemoryStore()
    apply(
        store,
        Dispatcher.register(store, "n1", DESC, "a") + Dispatcher.register(store, "n2", DESC, "b"),
    )
    d = dispatcher()
    d.open_session("n1", 0.0)
    expired = d.expire(16.0)
    changes = Dispatcher.mark_down(store, expired, "heartbeat failure")
    apply(store, changes)
    n1, n2 = store.get_node("n1"), store.get_node("n2")
    assert n1 is not None and n2 is not None
    assert (n1.status.state, n1.status.message) == (NodeState.DOWN, "heartbeat failure")
    assert n1.status.addr == "a"
    assert n2.status.state == NodeState.READY


def test_mark_down_skips_nodes_already_down_or_unknown() -> None:
    store = MemoryStore()
    down = Node(id="n1", status=NodeStatus(state=NodeState.DOWN, message="old"))
    apply(store, [Change("create", down)])
    assert Dispatcher.mark_down(store, ["n1", "ghost"], "heartbeat failure") == []


# --- task status reports -------------------------------------------------------------


def test_status_reports_move_tasks_forward_only() -> None:
    store = MemoryStore()
    apply(
        store,
        [Change("create", placed("t1", state=TaskState.RUNNING)), Change("create", placed("t2"))],
    )
    changes = task_status_changes(
        store,
        "n1",
        [
            ("t1", status(TaskState.STARTING)),  # backward: ignored
            ("t1", status(TaskState.RUNNING)),  # same: ignored
            ("t2", status(TaskState.PREPARING)),
        ],
    )
    assert [(c.op, c.obj.id, c.obj.status.state) for c in changes] == [  # type: ignore[union-attr]
        ("update", "t2", TaskState.PREPARING)
    ]


def test_several_reports_for_one_task_keep_the_furthest() -> None:
    store = MemoryStore()
    apply(store, [Change("create", placed("t1"))])
    changes = task_status_changes(
        store,
        "n1",
        [
            ("t1", status(TaskState.PREPARING)),
            ("t1", status(TaskState.RUNNING)),
            ("t1", status(TaskState.STARTING)),
            ("t1", status(TaskState.FAILED, err="boom")),
        ],
    )
    assert len(changes) == 1
    apply(store, changes)
    t1 = store.get_task("t1")
    assert t1 is not None
    assert (t1.status.state, t1.status.err) == (TaskState.FAILED, "boom")


def test_a_report_keeps_the_other_fields_of_the_newest_task() -> None:
    store = MemoryStore()
    apply(store, [Change("create", placed("t1", slot=3))])
    t1 = store.get_task("t1")
    assert t1 is not None
    apply(store, [Change("update", replace(t1, desired_state=TaskState.SHUTDOWN))])
    changes = task_status_changes(store, "n1", [("t1", status(TaskState.RUNNING))])
    apply(store, changes)  # read the newest version: no conflict
    t1 = store.get_task("t1")
    assert t1 is not None
    assert (t1.desired_state, t1.slot, t1.status.state) == (
        TaskState.SHUTDOWN,
        3,
        TaskState.RUNNING,
    )


def test_reports_about_unknown_tasks_are_ignored() -> None:
    assert task_status_changes(MemoryStore(), "n1", [("ghost", status(TaskState.RUNNING))]) == []


def test_reports_about_another_nodes_task_are_refused() -> None:
    store = MemoryStore()
    apply(store, [Change("create", placed("t1", node="n2")), Change("create", placed("t2"))])
    with pytest.raises(InvalidArgument, match="t1 is not assigned to node n1"):
        task_status_changes(
            store, "n1", [("t2", status(TaskState.RUNNING)), ("t1", status(TaskState.RUNNING))]
        )


def test_a_report_without_a_status_is_refused() -> None:
    store = MemoryStore()
    apply(store, [Change("create", placed("t1"))])
    with pytest.raises(InvalidArgument):
        task_status_changes(store, "n1", [("t1", "RUNNING")])  # type: ignore[list-item]


# --- assignments ------------------------------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.d = dispatcher()
        self.sid = self.d.open_session("n1", 0.0)

    def write(self, changes: list[Change]) -> None:
        self.d.observe(apply(self.store, changes))

    def set(self, tid: str, **fields: Any) -> None:
        t = self.store.get_task(tid)
        assert t is not None
        self.write([Change("update", replace(t, **fields))])

    def send(self) -> list[Outgoing]:
        return self.d.assignments(self.store)


def _ids(msg: Outgoing) -> tuple[list[str], list[str]]:
    body = msg.body
    assert isinstance(body, Assignments)
    return sorted(t.id for t in body.tasks), sorted(body.removed)


def _body(msg: Outgoing) -> Assignments:
    assert isinstance(msg.body, Assignments)
    return msg.body


def test_a_new_session_gets_a_full_set_first() -> None:
    c = Harness()
    c.write(
        [
            Change("create", placed("t1")),
            Change("create", placed("t2", state=TaskState.RUNNING)),
            Change("create", placed("t3", node="n2")),
            Change("create", placed("t4", state=TaskState.PENDING)),
        ]
    )
    out = c.send()
    assert len(out) == 1
    msg = out[0]
    assert msg.node_id == "n1"
    assert _body(msg).session_id == c.sid
    assert _body(msg).full is True
    assert _ids(msg) == (["t1", "t2"], [])


def test_a_node_with_no_tasks_still_gets_an_empty_full_set() -> None:
    c = Harness()
    out = c.send()
    assert [(_body(m).full, _body(m).tasks, _body(m).removed) for m in out] == [(True, (), ())]


def test_after_the_full_set_only_differences_are_sent() -> None:
    c = Harness()
    c.write([Change("create", placed("t1")), Change("create", placed("t2"))])
    c.send()
    assert c.send() == []

    # A status change the node itself reported changes nothing it must be told.
    c.set("t1", status=status(TaskState.RUNNING))
    assert c.send() == []

    c.set("t1", desired_state=TaskState.SHUTDOWN)
    c.write([Change("create", placed("t3"))])
    (msg,) = c.send()
    assert _body(msg).full is False
    assert _ids(msg) == (["t1", "t3"], [])
    assert [t.desired_state for t in _body(msg).tasks if t.id == "t1"] == [TaskState.SHUTDOWN]

    c.set("t2", spec_version=2)
    (msg,) = c.send()
    assert _ids(msg) == (["t2"], [])


def test_deleted_tasks_are_sent_as_removed() -> None:
    c = Harness()
    c.write([Change("create", placed("t1")), Change("create", placed("t2"))])
    c.send()
    t2 = c.store.get_task("t2")
    assert t2 is not None
    c.write([Change("delete", t2)])
    (msg,) = c.send()
    assert _ids(msg) == ([], ["t2"])
    assert c.send() == []


def test_a_finished_task_stays_with_its_node_until_the_store_deletes_it() -> None:
    # As in SwarmKit: the node keeps a finished task (and what it left, its
    # output) for as long as it is history, and removes it once deleted.
    c = Harness()
    c.write([Change("create", placed("t1", state=TaskState.RUNNING))])
    c.send()
    c.set("t1", status=status(TaskState.FAILED))
    assert c.send() == []
    c.set("t1", desired_state=TaskState.SHUTDOWN)
    (msg,) = c.send()
    assert _ids(msg) == (["t1"], [])
    task = c.store.get_task("t1")
    assert task is not None
    c.write([Change("delete", task)])
    (msg,) = c.send()
    assert _ids(msg) == ([], ["t1"])


def test_a_task_moved_to_another_node_leaves_the_first() -> None:
    c = Harness()
    sid2 = c.d.open_session("n2", 0.0)
    c.write([Change("create", placed("t1"))])
    c.send()
    c.set("t1", node_id="n2")
    out = {m.node_id: m for m in c.send()}
    assert _ids(out["n1"]) == ([], ["t1"])
    assert _body(out["n2"]).session_id == sid2
    assert _ids(out["n2"]) == (["t1"], [])


def test_a_new_session_starts_over_with_a_full_set() -> None:
    c = Harness()
    c.write([Change("create", placed("t1"))])
    c.send()
    sid = c.d.open_session("n1", 5.0)
    (msg,) = c.send()
    assert _body(msg).full is True
    assert _body(msg).session_id == sid
    assert _ids(msg) == (["t1"], [])


def test_nodes_without_a_session_get_nothing() -> None:
    c = Harness()
    c.write([Change("create", placed("t1", node="n9"))])
    assert [m.node_id for m in c.send()] == ["n1"]
    assert c.send() == []


@pytest.mark.parametrize(
    ("state", "desired", "expected"),
    [
        (TaskState.PENDING, TaskState.RUNNING, False),
        (TaskState.ASSIGNED, TaskState.RUNNING, True),
        (TaskState.RUNNING, TaskState.SHUTDOWN, True),
        (TaskState.COMPLETE, TaskState.RUNNING, True),
        (TaskState.COMPLETE, TaskState.SHUTDOWN, True),
        (TaskState.FAILED, TaskState.REMOVE, True),
    ],
)
def test_assignable(state: TaskState, desired: TaskState, expected: bool) -> None:
    assert assignable(placed("t", state=state, desired_state=desired)) is expected


def test_handle_speaks_the_agent_protocol() -> None:
    d = Dispatcher(heartbeat_period=5.0, id_gen=lambda: "s1")
    store = MemoryStore()
    fx = d.handle("n1", Register(7, NodeDescription(hostname="h")), "10.1.2.3", 0.0, reply_to=99)

    assert fx.replies == [Outgoing("n1", Registered(7, "s1", 5.0), 99)]
    (write,) = fx.writes
    (change,) = write.build(store)
    assert change.op == "create" and change.obj.id == "n1"
    assert change.obj.status.addr == "10.1.2.3"  # type: ignore[union-attr]
    beat = d.handle("n1", Heartbeat("s1"), "10.1.2.3", 1.0)
    assert beat.replies == [Outgoing("n1", HeartbeatAck(5.0, 0))] and not beat.writes
    with pytest.raises(InvalidArgument, match="does not take registered messages"):
        d.handle("n1", Registered(1, "s1", 5.0), "", 2.0)
    for stale in (Heartbeat("stale"), AssignmentsRequest("stale"), Leave("stale")):
        with pytest.raises(NotFound):
            d.handle("n1", stale, "", 2.0)
    with pytest.raises(NotFound):
        d.handle("n1", UpdateTaskStatus("stale", ()), "", 2.0)


def test_a_duplicate_register_gets_the_same_session_and_a_new_attempt_a_new_one() -> None:
    d = dispatcher()
    first = d.handle("n1", Register(7, DESC), "a", 0.0).replies[0].body
    again = d.handle("n1", Register(7, DESC), "a", 0.5).replies[0].body
    assert first == again == Registered(7, "session-1", 5.0)
    assert d.sessions["n1"].last_seen == 0.5
    other = d.handle("n1", Register(8, DESC), "a", 1.0).replies[0].body
    assert other == Registered(8, "session-2", 5.0)


def test_a_status_report_is_acknowledged_once_committed() -> None:
    d = dispatcher()
    sid = d.open_session("n1", 0.0)
    store = MemoryStore()
    apply(store, [Change("create", placed("t1")), Change("create", placed("t2", node="n2"))])
    report = UpdateTaskStatus(
        sid,
        (
            StatusUpdate("t1", status(TaskState.RUNNING)),
            StatusUpdate("ghost", status(TaskState.RUNNING)),
        ),
    )
    fx = d.handle("n1", report, "", 1.0, reply_to=5)
    assert fx.replies == []  # nothing before the store holds it
    (write,) = fx.writes
    acked = (Acked("t1", TaskState.RUNNING), Acked("ghost", TaskState.RUNNING))
    assert write.then == (Outgoing("n1", UpdateTaskStatusAck(sid, acked), 5),)
    assert (write.node_id, write.request, write.session_id) == ("n1", "update_task_status", sid)
    apply(store, write.build(store))
    t1 = store.get_task("t1")
    assert t1 is not None and t1.status.state == TaskState.RUNNING
    # A report about another node's task is refused as a whole, and not acknowledged.
    bad = UpdateTaskStatus(sid, (StatusUpdate("t2", status(TaskState.RUNNING)),))
    (write,) = d.handle("n1", bad, "", 1.0).writes
    with pytest.raises(InvalidArgument):
        write.build(store)


def test_assignment_sets_are_numbered_and_a_request_gets_a_full_set() -> None:
    c = Harness()
    c.write([Change("create", placed("t1"))])
    (full,) = c.send()
    assert (_body(full).full, _body(full).results_in) == (True, 1)
    c.write([Change("create", placed("t2"))])
    (inc,) = c.send()
    assert (_body(inc).full, _body(inc).applies_to, _body(inc).results_in) == (False, 1, 2)
    beat = c.d.handle("n1", Heartbeat(c.sid), "", 1.0).replies[0].body
    assert beat == HeartbeatAck(5.0, 2)
    assert c.d.handle("n1", AssignmentsRequest(c.sid), "", 1.0).replies == []
    (again,) = c.send()
    assert (_body(again).full, _body(again).results_in) == (True, 3)
    assert _ids(again) == (["t1", "t2"], [])


# --- a newly started dispatcher ------------------------------------------------------------------


def _nodes(store: MemoryStore, *states: tuple[str, NodeState]) -> None:
    apply(
        store,
        [Change("create", Node(id=n, status=NodeStatus(state=s, addr="x"))) for n, s in states],
    )


def test_a_new_dispatcher_marks_nodes_unknown_and_down_after_the_grace() -> None:
    store = MemoryStore()
    _nodes(
        store,
        ("ready", NodeState.READY),
        ("back", NodeState.READY),
        ("down", NodeState.DOWN),
    )
    d = dispatcher(period=2.0)
    (write,) = d.start(store, 100.0).writes
    apply(store, write.build(store))
    for n in ("ready", "back"):
        node = store.get_node(n)
        assert node is not None
        assert (node.status.state, node.status.message) == (NodeState.UNKNOWN, UNKNOWN_MESSAGE)
    down = store.get_node("down")
    assert down is not None and down.status.state == NodeState.DOWN
    # One node comes back within the grace; the other never talks to this dispatcher.
    for w in d.handle("back", Register(1, DESC), "10.0.0.9", 101.0).writes:
        apply(store, w.build(store))
    # A new dispatcher's grace for nodes it knows nothing of: 9 periods = 18 s.
    for t in (105.0, 110.0, 115.0):
        d.heartbeat("back", d.sessions["back"].session_id, t)
    assert d.tick(store, 118.0).writes == []
    d.heartbeat("back", d.sessions["back"].session_id, 118.0)
    (expire,) = d.tick(store, 118.1).writes
    apply(store, expire.build(store))
    ready, back = store.get_node("ready"), store.get_node("back")
    assert ready is not None and back is not None
    assert (ready.status.state, ready.status.message) == (NodeState.DOWN, UNKNOWN_EXPIRED_MESSAGE)
    assert back.status.state == NodeState.READY


def test_the_heartbeat_period_comes_from_the_cluster_and_follows_it() -> None:
    store = MemoryStore()
    cluster = Cluster(id="c1", spec=ClusterSpec(dispatcher=DispatcherConfig(heartbeat_period=1.5)))
    apply(store, [Change("create", cluster)])
    d = dispatcher(period=5.0)
    d.start(store, 0.0)
    assert d.heartbeat_period == 1.5
    sid = d.open_session("n1", 0.0)
    faster = replace(cluster, spec=ClusterSpec(dispatcher=DispatcherConfig(heartbeat_period=0.5)))
    d.observe(apply(store, [Change("update", replace(faster, meta=store.clusters()[0].meta))]))
    assert d.heartbeat("n1", sid, 1.0) == 0.5
    assert d.expire(2.4) == []
    assert d.expire(2.6) == ["n1"]


def test_a_shorter_period_does_not_expire_nodes_that_have_not_heard_of_it() -> None:
    store = MemoryStore()
    cluster = Cluster(id="c1", spec=ClusterSpec(dispatcher=DispatcherConfig(heartbeat_period=5.0)))
    apply(store, [Change("create", cluster)])
    d = dispatcher(period=5.0)
    d.start(store, 0.0)
    sid = d.open_session("n1", 0.0)
    faster = replace(cluster, spec=ClusterSpec(dispatcher=DispatcherConfig(heartbeat_period=1.0)))
    d.observe(apply(store, [Change("update", replace(faster, meta=store.clusters()[0].meta))]))
    # Told to beat every 5 s, the node beats at 5.4 s: not expired meanwhile.
    assert d.expire(5.3) == []
    assert d.heartbeat("n1", sid, 5.4) == 1.0
    # From then on the new period holds: three missed 1 s beats expire it.
    assert d.expire(8.3) == []
    assert d.expire(8.5) == ["n1"]


def test_a_node_whose_role_changed_is_told_to_renew_its_certificate() -> None:
    store = MemoryStore()
    worker_cert = NodeCertificate(role=NodeRole.WORKER)
    apply(store, [Change("create", Node(id="n1", role=NodeRole.WORKER, certificate=worker_cert))])
    d = dispatcher()
    d.start(store, 0.0)
    d.handle("n1", Register(1, DESC), "10.0.0.1", 1.0)
    sid = d.sessions["n1"].session_id

    def beat() -> HeartbeatAck:
        (out,) = d.handle("n1", Heartbeat(sid), "10.0.0.1", 2.0).replies
        assert isinstance(out.body, HeartbeatAck)
        return out.body

    assert not beat().renew_certificate
    promoted = store.get_node("n1")
    assert promoted is not None
    d.observe(apply(store, [Change("update", replace(promoted, role=NodeRole.MANAGER))]))
    assert beat().renew_certificate
    renewed = store.get_node("n1")
    assert renewed is not None
    manager_cert = replace(worker_cert, role=NodeRole.MANAGER)
    d.observe(apply(store, [Change("update", replace(renewed, certificate=manager_cert))]))
    assert not beat().renew_certificate
