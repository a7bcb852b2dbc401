"""The leader's log broker: sessions, subscriptions, the window, renewals,
nodes going down and clients going away."""

from __future__ import annotations

import itertools

import pytest

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import (
    Annotations,
    Node,
    NodeDescription,
    NodeStatus,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskStatus,
    replace,
)
from pyswarmkit.api.protocol import LogAck, LogCancel, LogData, LogRecord, LogSubscribe
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.logs.broker import IDLE, RENEW, WINDOW, Broker
from pyswarmkit.store import Change, MemoryStore

pytestmark = pytest.mark.unit


def node(nid: str, state: NodeState = NodeState.READY) -> Node:
    return Node(
        id=nid, description=NodeDescription(hostname=f"host-{nid}"), status=NodeStatus(state=state)
    )


def task(tid: str, slot: int, nid: str, state: TaskState = TaskState.RUNNING) -> Task:
    return Task(
        id=tid,
        service_id="svc",
        service_name="web",
        slot=slot,
        node_id=nid,
        status=TaskStatus(state=state),
    )


def swarm(*changes: Change) -> MemoryStore:
    store = MemoryStore()
    spec = ServiceSpec(annotations=Annotations(name="web"), mode=ServiceMode(replicas=12))
    base = [
        Change("create", node("n1")),
        Change("create", node("n2")),
        Change("create", Service(id="svc", spec=spec)),
        Change("create", task("t1", 1, "n1")),
        Change("create", task("t2", 2, "n2")),
        # Never placed: no log anywhere.
        Change(
            "create",
            Task(id="t3", service_id="svc", slot=3, status=TaskStatus(state=TaskState.PENDING)),
        ),
    ]
    store.apply([*base, *changes], 1, 1.0)
    return store


def broker() -> Broker:
    ids = itertools.count(1)
    return Broker(lambda: f"s{next(ids)}")


def batch(seq: int, *texts: str, eof: bool = False, task_id: str = "t1") -> LogData:
    return LogData("s1", task_id, seq, tuple(LogRecord(1, float(seq), t) for t in texts), eof)


def test_a_service_log_asks_each_node_for_its_tasks() -> None:
    b = broker()
    opened, out = b.open(swarm(), {"service": "web", "tail": 5}, 0.0)
    assert opened["stream"] == "s1" and opened["padding"] == 2
    assert [(t["id"], t["slot"], t["node"]) for t in opened["tasks"]] == [
        ("t1", 1, "host-n1"),
        ("t2", 2, "host-n2"),
    ]
    assert out == [
        ("n1", LogSubscribe("s1", "t1", False, None, 5, WINDOW)),
        ("n2", LogSubscribe("s1", "t2", False, None, 5, WINDOW)),
    ]


def test_unknown_names_and_bad_options_are_refused() -> None:
    b = broker()
    with pytest.raises(NotFound, match="service nope not found"):
        b.open(swarm(), {"service": "nope"}, 0.0)
    with pytest.raises(NotFound, match="has not reached a node"):
        b.open(swarm(), {"task": "t3"}, 0.0)
    with pytest.raises(InvalidArgument, match="invalid tail"):
        b.open(swarm(), {"service": "web", "tail": -3}, 0.0)
    with pytest.raises(NotFound):
        b.read(swarm(), "s9", 0.0)


def test_lines_are_read_out_in_order_and_the_stream_ends_with_every_log() -> None:
    store = swarm()
    b = broker()
    b.open(store, {"task": "t1"}, 0.0)
    assert not b.readable("s1")
    assert b.data("n1", batch(2, "late")) == [("n1", LogAck("s1", "t1", 0, 0))]  # a gap
    assert b.data("n1", batch(1, "a", "b")) == [("n1", LogAck("s1", "t1", 1, 0))]
    b.data("n1", batch(1, "a", "b"))  # a duplicate
    b.data("n2", batch(2, "c"))  # not the task's node
    assert b.readable("s1")
    page, acks = b.read(store, "s1", 1.0)
    assert [row[3] for row in page["lines"]] == ["a", "b"] and not page["done"]
    assert acks == [("n1", LogAck("s1", "t1", 1, 1))]
    b.data("n1", batch(2, "c", eof=True))
    page, _ = b.read(store, "s1", 2.0)
    assert [row[3] for row in page["lines"]] == ["c"] and page["done"]
    assert "s1" not in b.sessions


def test_the_manager_holds_at_most_a_window_per_task() -> None:
    store = swarm()
    b = broker()
    b.open(store, {"task": "t1", "follow": True}, 0.0)
    for seq in range(1, WINDOW + 3):
        b.data("n1", batch(seq, "x" * 1000))
    assert len(b.sessions["s1"].subs["t1"].batches) == WINDOW


def test_a_node_that_is_down_is_one_error_and_the_others_stream_on() -> None:
    store = swarm(Change("update", replace(node("n2", NodeState.DOWN), meta=node("n2").meta)))
    b = broker()
    _, out = b.open(store, {"service": "web"}, 0.0)
    assert [dest for dest, _ in out] == ["n1"]
    page, _ = b.read(store, "s1", 0.5)
    assert page["errors"] == [["t2", "node host-n2 is down: its log cannot be read now"]]
    b.data("n1", batch(1, "a", eof=True))
    page, _ = b.read(store, "s1", 0.6)
    assert page["done"]


def test_live_streams_are_renewed_and_a_node_going_down_ends_its_own() -> None:
    store = swarm()
    b = broker()
    b.open(store, {"service": "web", "follow": True}, 0.0)
    b.data("n1", batch(1, "a"))
    # t1 was heard: kept alive with an acknowledgement; t2 was not: asked again.
    out = b.tick(store, RENEW)
    assert ("n1", LogAck("s1", "t1", 1, 0)) in out
    assert ("n2", LogSubscribe("s1", "t2", True, None, -1, WINDOW)) in out
    n2 = store.get_node("n2")
    assert n2 is not None
    store.apply([Change("update", replace(n2, status=NodeStatus(state=NodeState.DOWN)))], 2, 1.0)
    b.tick(store, RENEW + 1)
    page, _ = b.read(store, "s1", RENEW + 1)
    assert page["errors"] == [["t2", "node host-n2 went down: its log stream ended"]]
    assert [row[3] for row in page["lines"]] == ["a"] and not page["done"]


def test_a_client_gone_quiet_is_dropped_and_its_nodes_told() -> None:
    store = swarm()
    b = broker()
    b.open(store, {"service": "web", "follow": True}, 0.0)
    assert b.tick(store, IDLE - 1) != [] and "s1" in b.sessions
    out = b.tick(store, IDLE + 1)
    assert out == [("n1", LogCancel("s1")), ("n2", LogCancel("s1"))]
    assert "s1" not in b.sessions
    # Its nodes' late batches are answered with a cancel.
    assert b.data("n1", batch(1, "a")) == [("n1", LogCancel("s1"))]


def test_a_follow_takes_in_the_service_s_new_tasks() -> None:
    store = swarm()
    b = broker()
    b.open(store, {"service": "web", "follow": True, "tail": 0}, 0.0)
    store.apply([Change("create", task("t4", 3, "n1"))], 2, 1.0)
    out = b.tick(store, 1.5)
    assert ("n1", LogSubscribe("s1", "t4", True, None, -1, WINDOW)) in out
    page, _ = b.read(store, "s1", 1.6)
    assert [t["id"] for t in page["tasks"]] == ["t4"]
