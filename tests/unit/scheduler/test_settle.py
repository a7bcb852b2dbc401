"""A new leader's scheduler lets the nodes come back before it places: its
dispatcher marks every node UNKNOWN until it registers, and placing meanwhile
put a whole service on the first node to register."""

from __future__ import annotations

from collections import Counter

import pytest

from pyswarmkit.api.objects import Node, Task, TaskStatus, replace
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.scheduler.core import Scheduler
from pyswarmkit.store.memory import Event, EventBatch
from tests.unit.scheduler.helpers import node, task

pytestmark = pytest.mark.unit

NODES = [node(f"n{i}") for i in range(3)]


def with_state(n: Node, state: NodeState) -> Node:
    return replace(n, status=replace(n.status, state=state))


def nodes_event(core: Scheduler, nodes: list[Node], now: float) -> None:
    core.observe(EventBatch(1, tuple(Event("update", "node", n, None) for n in nodes)), now)


def pending(count: int) -> list[Task]:
    return [task(f"t{i}", slot=i + 1) for i in range(count)]


def placed(changes: list[object]) -> Counter[str]:
    return Counter(ch.obj.node_id for ch in changes)  # type: ignore[attr-defined]


def test_a_new_leader_places_once_every_ready_node_came_back() -> None:
    core = Scheduler()
    core.reset(NODES, pending(6), 0.0, settle=5.0)
    assert core.wake_at() == 5.0 and core.schedule(0.5) == []
    # The dispatcher marks them UNKNOWN; the first comes back alone.
    nodes_event(core, [with_state(n, NodeState.UNKNOWN) for n in NODES], 0.6)
    nodes_event(core, [NODES[0]], 0.7)
    assert core.schedule(0.8) == []
    # The others a moment later: placing starts then, over all three.
    nodes_event(core, NODES[1:], 0.9)
    when = core.wake_at()
    assert when is not None and when < 5.0
    assert placed(core.schedule(max(when, 0.9))) == Counter({"n0": 2, "n1": 2, "n2": 2})


def test_a_node_that_does_not_come_back_holds_placing_no_longer_than_the_settle() -> None:
    core = Scheduler()
    core.reset(NODES, pending(4), 0.0, settle=5.0)
    nodes_event(core, [with_state(n, NodeState.UNKNOWN) for n in NODES], 0.1)
    nodes_event(core, NODES[:2], 0.2)
    assert core.schedule(4.9) == []
    assert core.wake_at() == 5.0
    assert placed(core.schedule(5.0)) == Counter({"n0": 2, "n1": 2})


def test_a_node_that_goes_down_is_not_waited_for() -> None:
    core = Scheduler()
    core.reset(NODES, pending(2), 0.0, settle=5.0)
    nodes_event(core, [with_state(n, NodeState.UNKNOWN) for n in NODES], 0.1)
    nodes_event(core, [NODES[0], NODES[1], with_state(NODES[2], NodeState.DOWN)], 0.2)
    assert placed(core.schedule(0.3)) == Counter({"n0": 1, "n1": 1})


def test_without_settle_a_reset_places_at_once() -> None:
    core = Scheduler()
    core.reset(NODES, pending(3), 0.0)
    assert placed(core.schedule(0.0)) == Counter({"n0": 1, "n1": 1, "n2": 1})


def test_tasks_already_placed_are_not_held() -> None:
    """Only new placements wait; the store's running tasks are untouched."""
    core = Scheduler()
    running = replace(
        task("r1", node_id="n0"), status=TaskStatus(timestamp=0.0, state=TaskState.RUNNING)
    )
    core.reset(NODES, [running], 0.0, settle=5.0)
    assert core.wake_at() is None
