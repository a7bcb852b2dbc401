from __future__ import annotations

import math
from collections import Counter

import pytest

from pyswarmkit.api.objects import Platform, Task, TaskStatus, replace
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.scheduler.base import SchedulerCore
from pyswarmkit.scheduler.core import ASSIGNED_MESSAGE, CONFIRMED_MESSAGE, Scheduler
from pyswarmkit.store.memory import Change
from tests.unit.scheduler.helpers import CPU, GIB, Harness, node, spec, task

pytestmark = pytest.mark.unit


def per_node(h: Harness, service: str | None = None) -> Counter[str]:
    return Counter(
        t.node_id
        for t in h.tasks()
        if t.status.state == TaskState.ASSIGNED and (service is None or t.service_id == service)
    )


def with_state(t: Task, state: TaskState) -> Task:
    return replace(t, status=TaskStatus(timestamp=0.0, state=state))


def test_implements_the_protocol() -> None:
    core: SchedulerCore = Scheduler()
    assert core.due(0.0) is False


def test_assigns_and_spreads_one_service() -> None:
    h = Harness()
    h.create(node("a"), node("b"), node("c"))
    h.create(*[task(f"t{i}", slot=i) for i in range(6)])
    changes = h.step()
    assert len(changes) == 6  # one batch for the whole group
    assert per_node(h) == {"a": 2, "b": 2, "c": 2}
    t = h.task("t0")
    assert t.status.state == TaskState.ASSIGNED
    assert t.status.message == ASSIGNED_MESSAGE
    assert t.status.timestamp == h.now
    assert h.step() == []


def test_least_loaded_by_service_then_total() -> None:
    h = Harness()
    h.create(node("a"), node("b"))
    # b runs two tasks of another service, a runs one task of ours
    h.create(
        task("x1", service="other", node_id="b", state=TaskState.RUNNING),
        task("x2", service="other", node_id="b", state=TaskState.RUNNING),
        task("s1", node_id="a", state=TaskState.RUNNING),
    )
    h.create(task("s2", slot=2))
    h.settle()
    assert h.task("s2").node_id == "b"  # fewer tasks of this service wins over fewer in total
    h.create(task("y1", service="third"))
    h.settle()
    assert h.task("y1").node_id == "a"  # neither has the service: fewer in total wins


def test_no_nodes() -> None:
    h = Harness()
    h.create(task("t1"))
    h.settle()
    t = h.task("t1")
    assert t.status.state == TaskState.PENDING
    assert t.status.message == "no suitable node"


def test_swarmkit_explanation_then_room_appears() -> None:
    h = Harness()
    gpu = spec(memory=2 * GIB, generic={"orange": 2, "apple": 2})
    h.create(
        node("under", cpus=CPU, memory=GIB, generic={"orange": 2, "apple": 1}),
        node("nonready1", state=NodeState.UNKNOWN, memory=2 * GIB, generic={"apple": 2}),
        node("nonready2", state=NodeState.UNKNOWN, memory=2 * GIB, generic={"apple": 2}),
    )
    h.create(task("t1", task_spec=gpu))
    h.settle()
    t = h.task("t1")
    assert t.status.state == TaskState.PENDING
    assert t.status.message == (
        "no suitable node (2 nodes not available for new tasks; insufficient resources on 1 node)"
    )
    h.create(node("big", cpus=CPU, memory=4 * GIB, generic={"orange": 3, "apple": 2}))
    h.settle()
    assert h.task("t1").node_id == "big"
    assert h.task("t1").status.state == TaskState.ASSIGNED


def test_message_written_only_when_it_changes() -> None:
    h = Harness()
    h.create(node("a", labels={"zone": "west"}))
    h.create(task("t1", task_spec=spec(constraints=("node.labels.zone==east",))))
    h.settle()
    first = h.task("t1")
    assert first.status.message == (
        "no suitable node (scheduling constraints not satisfied on 1 node)"
    )
    # A node event makes the scheduler try again; nothing changed for t1.
    h.update(node("a", labels={"zone": "west", "other": "x"}))
    assert h.step() == []
    assert h.task("t1").meta.version == first.meta.version
    # A second unsuitable node changes the explanation, so it is written.
    h.create(node("b"))
    h.settle()
    assert h.task("t1").status.message == (
        "no suitable node (scheduling constraints not satisfied on 2 nodes)"
    )
    # A label update that satisfies the constraint places the task.
    h.update(node("b", labels={"zone": "east"}))
    h.settle()
    assert h.task("t1").node_id == "b"


