"""The global orchestrator: one task per eligible node, following nodes as they
join, leave, drain, pause, go down or change labels."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyswarmkit.api.objects import Platform, RestartPolicy, Service, UpdateConfig, replace
from pyswarmkit.api.states import NodeAvailability, NodeState, RestartCondition, TaskState
from pyswarmkit.orchestrator.global_ import GlobalOrchestrator, NodeSlots
from pyswarmkit.store.memory import Tx
from tests.unit.orchestration.world import World, spec

pytestmark = pytest.mark.unit


def three_nodes() -> World:
    w = World()
    for name in ("n1", "n2", "n3"):
        w.add_node(name, labels={"zone": "a" if name != "n3" else "b"})
    return w


def test_one_task_per_node_each_assigned_to_its_node() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    tasks = w.wanted(sid)
    assert sorted(t.node_id for t in tasks) == ["n1", "n2", "n3"]
    assert all(t.slot == 0 and t.status.state == TaskState.PENDING for t in tasks)
    # Settled: another look changes nothing.
    index = w.store.index
    w.settle()
    assert w.store.index == index


def test_only_nodes_that_may_run_it_get_one() -> None:
    w = three_nodes()
    w.add_node("down", state=NodeState.DOWN)
    w.add_node("win", labels={"zone": "a"}, os="windows")
    w.add_node("drained", labels={"zone": "a"})
    w.set_availability("drained", NodeAvailability.DRAIN)
    w.add_node("paused", labels={"zone": "a"})
    w.set_availability("paused", NodeAvailability.PAUSE)
    w.add_node("unknown", labels={"zone": "a"}, state=NodeState.UNKNOWN)
    sid = w.create(
        spec(
            "agent",
            "global",
            constraints=("node.labels.zone==a",),
            platforms=(Platform(os="linux"),),
        )
    )
    w.settle()
    assert w.wanted_nodes(sid) == ["n1", "n2"]


def test_a_node_that_joins_gets_a_task() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    w.add_node("n4")
    w.settle()
    assert w.wanted_nodes(sid) == ["n1", "n2", "n3", "n4"]
    # A node registering before it is ready gets one once it is.
    w.add_node("n5", state=NodeState.UNKNOWN)
    w.settle()
    assert "n5" not in w.wanted_nodes(sid)
    w.set_state("n5", NodeState.READY)
    w.settle()
    assert "n5" in w.wanted_nodes(sid)


def test_drain_takes_the_task_away_and_activate_brings_a_new_one() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    w.run_pending()
    first = next(t for t in w.wanted(sid) if t.node_id == "n2")
    w.set_availability("n2", NodeAvailability.DRAIN)
    w.settle()
    assert w.wanted_nodes(sid) == ["n1", "n3"]
    stopped = w.store.get_task(first.id)
    assert stopped is not None and stopped.desired_state == TaskState.SHUTDOWN
    w.stop_unwanted()
    w.set_availability("n2", NodeAvailability.ACTIVE)
    w.settle()
    assert w.wanted_nodes(sid) == ["n1", "n2", "n3"]
    again = next(t for t in w.wanted(sid) if t.node_id == "n2")
    assert again.id != first.id


def test_pause_keeps_the_task_but_places_nothing_new() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    w.run_pending()
    w.set_availability("n1", NodeAvailability.PAUSE)
    w.settle()
    assert w.wanted_nodes(sid) == ["n1", "n2", "n3"]
    # Its task fails: on a paused node it is not restarted.
    on_n1 = next(t for t in w.wanted(sid) if t.node_id == "n1")
    w.report(on_n1.id, TaskState.FAILED)
    w.settle()
    assert w.wanted_nodes(sid) == ["n2", "n3"]
    # A second service created meanwhile gets nothing there.
    other = w.create(spec("other", "global"))
    w.settle()
    assert w.wanted_nodes(other) == ["n2", "n3"]
    w.set_availability("n1", NodeAvailability.ACTIVE)
    w.settle()
    assert w.wanted_nodes(sid) == ["n1", "n2", "n3"]
    assert w.wanted_nodes(other) == ["n1", "n2", "n3"]


def test_a_removed_or_down_node_loses_its_task() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    w.run_pending()
    w.remove_node("n3")
    w.set_state("n2", NodeState.DOWN)
    w.settle()
    assert w.wanted_nodes(sid) == ["n1"]
    w.set_state("n2", NodeState.READY)
    w.settle()
    assert w.wanted_nodes(sid) == ["n1", "n2"]


def test_a_label_change_that_breaks_the_constraint_takes_the_task_away() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global", constraints=("node.labels.zone==a",)))
    w.settle()
    w.run_pending()
    assert w.wanted_nodes(sid) == ["n1", "n2"]
    w.set_labels("n1", {"zone": "b"})
    w.set_labels("n3", {"zone": "a"})
    w.settle()
    assert w.wanted_nodes(sid) == ["n2", "n3"]


def test_a_failed_task_restarts_on_its_node_after_the_delay() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global", restart=RestartPolicy(delay=5.0)))
    w.settle()
    w.run_pending()
    failed = next(t for t in w.wanted(sid) if t.node_id == "n1")
    w.report(failed.id, TaskState.FAILED, now=1.0)
    w.settle(1.0)
    waiting = [t for t in w.tasks(sid) if t.desired_state == TaskState.READY]
    assert [t.node_id for t in waiting] == ["n1"]
    w.settle(5.9)
    assert w.store.get_task(waiting[0].id).desired_state == TaskState.READY  # type: ignore[union-attr]
    w.settle(6.0)
    assert w.store.get_task(waiting[0].id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]
    assert w.wanted_nodes(sid) == ["n1", "n2", "n3"]


def test_restart_max_attempts_count_per_node_and_a_new_leader_keeps_the_count() -> None:
    w = three_nodes()
    policy = RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=0.0, max_attempts=2)
    sid = w.create(spec("agent", "global", restart=policy))
    w.settle()
    for attempt in range(3):
        w.run_pending()
        t = next(t for t in w.wanted(sid) if t.node_id == "n1")
        w.report(t.id, TaskState.FAILED, now=attempt)
        if attempt == 1:
            # Leadership moves: the new leader counts the restarts from the store.
            w.global_ = GlobalOrchestrator(id_gen=w.global_.id_gen)
            w.global_.reset(w.store, 100.0, 1_700_000_000.0 + attempt)
        w.settle(attempt)
    assert w.wanted_nodes(sid) == ["n2", "n3"]
    # The other nodes' tasks still may restart.
    t2 = next(t for t in w.wanted(sid) if t.node_id == "n2")
    w.report(t2.id, TaskState.FAILED, now=5)
    w.settle(5)
    assert w.wanted_nodes(sid) == ["n2", "n3"]
    # A task that completes under on-failure stays completed.
    w.run_pending()
    t3 = next(t for t in w.wanted(sid) if t.node_id == "n3")
    w.report(t3.id, TaskState.COMPLETE, now=6)
    w.settle(6)
    assert w.wanted_nodes(sid) == ["n2"]


def test_a_spec_change_replaces_every_task_on_its_own_node() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    w.run_pending()
    old = {t.id for t in w.wanted(sid)}
    # Every node at once, each new task started before its old one stops.
    at_once = UpdateConfig(parallelism=0, order="start-first")
    w.update(sid, replace(spec("agent", "global", command="serve --v2"), update=at_once))
    w.settle()
    w.run_pending()
    w.settle()
    new = w.wanted(sid)
    assert sorted(t.node_id for t in new) == ["n1", "n2", "n3"]
    assert not old & {t.id for t in new}
    assert all(t.spec.container.command[-1] == "serve --v2" for t in new)
    for tid in old:
        assert w.store.get_task(tid).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]


def test_a_node_paused_during_an_update_gets_the_new_spec_when_activated() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    w.run_pending()
    w.set_availability("n1", NodeAvailability.PAUSE)
    w.settle()
    w.update(sid, spec("agent", "global", command="v2"))
    w.settle()
    on_n1 = [t for t in w.wanted(sid) if t.node_id == "n1"]
    assert [t.spec.container.command[-1] for t in on_n1] == ["serve"]
    w.set_availability("n1", NodeAvailability.ACTIVE)
    w.settle()
    on_n1 = [t for t in w.wanted(sid) if t.node_id == "n1"]
    assert [t.spec.container.command[-1] for t in on_n1] == ["v2"]


def test_removing_the_service_removes_its_tasks_and_nothing_replicated_touches_them() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global", replicas=1))
    rep = w.create(spec("web", replicas=2))
    w.settle()
    w.run_pending(node="n1")
    # The replicated core keeps its two; the global service has three, not "replicas".
    assert len(w.wanted(rep)) == 2
    assert len(w.wanted(sid)) == 3
    w.set_availability("n1", NodeAvailability.DRAIN)
    w.settle()
    # Drained: the replicated tasks move (unassigned), the global one just goes.
    assert len(w.wanted(rep)) == 2 and all(t.node_id == "" for t in w.wanted(rep))
    assert w.wanted_nodes(sid) == ["n2", "n3"]
    w.remove(sid)
    w.settle()
    w.stop_unwanted()
    w.settle()
    assert w.tasks(sid) == []
    assert len(w.wanted(rep)) == 2


def test_history_is_trimmed_per_node() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    for i in range(8):
        w.run_pending()
        t = next(t for t in w.wanted(sid) if t.node_id == "n1")
        w.report(t.id, TaskState.FAILED, now=i)
        w.settle(i)
    on_n1 = [t for t in w.tasks(sid) if t.node_id == "n1"]
    assert len(on_n1) == 5
    assert len([t for t in w.tasks(sid) if t.node_id == "n2"]) == 1


def test_keeps_one_task_per_node_when_two_are_found() -> None:
    w = three_nodes()
    sid = w.create(spec("agent", "global"))
    w.settle()
    extra = replace(w.wanted(sid)[0], id="x" * 25)
    from pyswarmkit.store import Change

    w.write([Change("create", extra)], 0.0)
    w.global_.reset(w.store, 0.0, 1_700_000_000.0)
    w.settle()
    assert w.wanted_nodes(sid) == ["n1", "n2", "n3"]


class Recording(GlobalOrchestrator):
    """Records what reaches the seam where the rolling updater plugs in."""

    def __init__(self, id_gen: Callable[[], str]) -> None:
        super().__init__(id_gen)
        self.calls: list[dict[str, list[str]]] = []

    def _update(self, tx: Tx, service: Service, slots: NodeSlots, now: float, wall: float) -> None:
        self.calls.append({n: sorted(t.id for t in ts) for n, ts in slots.items()})
        super()._update(tx, service, slots, now, wall)


def test_a_spec_change_hands_every_node_slot_to_the_update_seam() -> None:
    w = three_nodes()
    w.global_ = Recording(w.global_.id_gen)
    w.global_.reset(w.store, 0.0, 1_700_000_000.0)
    sid = w.create(spec("agent", "global"))
    w.settle()
    w.run_pending()
    failed = next(t for t in w.wanted(sid) if t.node_id == "n1")
    w.report(failed.id, TaskState.FAILED)
    w.settle()
    recorder = w.global_
    assert isinstance(recorder, Recording)
    recorder.calls.clear()
    w.update(sid, spec("agent", "global", command="v2"))
    w.settle()
    # Keyed by node, every task of the slot not being removed (history too).
    first = recorder.calls[0]
    assert sorted(first) == ["n1", "n2", "n3"]
    assert failed.id in first["n1"] and len(first["n1"]) == 2
    # A task of the service ending mid-update brings the whole service back to it.
    recorder.calls.clear()
    w.run_pending()
    t = next(t for t in w.wanted(sid) if t.node_id == "n2")
    w.report(t.id, TaskState.FAILED)
    w.settle()
    assert recorder.calls and sorted(recorder.calls[0]) == ["n1", "n2", "n3"]
