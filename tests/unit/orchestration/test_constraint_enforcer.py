"""The constraint enforcer: a node that stops fitting a task placed on it has it
rejected, and the orchestrators replace it where it fits."""

from __future__ import annotations

import pytest

from pyswarmkit.api.objects import replace
from pyswarmkit.api.states import NodeAvailability, TaskState
from pyswarmkit.orchestrator.constraint_enforcer import REJECTED_MESSAGE, misfits
from pyswarmkit.store import Change, MemoryStore
from tests.unit.orchestration.world import World, spec

pytestmark = pytest.mark.unit


def world() -> World:
    w = World()
    w.add_node("n1", labels={"disk": "ssd"}, cpus=4_000_000_000)
    w.add_node("n2", labels={"disk": "ssd"}, cpus=4_000_000_000)
    return w


def test_a_label_removed_rejects_the_task_and_it_is_replaced() -> None:
    w = world()
    sid = w.create(spec("db", replicas=1, constraints=("node.labels.disk==ssd",)))
    w.settle()
    w.run_pending(node="n1")
    (first,) = w.wanted(sid)
    w.set_labels("n1", {"disk": "hdd"})
    w.settle()
    old = w.store.get_task(first.id)
    assert old is not None
    assert old.status.state == TaskState.REJECTED
    assert old.status.message == REJECTED_MESSAGE
    # The orchestrator stopped it there and made a replacement in its slot.
    assert old.desired_state == TaskState.SHUTDOWN
    (new,) = w.wanted(sid)
    assert new.id != first.id and new.slot == first.slot and new.node_id == ""


def test_fewer_resources_reject_the_newest_tasks_that_no_longer_fit() -> None:
    w = world()
    sid = w.create(spec("cpu", replicas=3, cpus=1_000_000_000))
    w.settle()
    w.run_pending(node="n1")
    oldest = sorted(w.wanted(sid), key=lambda t: t.meta.created_index)
    w.set_cpus("n1", 2_000_000_000)
    w.settle()
    rejected = [t for t in w.tasks(sid) if t.status.state == TaskState.REJECTED]
    assert [t.id for t in rejected] == [oldest[2].id]
    assert len(w.wanted(sid)) == 3


def test_nothing_happens_while_everything_still_fits() -> None:
    w = world()
    sid = w.create(spec("db", replicas=2, constraints=("node.labels.disk==ssd",)))
    w.settle()
    w.run_pending(node="n1")
    w.set_labels("n1", {"disk": "ssd", "rack": "r1"})
    w.settle()
    assert all(t.status.state == TaskState.RUNNING for t in w.wanted(sid))


def test_paused_and_drained_nodes_are_left_to_the_orchestrators() -> None:
    w = world()
    sid = w.create(spec("db", replicas=1, constraints=("node.labels.disk==ssd",)))
    w.settle()
    w.run_pending(node="n1")
    w.set_availability("n1", NodeAvailability.PAUSE)
    w.set_labels("n1", {"disk": "hdd"})
    w.settle()
    (kept,) = w.wanted(sid)
    assert kept.status.state == TaskState.RUNNING and kept.node_id == "n1"


def test_the_service_constraints_count_not_the_tasks_older_ones() -> None:
    """A task made before the constraints changed (an update not yet at it)
    carries the old ones; the node is held to the service's current ones."""
    w = world()
    sid = w.create(spec("db", replicas=1))
    w.settle()
    w.run_pending(node="n1")
    (task,) = w.wanted(sid)
    strict = spec("db", replicas=1, constraints=("node.labels.disk==nvme",))
    store = MemoryStore()
    store.apply(
        [
            Change("create", w.node("n1")),
            Change("create", replace(w.service(sid), spec=strict)),
            Change("create", task),
        ],
        1,
        0.0,
    )
    assert [t.id for t in misfits(store, w.node("n1"))] == [task.id]
    assert misfits(w.store, w.node("n1")) == []


def test_a_global_task_rejected_is_made_again_for_its_node_and_waits_there() -> None:
    w = world()
    sid = w.create(spec("agent", "global", cpus=3_000_000_000))
    w.settle()
    w.run_pending()
    (first,) = [t for t in w.wanted(sid) if t.node_id == "n1"]
    w.set_cpus("n1", 1_000_000_000)
    w.settle()
    old = w.store.get_task(first.id)
    assert old is not None
    assert (old.status.state, old.desired_state) == (TaskState.REJECTED, TaskState.SHUTDOWN)
    # Its replacement is for n1 again (a global task stays on its node); the
    # scheduler keeps it pending there until the node has room.
    (again,) = [t for t in w.wanted(sid) if t.node_id == "n1"]
    assert again.id != first.id and again.status.state == TaskState.PENDING


def test_a_role_change_rejects_tasks_constrained_to_the_old_role() -> None:
    w = world()
    sid = w.create(spec("work", replicas=1, constraints=("node.role==worker",)))
    w.settle()
    w.run_pending(node="n1")
    (first,) = w.wanted(sid)
    from pyswarmkit.api.states import NodeRole

    w.write([Change("update", replace(w.node("n1"), role=NodeRole.MANAGER))], 0.0)
    w.settle()
    assert w.store.get_task(first.id).status.state == TaskState.REJECTED  # type: ignore[union-attr]
    (again,) = w.wanted(sid)
    assert again.id != first.id