def test_resources_freed_by_a_finished_task_are_reused() -> None:
    h = Harness()
    one_cpu = spec(cpus=CPU)
    h.create(node("a", cpus=2 * CPU))
    h.create(*[task(f"t{i}", slot=i, task_spec=one_cpu) for i in range(3)])
    h.settle()
    placed = [t for t in h.tasks() if t.status.state == TaskState.ASSIGNED]
    waiting = [t for t in h.tasks() if t.status.state == TaskState.PENDING]
    assert len(placed) == 2 and len(waiting) == 1
    assert waiting[0].status.message == "no suitable node (insufficient resources on 1 node)"
    h.update(with_state(placed[0], TaskState.FAILED))
    h.settle()
    assert h.task(waiting[0].id).node_id == "a"


def test_a_stopped_task_frees_the_node_not_one_told_to_stop() -> None:
    h = Harness()
    h.create(node("a", memory=GIB))
    h.create(task("old", task_spec=spec(memory=GIB), node_id="a", state=TaskState.RUNNING))
    h.create(task("new", service="svc2", task_spec=spec(memory=GIB)))
    h.settle()
    assert h.task("new").status.state == TaskState.PENDING
    h.update(replace(h.task("old"), desired_state=TaskState.SHUTDOWN))
    h.settle()
    assert h.task("new").status.state == TaskState.PENDING
    old = h.task("old")
    stopped = replace(old.status, state=TaskState.SHUTDOWN)
    h.update(replace(old, status=stopped))
    h.settle()
    assert h.task("new").node_id == "a"


def test_host_ports() -> None:
    h = Harness()
    h.create(node("a"), node("b"))
    s = spec(host_ports=(80,))
    h.create(*[task(f"t{i}", slot=i, task_spec=s) for i in range(3)])
    h.settle()
    assert per_node(h) == {"a": 1, "b": 1}
    (left,) = [t for t in h.tasks() if t.status.state == TaskState.PENDING]
    assert left.status.message == "no suitable node (host-mode port already in use on 2 nodes)"


def test_max_replicas() -> None:
    h = Harness()
    h.create(node("a"), node("b"))
    s = spec(max_replicas=1)
    h.create(*[task(f"t{i}", slot=i, task_spec=s) for i in range(3)])
    h.settle()
    assert per_node(h) == {"a": 1, "b": 1}
    (left,) = [t for t in h.tasks() if t.status.state == TaskState.PENDING]
    assert left.status.message == "no suitable node (max replicas per node limit exceed)"


def test_constraints_and_platforms_explained() -> None:
    h = Harness()
    h.create(node("a"), node("b"), node("c"))
    h.create(
        task("c1", service="s1", task_spec=spec(constraints=("node.role==manager",))),
        task("p1", service="s2", task_spec=spec(platforms=(Platform("windows", "amd64"),))),
    )
    h.settle()
    assert h.task("c1").status.message == (
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    )
    assert h.task("p1").status.message == "no suitable node (unsupported platform on 3 nodes)"


def test_drained_and_down_nodes_are_not_used() -> None:
    h = Harness()
    h.create(
        node("drained", availability=NodeAvailability.DRAIN),
        node("down", state=NodeState.DOWN),
        node("up"),
    )
    h.create(*[task(f"t{i}", slot=i) for i in range(4)])
    h.settle()
    assert per_node(h) == {"up": 4}
    h.update(node("up", availability=NodeAvailability.PAUSE))
    h.create(task("late", service="other"))
    h.settle()
    assert h.task("late").status.message == (
        "no suitable node (3 nodes not available for new tasks)"
    )


