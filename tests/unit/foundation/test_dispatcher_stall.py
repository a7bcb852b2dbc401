"""A dispatcher that did not run for a while (its process stopped, its machine
suspended) does not count that time as the nodes' silence."""

from __future__ import annotations

import pytest

from pyswarmkit.api.objects import NodeDescription
from pyswarmkit.api.protocol import Register
from pyswarmkit.api.states import NodeState
from pyswarmkit.dispatcher.core import Dispatcher
from pyswarmkit.store import MemoryStore

pytestmark = pytest.mark.unit

DESC = NodeDescription(hostname="n")


def ticking(d: Dispatcher, store: MemoryStore, start: float, end: float) -> None:
    """A tick every 0.1 s over [start, end], each one's writes committed."""
    for i in range(round((end - start) / 0.1) + 1):
        for w in d.tick(store, start + i * 0.1).writes:
            store.apply(w.build(store), store.index + 1, 1.0)


def state(store: MemoryStore, node_id: str) -> NodeState:
    node = store.get_node(node_id)
    assert node is not None
    return node.status.state


def registered(store: MemoryStore, d: Dispatcher, now: float) -> str:
    for w in d.handle("n1", Register(5, DESC), "a", now).writes:
        store.apply(w.build(store), store.index + 1, 1.0)
    return d.sessions["n1"].session_id


def test_a_stall_longer_than_the_grace_expires_no_one() -> None:
    store = MemoryStore()
    d = Dispatcher(heartbeat_period=1.0)
    sid = registered(store, d, 0.0)
    ticking(d, store, 0.0, 0.5)
    # Nothing ran for 10 s; the heartbeats the node sent meanwhile are queued.
    ticking(d, store, 10.5, 10.5)
    assert d.stalls == 1 and d.last_stall == pytest.approx(9.0)
    d.heartbeat("n1", sid, 10.6)
    ticking(d, store, 10.6, 13.5)
    assert state(store, "n1") == NodeState.READY and "n1" in d.sessions


def test_silence_on_either_side_of_a_stall_still_adds_up() -> None:
    store = MemoryStore()
    d = Dispatcher(heartbeat_period=1.0)
    registered(store, d, 0.0)
    ticking(d, store, 0.0, 1.0)
    # 1 s of silence before, STALL (1 s) of the gap, then 1.1 s: past the 3 s grace.
    ticking(d, store, 30.0, 30.0)
    ticking(d, store, 30.1, 30.9)
    assert state(store, "n1") == NodeState.READY
    ticking(d, store, 31.0, 31.1)
    assert state(store, "n1") == NodeState.DOWN


def test_a_node_unknown_to_a_new_dispatcher_keeps_its_grace_across_a_stall() -> None:
    store = MemoryStore()
    store.apply(Dispatcher.register(store, "n1", DESC, "a"), store.index + 1, 1.0)
    d = Dispatcher(heartbeat_period=1.0)
    for w in d.start(store, 0.0).writes:
        store.apply(w.build(store), store.index + 1, 1.0)
    ticking(d, store, 0.0, 1.0)
    ticking(d, store, 20.0, 20.0)
    assert state(store, "n1") == NodeState.UNKNOWN
    registered(store, d, 20.1)
    ticking(d, store, 20.1, 21.0)
    assert state(store, "n1") == NodeState.READY