def test_deleted_node_is_forgotten() -> None:
    h = Harness()
    h.create(node("a"), node("b"))
    h.commit([Change("delete", h.nodes()["a"])])
    h.create(*[task(f"t{i}", slot=i) for i in range(2)])
    h.settle()
    assert per_node(h) == {"b": 2}


def test_pending_task_not_meant_to_run_is_ignored() -> None:
    h = Harness()
    h.create(node("a"))
    h.create(task("t1", desired=TaskState.SHUTDOWN))
    assert h.core.wake_at() is None
    assert h.step() == []
    assert h.task("t1").status.state == TaskState.PENDING


def test_preassigned_task_confirmed_or_explained() -> None:
    h = Harness()
    h.create(node("a", memory=GIB), node("b"))
    h.create(
        task("fits", service="g1", node_id="a", task_spec=spec(memory=GIB)),
        task("too-big", service="g2", node_id="b", task_spec=spec(memory=GIB)),
    )
    h.settle()
    fits = h.task("fits")
    assert (fits.node_id, fits.status.state) == ("a", TaskState.ASSIGNED)
    assert fits.status.message == CONFIRMED_MESSAGE
    big = h.task("too-big")
    assert (big.node_id, big.status.state) == ("b", TaskState.PENDING)
    assert big.status.message == "insufficient resources on 1 node"


def test_reset_counts_existing_tasks() -> None:
    h = Harness()
    h.create(node("a"), node("b"))
    h.create(
        task("r1", node_id="a", state=TaskState.RUNNING),
        task("r2", node_id="a", state=TaskState.RUNNING, slot=2),
        task("p", slot=3),
    )
    core = Scheduler()
    core.reset(h.store.nodes(), h.store.tasks(), h.now)
    assert core.node_load("a") == 2
    assert core.due(h.now)  # after a reset there is no debounce
    changes = core.schedule(h.now)
    assert [(c.obj.id, c.obj.node_id) for c in changes] == [("p", "b")]  # type: ignore[union-attr]


def test_debounce() -> None:
    h = Harness()
    h.create(node("a"))
    h.step()
    t0 = h.now
    gap = h.core.debounce_gap
    h.create(task("t1"))  # observed at t0
    assert h.core.wake_at() == pytest.approx(t0 + gap)
    assert not h.core.due(t0 + gap * 0.9)
    assert h.core.due(t0 + gap)
    # Batches closer together than the gap keep pushing it back, up to the
    # maximum latency after the first.
    i = 0
    while h.now < t0 + 1.2:
        i += 1
        h.now = t0 + gap * 0.8 * i
        h.create(task(f"u{i}", service=f"s{i}"))
        assert not h.core.due(h.now) or h.now >= t0 + 1.0
    assert h.core.due(t0 + 1.0)
    assert h.core.wake_at() == pytest.approx(t0 + 1.0)
    h.core.schedule(t0 + 1.0)
    assert h.core.wake_at() is None


def test_a_batch_is_placed_a_few_ms_after_it_is_ingested() -> None:
    # Events arrive a committed batch at a time; once one is in and nothing
    # follows for a few ms, it is placed (SwarmKit's 50 ms gap would add
    # 50 ms to every placement). SwarmKit's 1 s bound stays.
    h = Harness()
    h.create(node("a"))
    h.step()
    t0 = h.now
    h.create(task("t1"))
    assert h.core.due(t0 + 0.005)
    assert h.core.max_latency == 1.0


def test_requirements_are_shared_by_equal_specs_whatever_the_objects() -> None:
    # Tasks decoded from the log each carry their own spec object: the cache
    # must key on what the spec says, never on which object holds it.
    core = Scheduler()
    one = task("t1", service="s1", task_spec=spec(constraints=("node.labels.x==1",), cpus=2))
    two = task("t2", service="s2", task_spec=spec(constraints=("node.labels.x==1",), cpus=2))
    other = task("t3", service="s3", task_spec=spec(constraints=("node.labels.x==1",), cpus=3))
    assert one.spec == two.spec and one.spec is not two.spec
    assert core._requirements(one) is core._requirements(two)
    assert core._requirements(other) is not core._requirements(one)
    assert core._requirements(other).nano_cpus == 3


def test_statuses_carry_wall_time_while_the_debounce_runs_on_monotonic_time() -> None:
    h = Harness()
    h.create(node("a"))
    h.create(task("t1"))
    wall = 1.7e9
    (change,) = h.core.schedule(h.now + 1, wall)
    assert change.obj.status.timestamp == wall  # type: ignore[union-attr]


def test_rejected_batch_is_undone() -> None:
    h = Harness()
    h.create(node("a"), node("b"))
    h.create(task("t1"), task("t2", slot=2))
    h.deliver()
    changes = h.core.schedule(h.now + 1)
    assert len(changes) == 2
    assert h.core.node_load("a") + h.core.node_load("b") == 2
    assert not h.core.due(h.now + 1)
    h.core.rejected(changes)
    assert h.core.node_load("a") + h.core.node_load("b") == 0
    assert h.core.due(h.now + 1)  # retried at once
    again = h.core.schedule(h.now + 1)
    assert sorted(c.obj.id for c in again) == ["t1", "t2"]


def test_an_event_supersedes_a_decision_in_flight() -> None:
    h = Harness()
    h.create(node("a"))
    h.create(task("t1"))
    h.deliver()
    changes = h.core.schedule(h.now + 1)
    assert h.core.node_load("a") == 1
    # Before the decision commits, the orchestrator shuts the task down.
    h.update(replace(h.task("t1"), desired_state=TaskState.SHUTDOWN))
    assert h.core.node_load("a") == 0
    h.proposer.propose(changes, h.now, h._done(changes))  # refused: the task changed
    assert h.core.node_load("a") == 0
    assert h.core.pending_count() == 0
    assert h.step() == []
    assert h.task("t1").status.state == TaskState.PENDING


def test_committed_decision_keeps_the_load() -> None:
    h = Harness()
    h.create(node("a"))
    h.create(task("t1"))
    h.settle()
    assert h.core.node_load("a") == 1
    h.update(with_state(h.task("t1"), TaskState.RUNNING))
    assert h.core.node_load("a") == 1
    h.update(with_state(h.task("t1"), TaskState.COMPLETE))
    assert h.core.node_load("a") == 0


def test_node_with_repeated_failures_goes_last() -> None:
    h = Harness()
    h.create(node("a"), node("b"))
    # b already runs two tasks of the service; a would normally win
    h.create(
        task("b1", node_id="b", state=TaskState.RUNNING),
        task("b2", node_id="b", state=TaskState.RUNNING, slot=2),
    )
    for i in range(5):
        h.create(task(f"f{i}", node_id="a", state=TaskState.RUNNING, slot=10 + i))
        h.update(with_state(h.task(f"f{i}"), TaskState.FAILED))
    h.create(task("next", slot=20))
    h.settle()
    assert h.task("next").node_id == "b"
    # Five minutes later the failures are forgotten.
    h.now += 301
    h.create(task("later", slot=21))
    h.settle()
    assert h.task("later").node_id == "a"


def test_failures_of_another_spec_version_do_not_count() -> None:
    h = Harness()
    h.create(node("a"), node("b"))
    h.create(task("b1", node_id="b", state=TaskState.RUNNING))
    for i in range(5):
        h.create(task(f"f{i}", node_id="a", state=TaskState.RUNNING, slot=10 + i))
        h.update(with_state(h.task(f"f{i}"), TaskState.REJECTED))
    h.create(task("v2", slot=20, spec_version=2))
    h.settle()
    assert h.task("v2").node_id == "a"


def test_preferences_split_across_label_values() -> None:
    h = Harness()
    h.create(
        node("east1", labels={"zone": "east"}),
        node("west1", labels={"zone": "west"}),
        node("west2", labels={"zone": "west"}),
        node("west3", labels={"zone": "west"}),
    )
    s = spec(preferences=("spread=node.labels.zone",))
    h.create(*[task(f"t{i}", slot=i, task_spec=s) for i in range(6)])
    h.settle()
    counts = per_node(h)
    assert counts["east1"] == 3
    assert sorted([counts["west1"], counts["west2"], counts["west3"]]) == [1, 1, 1]


def test_preferences_count_existing_tasks() -> None:
    h = Harness()
    h.create(node("e", labels={"zone": "east"}), node("w", labels={"zone": "west"}))
    s = spec(preferences=("node.labels.zone",))
    h.create(*[task(f"r{i}", slot=i, node_id="e", state=TaskState.RUNNING) for i in range(3)])
    h.create(*[task(f"t{i}", slot=10 + i, task_spec=s) for i in range(5)])
    h.settle()
    assert per_node(h) == {"w": 4, "e": 1}


def test_preferences_overflow_into_other_branches() -> None:
    h = Harness()
    h.create(
        node("e", labels={"zone": "east"}, cpus=CPU),
        node("w", labels={"zone": "west"}, cpus=10 * CPU),
    )
    s = spec(preferences=("spread=node.labels.zone",), cpus=CPU)
    h.create(*[task(f"t{i}", slot=i, task_spec=s) for i in range(4)])
    h.settle()
    assert per_node(h) == {"e": 1, "w": 3}


def test_many_ungrouped_tasks_each_its_own_service() -> None:
    h = Harness()
    h.create(*[node(f"n{i}") for i in range(7)])
    h.create(*[task(f"t{i}", service=f"s{i}") for i in range(50)])
    h.settle()
    counts = per_node(h)
    assert sum(counts.values()) == 50
    assert max(counts.values()) - min(counts.values()) <= 1


def test_wake_at_is_none_without_work() -> None:
    core = Scheduler()
    assert core.wake_at() is None
    core.reset([node("a")], [task("t")], 0.0)
    assert core.wake_at() == -math.inf


def test_services_with_one_spec_share_an_explanation_but_not_max_replicas() -> None:
    h = Harness()
    h.create(node("a", cpus=3 * CPU))
    two_cpus = spec(cpus=2 * CPU)
    h.create(*[task(f"t{i}", service=f"s{i}", task_spec=two_cpus) for i in range(4)])
    h.settle()
    assert len(per_node(h)) == 1 and per_node(h)["a"] == 1
    waiting = [t for t in h.tasks() if t.status.state == TaskState.PENDING]
    assert len(waiting) == 3
    assert {t.status.message for t in waiting} == {
        "no suitable node (insufficient resources on 1 node)"
    }
    # max_replicas counts per service: one task of each service fits on one node
    one_each = spec(max_replicas=1)
    h.create(*[task(f"m{i}", service=f"m{i}", task_spec=one_each) for i in range(3)])
    h.create(task("m0-2", service="m0", slot=2, task_spec=one_each))
    h.settle()
    placed = {t.id for t in h.tasks() if t.status.state == TaskState.ASSIGNED}
    assert {"m0", "m1", "m2"} <= placed
    assert h.task("m0-2").status.message == "no suitable node (max replicas per node limit exceed)"


def test_node_updates_that_cannot_make_room_do_not_wake_the_scheduler() -> None:
    h = Harness()
    h.create(node("a"))
    h.create(task("t1", task_spec=spec(constraints=("node.labels.zone==east",))))
    h.settle()
    assert h.core.wake_at() is None
    n = h.nodes()["a"]
    h.update(replace(n, status=replace(n.status, message="heartbeat")))
    assert h.core.wake_at() is None
    h.update(node("a", labels={"zone": "east"}))
    assert h.core.wake_at() is not None
    h.settle()
    assert h.task("t1").node_id == "a"


def test_a_node_that_comes_back_is_charged_again_on_the_next_event() -> None:
    h = Harness()
    h.create(node("a", cpus=CPU))
    h.create(task("t1", task_spec=spec(cpus=CPU), node_id="a", state=TaskState.RUNNING))
    h.commit([Change("delete", h.nodes()["a"])])
    h.create(node("a", cpus=CPU))
    h.update(replace(h.task("t1"), status=TaskStatus(state=TaskState.RUNNING)))
    info = h.core.node_info("a")
    assert info is not None and "t1" in info.tasks and info.nano_cpus == 0
