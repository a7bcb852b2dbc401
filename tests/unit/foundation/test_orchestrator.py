"""The replicated orchestrator, driven against a real store the way its actor drives it:
step, apply the changes at the next index, feed the committed batch back."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api.objects import (
    Annotations,
    Cluster,
    ClusterSpec,
    ContainerSpec,
    Kind,
    Node,
    NodeSpec,
    NodeStatus,
    OrchestrationConfig,
    RestartPolicy,
    Service,
    ServiceMode,
    ServiceSpec,
    StoreObject,
    Task,
    TaskSpec,
    TaskStatus,
    UpdateConfig,
    replace,
)
from pyswarmkit.api.states import NodeAvailability, NodeState, RestartCondition, TaskState
from pyswarmkit.orchestrator import replicated
from pyswarmkit.orchestrator.replicated import ReplicatedOrchestrator
from pyswarmkit.orchestrator.restart import RestartHistory, wants_restart
from pyswarmkit.orchestrator.tasks import is_dirty, is_live, new_task
from pyswarmkit.orchestrator.update import OLD_TASK_TIMEOUT
from pyswarmkit.store import Change, EventBatch, MemoryStore

pytestmark = pytest.mark.unit

SID = "svc000000000000000000000a"
NO_DELAY = RestartPolicy(delay=0.0)
# The wall clock reads far from the monotonic one, as on a real machine, so a
# core that mixes the two up shows it.
WALL = 1_700_000_000.0


def spec(
    replicas: int, command: str = "serve", restart: RestartPolicy | None = None
) -> ServiceSpec:
    return ServiceSpec(
        annotations=Annotations(name="web"),
        task=TaskSpec(
            container=ContainerSpec(command=("sh", "-c", command)),
            restart=restart or RestartPolicy(),
        ),
        mode=ServiceMode(replicas=replicas),
    )


class Swarm:
    """A store, an orchestrator, and a hand standing in for the scheduler and agents."""

    def __init__(self, orch: ReplicatedOrchestrator | None = None) -> None:
        self.store = MemoryStore()
        counter = itertools.count(1)
        self.orch = orch or ReplicatedOrchestrator(id_gen=lambda: f"t{next(counter):024d}")
        self.batches: list[EventBatch] = []
        # Tests speak in scenario time ``now``. The orchestrator's monotonic
        # clock reads now + base (a new leader's process has another base); the
        # wall clock reads now + offset (a test moves it to make it jump).
        self.base = 0.0
        self.offset = WALL
        self.leaders = 0

    def wall(self, now: float) -> float:
        return now + self.offset

    def write(self, changes: list[Change], now: float) -> EventBatch:
        batch = self.store.apply(changes, self.store.index + 1, self.wall(now))
        self.batches.append(batch)
        self.orch.observe(batch)
        return batch

    def step(self, now: float) -> list[Change]:
        changes = self.orch.step(self.store, now + self.base, self.wall(now))
        if changes:
            self.write(changes, now)
        return changes

    def new_leader(self, now: float, base: float = 5000.0) -> ReplicatedOrchestrator:
        """Leadership moves to another manager, whose monotonic clock differs."""
        self.leaders += 1
        counter = itertools.count(1)
        prefix = f"l{self.leaders}"
        self.orch = ReplicatedOrchestrator(id_gen=lambda: f"{prefix}{next(counter):023d}")
        self.base = base
        self.orch.reset(self.store, now + base, self.wall(now))
        return self.orch

    def settle(self, now: float) -> None:
        for _ in range(10):
            if not self.step(now):
                return
        raise AssertionError("the orchestrator keeps changing things")

    # --- the service -----------------------------------------------------------

    def create(self, s: ServiceSpec, now: float = 0.0) -> None:
        self.write([Change("create", Service(id=SID, spec=s))], now)

    def service(self) -> Service:
        found = self.store.get_service(SID)
        assert found is not None
        return found

    def update(self, s: ServiceSpec, now: float) -> None:
        current = self.service()
        bump = 1 if s.task != current.spec.task else 0
        # As the control API does: a new spec starts a new update.
        updated = replace(
            current,
            spec=s,
            previous_spec=current.spec,
            spec_version=current.spec_version + bump,
            update_status=None,
        )
        self.write([Change("update", updated)], now)

    def scale(self, replicas: int, now: float) -> None:
        current = self.service().spec
        self.update(replace(current, mode=ServiceMode(replicas=replicas)), now)

    def delete_service(self, now: float) -> None:
        self.write([Change("delete", self.service())], now)

    # --- tasks -----------------------------------------------------------------

    def tasks(self) -> list[Task]:
        return sorted(self.store.tasks(), key=lambda t: (t.slot, t.meta.created_at, t.id))

    def live(self) -> list[Task]:
        return [t for t in self.tasks() if t.desired_state <= TaskState.RUNNING]

    def live_in(self, slot: int) -> list[Task]:
        return [t for t in self.live() if t.slot == slot]

    def live_slots(self) -> list[int]:
        return sorted(t.slot for t in self.live())

    def report(self, task_id: str, state: TaskState, now: float, node: str = "n1") -> None:
        """What the scheduler and an agent would write: placed on a node, now in ``state``."""
        t = self.store.get_task(task_id)
        assert t is not None
        status = TaskStatus(timestamp=self.wall(now), state=state)
        changes = [Change("update", replace(t, node_id=node, status=status))]
        if node and self.store.get_node(node) is None:
            # Tasks are placed on nodes that exist (one removed loses its tasks).
            ready = NodeStatus(state=NodeState.READY)
            changes.insert(0, Change("create", Node(id=node, status=ready)))
        self.write(changes, now)


def started(replicas: int, restart: RestartPolicy | None = None, now: float = 0.0) -> Swarm:
    swarm = Swarm()
    swarm.create(spec(replicas, restart=restart), now)
    swarm.settle(now)
    return swarm


# --- creating and scaling -----------------------------------------------------


def test_a_new_service_gets_one_pending_task_per_slot() -> None:
    swarm = started(3, now=10.0)
    tasks = swarm.tasks()
    assert [t.slot for t in tasks] == [1, 2, 3]
    for t in tasks:
        assert t.status.state == TaskState.PENDING
        assert t.desired_state == TaskState.RUNNING
        assert t.service_id == SID and t.service_name == "web"
        assert t.spec == swarm.service().spec.task
        assert t.spec_version == swarm.service().spec_version
        # Stamped with the wall clock, not the monotonic one.
        assert t.status.timestamp == WALL + 10.0
    assert len({t.id for t in tasks}) == 3


def test_repeated_steps_change_nothing_once_settled() -> None:
    swarm = started(3)
    index = swarm.store.index
    for now in (1.0, 2.0, 100.0):
        assert swarm.orch.step(swarm.store, now, swarm.wall(now)) == []
    assert swarm.store.index == index


def test_scaling_up_adds_the_missing_slots() -> None:
    swarm = started(3)
    before = {t.id for t in swarm.tasks()}
    swarm.scale(5, 1.0)
    swarm.settle(1.0)
    assert swarm.live_slots() == [1, 2, 3, 4, 5]
    assert before <= {t.id for t in swarm.tasks()}


def test_scaling_down_removes_tasks_not_running_first() -> None:
    # Each task on its own node, so only the running state tells them apart.
    swarm = started(4)
    by_slot = {t.slot: t.id for t in swarm.tasks()}
    for slot in (1, 3, 4):
        swarm.report(by_slot[slot], TaskState.RUNNING, 1.0, node=f"n{slot}")
    swarm.report(by_slot[2], TaskState.ASSIGNED, 1.0, node="n2")
    swarm.scale(3, 2.0)
    swarm.step(2.0)
    desired = {t.slot: t.desired_state for t in swarm.tasks()}
    assert desired == {
        1: TaskState.RUNNING,
        2: TaskState.REMOVE,
        3: TaskState.RUNNING,
        4: TaskState.RUNNING,
    }


def test_scaling_down_removes_tasks_from_the_nodes_with_the_most_copies() -> None:
    swarm = started(5)
    by_slot = {t.slot: t.id for t in swarm.tasks()}
    placement = {1: "n1", 2: "n1", 3: "n1", 4: "n2", 5: "n3"}
    for slot, node in placement.items():
        swarm.report(by_slot[slot], TaskState.RUNNING, 1.0, node=node)
    swarm.scale(3, 2.0)
    swarm.settle(2.0)
    # n1 held three copies; two of them go, the highest slots there first.
    assert swarm.live_slots() == [1, 4, 5]
    removed = {t.slot for t in swarm.tasks() if t.desired_state == TaskState.REMOVE}
    assert removed == {2, 3}


def test_scaling_down_removes_unplaced_tasks_then_the_highest_slots() -> None:
    swarm = started(5)
    by_slot = {t.slot: t.id for t in swarm.tasks()}
    swarm.report(by_slot[3], TaskState.RUNNING, 1.0, node="n1")
    swarm.report(by_slot[4], TaskState.RUNNING, 1.0, node="n2")
    swarm.scale(3, 2.0)
    swarm.step(2.0)
    # Slots 1, 2 and 5 were never placed: 5 and 2 go, 1 stays.
    assert swarm.live_slots() == [1, 3, 4]
    # A task that was never assigned is deleted at once.
    swarm.settle(2.0)
    assert sorted(t.slot for t in swarm.tasks()) == [1, 3, 4]
    # With all equal, the highest slots go.
    swarm.scale(1, 3.0)
    swarm.settle(3.0)
    desired = {t.slot: t.desired_state for t in swarm.tasks()}
    assert desired == {3: TaskState.RUNNING, 4: TaskState.REMOVE}


def test_scaled_down_tasks_are_reaped_once_stopped_and_slots_are_reused() -> None:
    swarm = started(3)
    for t in swarm.tasks():
        swarm.report(t.id, TaskState.RUNNING, 1.0, node=f"n{t.slot}")
    by_slot = {t.slot: t.id for t in swarm.tasks()}
    swarm.scale(1, 2.0)
    swarm.settle(2.0)
    assert sorted(t.slot for t in swarm.tasks()) == [1, 2, 3]
    assert swarm.live_slots() == [1]
    swarm.report(by_slot[2], TaskState.SHUTDOWN, 3.0, node="n2")
    swarm.report(by_slot[3], TaskState.FAILED, 3.0, node="n3")
    swarm.settle(3.0)
    assert sorted(t.slot for t in swarm.tasks()) == [1]
    # Nothing comes back on its own; scaling up fills the lowest free slots.
    swarm.settle(100.0)
    assert swarm.live_slots() == [1]
    swarm.scale(3, 101.0)
    swarm.settle(101.0)
    assert swarm.live_slots() == [1, 2, 3]


def test_scaling_up_fills_the_gaps_a_scale_down_left() -> None:
    swarm = started(4)
    by_slot = {t.slot: t.id for t in swarm.tasks()}
    for slot in (1, 4):
        swarm.report(by_slot[slot], TaskState.RUNNING, 1.0, node=f"n{slot}")
    swarm.scale(2, 2.0)
    swarm.settle(2.0)
    assert swarm.live_slots() == [1, 4]
    swarm.scale(3, 3.0)
    swarm.settle(3.0)
    assert swarm.live_slots() == [1, 2, 4]


def test_scaling_to_zero_and_back() -> None:
    swarm = started(2)
    swarm.scale(0, 1.0)
    swarm.settle(1.0)
    assert swarm.tasks() == []
    swarm.scale(2, 2.0)
    swarm.settle(2.0)
    assert swarm.live_slots() == [1, 2]


# --- restarts ---------------------------------------------------------------------


def test_a_failed_task_is_replaced_at_once_by_a_task_that_waits_out_the_delay() -> None:
    swarm = started(2)
    failed = swarm.live_in(1)[0]
    swarm.report(failed.id, TaskState.RUNNING, 1.0)
    swarm.report(failed.id, TaskState.FAILED, 10.0)
    swarm.step(10.0)
    assert swarm.store.get_task(failed.id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]
    # The replacement exists at once, desired READY: `task ls` shows it waiting,
    # and the scheduler may place it and the agent prepare it meanwhile.
    [replacement] = swarm.live_in(1)
    assert replacement.id != failed.id
    assert replacement.desired_state == TaskState.READY
    assert replacement.status.state == TaskState.PENDING
    assert replacement.meta.created_at == swarm.wall(10.0)
    swarm.report(replacement.id, TaskState.READY, 12.0)
    swarm.settle(14.9)
    assert swarm.store.get_task(replacement.id).desired_state == TaskState.READY  # type: ignore[union-attr]
    assert not swarm.orch.due(14.9)
    assert swarm.orch.due(15.0)
    swarm.settle(15.0)
    assert [t.id for t in swarm.live_in(1)] == [replacement.id]
    assert swarm.store.get_task(replacement.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]
    assert swarm.live_slots() == [1, 2]
    # The failed task stays as history.
    assert swarm.store.get_task(failed.id) is not None
    swarm.settle(100.0)
    assert [t.id for t in swarm.live_in(1)] == [replacement.id]


def test_restart_delays_run_on_the_monotonic_clock() -> None:
    swarm = started(1)
    failed = swarm.live()[0]
    swarm.offset += 3600.0
    swarm.report(failed.id, TaskState.FAILED, 10.0)
    swarm.step(10.0)
    [replacement] = swarm.live()
    for jump in (3600.0, -7200.0):
        swarm.offset += jump
        swarm.settle(14.9)
        assert swarm.store.get_task(replacement.id).desired_state == TaskState.READY  # type: ignore[union-attr]
    swarm.settle(15.0)
    assert swarm.store.get_task(replacement.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]


def test_a_restart_that_fails_before_its_delay_ends_waits_for_it() -> None:
    # The replacement cannot even be prepared: it is restarted again only
    # when its own delay is over, never in a tight loop.
    swarm = started(1)
    swarm.report(swarm.live()[0].id, TaskState.FAILED, 10.0)
    swarm.settle(10.0)
    [waiting] = swarm.live()
    swarm.report(waiting.id, TaskState.REJECTED, 11.0)
    swarm.settle(11.0)
    assert [t.id for t in swarm.live()] == [waiting.id]
    swarm.settle(14.9)
    assert [t.id for t in swarm.live()] == [waiting.id]
    swarm.settle(15.0)
    [again] = swarm.live()
    assert again.id != waiting.id and again.desired_state == TaskState.READY
    assert swarm.store.get_task(waiting.id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]
    swarm.settle(20.0)
    assert swarm.store.get_task(again.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("condition", "final", "restarted"),
    [
        (RestartCondition.ANY, TaskState.COMPLETE, True),
        (RestartCondition.ANY, TaskState.FAILED, True),
        (RestartCondition.ON_FAILURE, TaskState.COMPLETE, False),
        (RestartCondition.ON_FAILURE, TaskState.FAILED, True),
        (RestartCondition.ON_FAILURE, TaskState.REJECTED, True),
        # Stopped without being asked to: not a success either.
        (RestartCondition.ON_FAILURE, TaskState.SHUTDOWN, True),
        (RestartCondition.ON_FAILURE, TaskState.ORPHANED, True),
        (RestartCondition.NONE, TaskState.COMPLETE, False),
        (RestartCondition.NONE, TaskState.FAILED, False),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_restart_conditions(condition: RestartCondition, final: TaskState, restarted: bool) -> None:
    swarm = started(1, RestartPolicy(condition=condition, delay=5.0))
    task = swarm.live()[0]
    swarm.report(task.id, TaskState.RUNNING, 1.0)
    swarm.report(task.id, final, 2.0)
    swarm.settle(2.0)
    # Whatever the policy, the finished task is no longer wanted running.
    assert swarm.store.get_task(task.id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]
    swarm.settle(100.0)
    assert swarm.live_slots() == ([1] if restarted else [])


def _fail_current(swarm: Swarm, now: float) -> bool:
    """Fail the slot's live task; whether a replacement came."""
    current = swarm.live_in(1)[0]
    swarm.report(current.id, TaskState.FAILED, now)
    swarm.settle(now)
    return bool(swarm.live_in(1))


def test_max_attempts_without_a_window_is_a_lifetime_limit() -> None:
    swarm = started(1, RestartPolicy(delay=0.0, max_attempts=2))
    assert _fail_current(swarm, 1.0)
    assert _fail_current(swarm, 1000.0)
    assert not _fail_current(swarm, 100000.0)
    swarm.settle(200000.0)
    assert swarm.live_slots() == []


@pytest.mark.parametrize(("third_failure", "restarted"), [(8.0, False), (12.0, True)])
def test_max_attempts_counts_only_restarts_inside_the_window(
    third_failure: float, restarted: bool
) -> None:
    swarm = started(1, RestartPolicy(delay=0.0, max_attempts=2, window=10.0))
    assert _fail_current(swarm, 0.0)
    assert _fail_current(swarm, 5.0)
    assert _fail_current(swarm, third_failure) is restarted


def test_restart_history_window_edges() -> None:
    policy = RestartPolicy(max_attempts=1, window=10.0)
    history = RestartHistory()
    key = ("s", 1)
    assert history.allowed(policy, key, 1, 0.0)
    history.record(policy, key, 1, 0.0)
    assert not history.allowed(policy, key, 1, 9.9)
    assert history.allowed(policy, key, 1, 10.0)
    assert history.allowed(policy, ("s", 2), 1, 1.0)
    history.forget_service("s")
    assert history.allowed(policy, key, 1, 1.0)


def test_restart_history_starts_afresh_for_a_new_spec_version() -> None:
    policy = RestartPolicy(max_attempts=1)
    history = RestartHistory()
    key = ("s", 1)
    history.record(policy, key, 1, 0.0)
    assert not history.allowed(policy, key, 1, 1.0)
    assert history.allowed(policy, key, 2, 1.0)
    history.record(policy, key, 2, 1.0)
    assert not history.allowed(policy, key, 2, 2.0)


def test_restart_history_keeps_only_what_the_policy_can_look_at() -> None:
    history = RestartHistory()
    # No max attempts: nothing to count, nothing kept.
    for i in range(100):
        history.record(RestartPolicy(), ("s", 1), 1, float(i))
    assert len(history) == 0
    # A window: at most max attempts times, and none older than the window.
    windowed = RestartPolicy(max_attempts=3, window=10.0)
    for i in range(100):
        history.record(windowed, ("s", 2), 1, float(i))
    info = history.slots[("s", 2)]
    assert list(info.recent) == [97.0, 98.0, 99.0]
    assert history.allowed(windowed, ("s", 2), 1, 200.0)
    assert len(info.recent) == 0
    # No window: a count, no times.
    lifetime = RestartPolicy(max_attempts=3)
    for i in range(100):
        history.record(lifetime, ("s", 3), 1, float(i))
    assert (history.slots[("s", 3)].total, len(history.slots[("s", 3)].recent)) == (100, 0)


def test_wants_restart_by_condition() -> None:
    def finished(state: TaskState) -> Task:
        return Task(id="t", status=TaskStatus(state=state))

    on_failure = RestartPolicy(condition=RestartCondition.ON_FAILURE)
    for state in (TaskState.FAILED, TaskState.REJECTED, TaskState.ORPHANED, TaskState.SHUTDOWN):
        assert wants_restart(on_failure, finished(state)), state
    assert not wants_restart(on_failure, finished(TaskState.COMPLETE))
    assert wants_restart(RestartPolicy(), finished(TaskState.COMPLETE))
    assert not wants_restart(
        RestartPolicy(condition=RestartCondition.NONE), finished(TaskState.FAILED)
    )


def test_a_spec_change_gives_the_slots_their_attempts_back() -> None:
    swarm = started(1, RestartPolicy(delay=0.0, max_attempts=1))
    assert _fail_current(swarm, 1.0)
    assert not _fail_current(swarm, 2.0)
    swarm.update(spec(1, "serve --v2", RestartPolicy(delay=0.0, max_attempts=1)), 3.0)
    swarm.settle(3.0)
    assert swarm.live_slots() == [1]
    assert _fail_current(swarm, 4.0)
    assert not _fail_current(swarm, 5.0)


def test_restart_history_stays_bounded_under_churn() -> None:
    swarm = started(2, RestartPolicy(delay=0.0, max_attempts=3, window=5.0))
    for i in range(40):
        for slot in (1, 2):
            live = swarm.live_in(slot)
            if live:
                swarm.report(live[0].id, TaskState.FAILED, 10.0 * i)
        swarm.settle(10.0 * i)
    assert swarm.live_slots() == [1, 2]
    assert all(len(info.recent) <= 1 for info in swarm.orch.restarts.slots.values())
    assert len(swarm.orch.delayed) == 0
    swarm.scale(1, 500.0)
    swarm.settle(500.0)
    assert len(swarm.orch.restarts) == 1
    swarm.delete_service(501.0)
    swarm.settle(501.0)
    assert len(swarm.orch.restarts) == 0


def test_scaling_down_cancels_a_pending_restart() -> None:
    swarm = started(2)
    task = swarm.live_in(2)[0]
    swarm.report(task.id, TaskState.FAILED, 1.0)
    swarm.settle(1.0)
    swarm.scale(1, 2.0)
    swarm.settle(2.0)
    swarm.settle(100.0)
    assert swarm.live_slots() == [1]


@pytest.mark.parametrize("trigger", ["scale-up", "new-leader"])
def test_a_task_that_must_not_restart_stays_finished(trigger: str) -> None:
    swarm = started(1, RestartPolicy(condition=RestartCondition.NONE))
    task = swarm.live()[0]
    swarm.report(task.id, TaskState.RUNNING, 1.0)
    swarm.report(task.id, TaskState.COMPLETE, 2.0)
    swarm.settle(2.0)
    assert swarm.live_slots() == []
    if trigger == "scale-up":
        swarm.scale(2, 3.0)
        swarm.settle(3.0)
        assert swarm.live_slots() == [2]
    else:
        leader = swarm.new_leader(3.0)
        assert leader.step(swarm.store, 3.0 + swarm.base, swarm.wall(3.0)) == []


# --- spec changes and removal ------------------------------------------------------


def test_a_spec_change_replaces_every_live_task() -> None:
    swarm = started(3)
    old = {t.id for t in swarm.tasks()}
    for t in swarm.tasks():
        swarm.report(t.id, TaskState.RUNNING, 1.0)
    new_spec = replace(spec(3, command="serve --v2"), update=UpdateConfig(parallelism=0))
    swarm.update(new_spec, 2.0)
    swarm.settle(2.0)
    # Stop-first: each replacement waits, prepared, until its old task stopped.
    assert {t.desired_state for t in swarm.live()} == {TaskState.READY}
    for tid in old:
        swarm.report(tid, TaskState.SHUTDOWN, 2.5)
    swarm.settle(2.5)
    service = swarm.service()
    assert service.spec_version == 2
    for t in swarm.tasks():
        if t.id in old:
            assert t.desired_state == TaskState.SHUTDOWN
        else:
            assert t.desired_state == TaskState.RUNNING
            assert t.spec == new_spec.task
            assert t.spec_version == 2
    assert swarm.live_slots() == [1, 2, 3]
    assert not {t.id for t in swarm.live()} & old


def test_a_scale_only_change_keeps_the_running_tasks() -> None:
    swarm = started(2)
    before = {t.id for t in swarm.live()}
    swarm.scale(3, 1.0)
    swarm.settle(1.0)
    assert before < {t.id for t in swarm.live()}


def test_deleting_the_service_removes_and_reaps_its_tasks() -> None:
    swarm = started(3)
    running = swarm.live_in(1)[0]
    swarm.report(running.id, TaskState.RUNNING, 1.0)
    swarm.delete_service(2.0)
    swarm.step(2.0)
    # Unassigned tasks go at once; the running one is told to go away.
    remaining = swarm.tasks()
    assert [(t.id, t.desired_state) for t in remaining] == [(running.id, TaskState.REMOVE)]
    swarm.settle(3.0)
    assert swarm.tasks() == [swarm.store.get_task(running.id)]
    swarm.report(running.id, TaskState.SHUTDOWN, 4.0)
    swarm.settle(4.0)
    assert swarm.tasks() == []
    swarm.settle(100.0)
    assert swarm.tasks() == []


def test_deleting_the_service_cancels_pending_restarts() -> None:
    swarm = started(1)
    task = swarm.live()[0]
    swarm.report(task.id, TaskState.FAILED, 1.0)
    swarm.settle(1.0)
    swarm.delete_service(2.0)
    swarm.settle(2.0)
    swarm.settle(100.0)
    assert swarm.live() == []
    assert swarm.store.count("task") == 0


def test_a_new_leader_takes_over_without_duplicates() -> None:
    swarm = started(3)
    failed = swarm.live_in(2)[0]
    swarm.report(failed.id, TaskState.FAILED, 1.0)
    swarm.new_leader(1.0)
    swarm.settle(1.0)
    assert swarm.live_slots() == [1, 2, 3]
    assert swarm.store.get_task(failed.id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]
    [waiting] = swarm.live_in(2)
    assert waiting.desired_state == TaskState.READY
    swarm.settle(6.0)
    assert swarm.store.get_task(waiting.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]
    assert [len(swarm.live_in(slot)) for slot in (1, 2, 3)] == [1, 1, 1]


def test_a_new_leader_reconciles_a_large_store_a_chunk_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new leader looks at every service again. Each step takes at most
    DIRTY_PER_STEP of them under the store's lock, so the swarm's writes go
    on between steps; the step stays due until all are done, and a service
    made dirty during the pass is reconciled too."""
    monkeypatch.setattr(replicated, "DIRTY_PER_STEP", 4)
    swarm = Swarm()
    ids = [f"svc{n:022d}" for n in range(10)]

    def named(replicas: int, name: str) -> ServiceSpec:
        return replace(spec(replicas), annotations=Annotations(name=name))

    swarm.write([Change("create", Service(id=i, spec=named(0, i))) for i in ids], 0.0)
    swarm.settle(0.0)
    # A new leader while the services want one task each (written by a
    # leader that died before reconciling them).
    grown = [replace(swarm.store.get_service(i), spec=named(1, i)) for i in ids]  # type: ignore[type-var]
    swarm.store.apply([Change("update", s) for s in grown], swarm.store.index + 1, WALL)
    swarm.new_leader(1.0)
    created: list[int] = []
    for n in range(3):
        assert swarm.orch.due(swarm.base + 1.0)
        changes = swarm.step(1.0)
        created.append(len(changes))
        if n == 0:
            # One more service, made dirty while the pass goes on.
            late = Service(id="svc9999999999999999999999", spec=named(1, "late"))
            swarm.write([Change("create", late)], 1.0)
    assert created[0] == 4 and created[1] == 4
    swarm.settle(1.0)
    assert not swarm.orch.due(swarm.base + 1.0)
    per_service = Counter(t.service_id for t in swarm.live())
    assert per_service == Counter({**dict.fromkeys(ids, 1), late.id: 1})


@pytest.mark.parametrize("handover", [12.0, 14.9])
def test_a_restart_due_at_15_stays_due_at_15_across_a_leadership_change(
    handover: float,
) -> None:
    swarm = started(1)
    swarm.report(swarm.live()[0].id, TaskState.FAILED, 10.0)
    swarm.settle(10.0)
    [waiting] = swarm.live()
    swarm.new_leader(handover)
    swarm.settle(handover)
    swarm.settle(14.9)
    assert swarm.live() == [swarm.store.get_task(waiting.id)]
    assert waiting.desired_state == TaskState.READY
    assert not swarm.orch.due(14.9 + swarm.base)
    assert swarm.orch.due(15.0 + swarm.base)
    swarm.settle(15.0)
    assert [(t.id, t.desired_state) for t in swarm.live()] == [(waiting.id, TaskState.RUNNING)]


def test_a_new_leader_never_waits_longer_than_the_delay() -> None:
    # The wall clock was set back an hour between the restart and the handover.
    swarm = started(1)
    swarm.report(swarm.live()[0].id, TaskState.FAILED, 10.0)
    swarm.settle(10.0)
    [waiting] = swarm.live()
    swarm.offset -= 3600.0
    swarm.new_leader(12.0)
    swarm.settle(16.9)
    assert swarm.store.get_task(waiting.id).desired_state == TaskState.READY  # type: ignore[union-attr]
    swarm.settle(17.0)
    assert swarm.store.get_task(waiting.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]


def test_a_restart_overdue_at_the_handover_starts_at_once() -> None:
    swarm = started(1)
    swarm.report(swarm.live()[0].id, TaskState.FAILED, 10.0)
    swarm.settle(10.0)
    [waiting] = swarm.live()
    swarm.new_leader(40.0)
    swarm.settle(40.0)
    assert swarm.store.get_task(waiting.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]


@pytest.mark.parametrize("window", [0.0, 100.0])
def test_a_new_leader_counts_the_restarts_already_made(window: float) -> None:
    swarm = started(1, RestartPolicy(delay=0.0, max_attempts=2, window=window))
    assert _fail_current(swarm, 1.0)
    assert _fail_current(swarm, 2.0)
    swarm.new_leader(3.0)
    assert not _fail_current(swarm, 3.0)
    swarm.settle(50.0)
    assert swarm.live_slots() == []


def test_a_new_leader_counts_only_restarts_inside_the_window() -> None:
    swarm = started(1, RestartPolicy(delay=0.0, max_attempts=2, window=10.0))
    assert _fail_current(swarm, 1.0)
    assert _fail_current(swarm, 6.0)
    swarm.new_leader(7.0)
    # The restart at 1.0 has left the window by 12.0; the one at 6.0 has not.
    assert _fail_current(swarm, 12.0)
    assert not _fail_current(swarm, 13.0)


def test_a_new_leader_counts_only_the_current_spec_version() -> None:
    policy = RestartPolicy(delay=0.0, max_attempts=1)
    swarm = started(1, policy)
    assert _fail_current(swarm, 1.0)
    swarm.update(spec(1, "serve --v2", policy), 2.0)
    swarm.settle(2.0)
    swarm.new_leader(3.0)
    assert _fail_current(swarm, 3.0)
    assert not _fail_current(swarm, 4.0)


# --- task history -------------------------------------------------------------------


def _churn(swarm: Swarm, failures: int) -> list[str]:
    """Fail slot 1's task ``failures`` times; the failed task ids, oldest first."""
    failed = []
    for i in range(failures):
        current = swarm.live_in(1)[0]
        swarm.report(current.id, TaskState.FAILED, float(10 + i))
        swarm.settle(float(10 + i))
        failed.append(current.id)
    return failed


def _history(swarm: Swarm) -> set[str]:
    return {t.id for t in swarm.tasks() if t.slot == 1 and not is_live(t)}


def test_history_is_trimmed_to_five_per_slot_by_default() -> None:
    # Five tasks per slot in all: the running one and the four newest finished.
    swarm = started(1, NO_DELAY)
    failed = _churn(swarm, 8)
    assert _history(swarm) == set(failed[-4:])
    assert len(swarm.live_in(1)) == 1


def test_history_follows_the_cluster_retention_limit() -> None:
    swarm = Swarm()
    limit = OrchestrationConfig(task_history_retention_limit=2)
    swarm.write([Change("create", Cluster(id="c", spec=ClusterSpec(orchestration=limit)))], 0.0)
    swarm.create(spec(1, restart=NO_DELAY))
    swarm.settle(0.0)
    failed = _churn(swarm, 6)
    assert _history(swarm) == set(failed[-1:])


def test_history_within_the_limit_is_kept() -> None:
    swarm = started(1, NO_DELAY)
    failed = _churn(swarm, 3)
    assert _history(swarm) == set(failed)


def _limited(limit: int, restart: RestartPolicy) -> Swarm:
    swarm = Swarm()
    config = OrchestrationConfig(task_history_retention_limit=limit)
    swarm.write([Change("create", Cluster(id="c", spec=ClusterSpec(orchestration=config)))], 0.0)
    swarm.create(spec(1, restart=restart))
    swarm.settle(0.0)
    return swarm


def test_a_slot_keeps_max_attempts_plus_one_tasks_when_that_is_more() -> None:
    # Enough for a new leader to count the restarts again.
    swarm = _limited(2, RestartPolicy(delay=0.0, max_attempts=4, window=1000.0))
    failed = _churn(swarm, 4)
    assert _history(swarm) == set(failed)
    assert len([t for t in swarm.tasks() if t.slot == 1]) == 5


def test_the_history_limit_wins_when_it_is_larger_than_max_attempts() -> None:
    swarm = _limited(6, RestartPolicy(delay=0.0, max_attempts=2, window=1.0))
    failed = _churn(swarm, 8)
    assert _history(swarm) == set(failed[-5:])


def test_a_negative_history_limit_keeps_everything() -> None:
    for restart in (NO_DELAY, RestartPolicy(delay=0.0, max_attempts=100)):
        swarm = _limited(-1, restart)
        failed = _churn(swarm, 12)
        assert _history(swarm) == set(failed)


def test_a_slot_holds_at_most_the_retention_limit_in_all() -> None:
    swarm = started(1, NO_DELAY)
    _churn(swarm, 8)
    assert len([t for t in swarm.tasks() if t.slot == 1]) == 5


# --- helpers the reconcilers share ----------------------------------------------------


def test_new_task_copies_the_service() -> None:
    service = Service(id=SID, spec=spec(2), spec_version=4)
    t = new_task(service, 2, 7.0, lambda: "i" * 25)
    assert (t.id, t.service_id, t.slot, t.service_name) == ("i" * 25, SID, 2, "web")
    assert (t.spec, t.spec_version) == (service.spec.task, 4)
    assert (t.desired_state, t.status.state, t.status.timestamp) == (
        TaskState.RUNNING,
        TaskState.PENDING,
        7.0,
    )
    assert not is_dirty(t, service)
    assert is_dirty(t, Service(id=SID, spec=spec(2, command="other")))
    assert not is_dirty(t, Service(id=SID, spec=spec(9)))


# --- draining nodes ---------------------------------------------------------------


def _with_nodes(swarm: Swarm, *node_ids: str) -> None:
    swarm.write([Change("create", Node(id=n)) for n in node_ids], 0.0)


def _set_availability(
    swarm: Swarm, node_id: str, availability: NodeAvailability, now: float
) -> None:
    node = swarm.store.get_node(node_id)
    assert node is not None
    drained = replace(node, spec=NodeSpec(availability=availability))
    swarm.write([Change("update", drained)], now)


def test_tasks_on_a_drained_node_are_replaced_in_their_slots() -> None:
    swarm = started(3)
    _with_nodes(swarm, "n1", "n2")
    by_slot = {t.slot: t for t in swarm.tasks()}
    swarm.report(by_slot[1].id, TaskState.RUNNING, 1.0, node="n1")
    swarm.report(by_slot[2].id, TaskState.RUNNING, 1.0, node="n2")
    swarm.report(by_slot[3].id, TaskState.RUNNING, 1.0, node="n1")
    _set_availability(swarm, "n1", NodeAvailability.DRAIN, 2.0)
    swarm.settle(2.0)
    assert swarm.live_slots() == [1, 2, 3]
    live = {t.slot: t for t in swarm.live()}
    assert live[2].id == by_slot[2].id
    for slot in (1, 3):
        assert live[slot].id != by_slot[slot].id
        assert live[slot].node_id == ""
        assert swarm.store.get_task(by_slot[slot].id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]


def test_tasks_on_a_removed_node_are_replaced() -> None:
    swarm = started(1)
    _with_nodes(swarm, "n1")
    swarm.report(swarm.live()[0].id, TaskState.RUNNING, 1.0)
    node = swarm.store.get_node("n1")
    assert node is not None
    swarm.write([Change("delete", node)], 2.0)
    swarm.settle(2.0)
    assert len(swarm.live()) == 1
    assert swarm.live()[0].node_id == ""


def test_a_drain_and_a_scale_in_one_step_give_one_task_per_slot() -> None:
    swarm = started(2)
    _with_nodes(swarm, "n1")
    for t in swarm.tasks():
        swarm.report(t.id, TaskState.RUNNING, 1.0)
    _set_availability(swarm, "n1", NodeAvailability.DRAIN, 2.0)
    swarm.scale(3, 2.0)
    swarm.settle(2.0)
    assert swarm.live_slots() == [1, 2, 3]


# --- the invariant: one live task per slot, and the slots the service asks for ----------

actions = st.lists(
    st.tuples(
        st.one_of(
            st.tuples(st.just("scale"), st.integers(0, 4)),
            st.tuples(st.just("spec"), st.sampled_from(["a", "b"])),
            st.tuples(st.sampled_from(["run", "fail", "complete", "reject"]), st.integers(0, 5)),
            st.tuples(st.just("stopped"), st.integers(0, 5)),
            st.tuples(st.just("wait"), st.sampled_from([0.0, 1.0, 2.5, 5.0])),
            st.tuples(st.sampled_from(["drain", "activate"]), st.sampled_from(["n1", "n2"])),
            st.tuples(st.just("leader"), st.just(0)),
        ),
        # Whether the orchestrator steps right after; if not, events pile up for one step.
        st.booleans(),
    ),
    max_size=25,
)

FINAL = {
    "run": TaskState.RUNNING,
    "fail": TaskState.FAILED,
    "complete": TaskState.COMPLETE,
    "reject": TaskState.REJECTED,
}


def _check(swarm: Swarm) -> None:
    """At most one live task per slot (a restart waiting out its delay, desired
    READY, is live), and never more live slots than replicas. Which slot
    numbers stay after a scale down depends on where the tasks run."""
    replicas = swarm.service().spec.mode.replicas
    per_slot = Counter(t.slot for t in swarm.live())
    assert all(n == 1 for n in per_slot.values()), per_slot
    assert len(per_slot) <= replicas, per_slot


Script = list[tuple[tuple[str, object], bool]]


def _play(
    swarm: Swarm,
    script: Script,
    restart: RestartPolicy,
    check: Callable[[Swarm], None] = lambda swarm: None,
) -> tuple[float, set[str]]:
    """Run a script, checking after each step; the scenario time it ends at and
    the nodes left drained."""
    drained: set[str] = set()
    now = 0.0
    for (action, arg), step_now in script:
        if action in ("drain", "activate"):
            drain = action == "drain"
            (drained.add if drain else drained.discard)(str(arg))
            availability = NodeAvailability.DRAIN if drain else NodeAvailability.ACTIVE
            _set_availability(swarm, str(arg), availability, now)
            step_now = True
        elif action == "scale":
            swarm.scale(int(arg), now)  # type: ignore[call-overload]
        elif action == "spec":
            current = swarm.service().spec
            changed = spec(current.mode.replicas, str(arg), restart)
            # Every slot at once: what is checked here is restarts, not the pace.
            swarm.update(replace(changed, update=UpdateConfig(parallelism=0)), now)
        elif action == "leader":
            swarm.new_leader(now, base=swarm.base + 1000.0)
        elif action == "wait":
            now += float(arg)  # type: ignore[arg-type]
        elif action == "stopped":
            # An agent confirms that a task it was told to stop has stopped.
            going = [t for t in swarm.tasks() if not is_live(t) and not t.status.state.terminal]
            if going:
                swarm.report(going[int(arg) % len(going)].id, TaskState.SHUTDOWN, now)  # type: ignore[call-overload]
        else:
            live = [t for t in swarm.live() if t.status.state < FINAL[action]]
            if action in ("run", "complete"):
                # An agent starts only what is desired RUNNING; a restart
                # still desired READY can only fail to be prepared.
                live = [t for t in live if t.desired_state == TaskState.RUNNING]
            nodes = [n for n in ("n1", "n2") if n not in drained]
            if live and nodes:
                picked = live[int(arg) % len(live)]  # type: ignore[call-overload]
                node = picked.node_id or nodes[int(arg) % len(nodes)]  # type: ignore[call-overload]
                swarm.report(picked.id, FINAL[action], now, node=node)
        if step_now:
            swarm.step(now)
            check(swarm)
    return now, drained


@settings(max_examples=150, deadline=None)
@given(delay=st.sampled_from([0.0, 5.0]), script=actions)
def test_never_two_live_tasks_in_a_slot(delay: float, script: Script) -> None:
    restart = RestartPolicy(delay=delay)
    swarm = started(3, restart)
    _with_nodes(swarm, "n1", "n2")
    now, drained = _play(swarm, script, restart, _check)
    # Once every restart delay has passed, the service has exactly its slots.
    swarm.settle(now)
    _check(swarm)
    # A restart that failed while waiting is restarted when its delay ends,
    # and its successor waits one delay more.
    # A stop-first replacement starts at the latest OLD_TASK_TIMEOUT after its
    # old task was told to stop.
    for later in (10.0, 20.0, 10.0 + OLD_TASK_TIMEOUT):
        swarm.settle(now + later)
        _check(swarm)
    service = swarm.service()
    assert len(swarm.live_slots()) == service.spec.mode.replicas
    assert all(t.spec == service.spec.task for t in swarm.live())
    assert all(t.desired_state == TaskState.RUNNING for t in swarm.live())
    assert not any(t.node_id in drained for t in swarm.live())


def _counts(swarm: Swarm, policy: RestartPolicy, now: float) -> dict[int, tuple[int, list[float]]]:
    """Per slot, what the restart check can see: the count up to max attempts and
    the restart times inside the window, relative to the leader's clock base."""
    service = swarm.service()
    found = {}
    for (_, slot), info in swarm.orch.restarts.slots.items():
        if info.spec_version != service.spec_version:
            continue
        recent = [t - swarm.base for t in info.recent if t - swarm.base > now - policy.window]
        counted = (min(info.total, policy.max_attempts), recent)
        if counted != (0, []):
            found[slot] = counted
    return found


@settings(max_examples=150, deadline=None)
@given(window=st.sampled_from([0.0, 4.0]), delay=st.sampled_from([0.0, 2.5]), script=actions)
def test_a_new_leader_rebuilds_the_restart_counts_the_old_one_kept(
    window: float, delay: float, script: Script
) -> None:
    restart = RestartPolicy(delay=delay, max_attempts=2, window=window)
    swarm = started(3, restart)
    _with_nodes(swarm, "n1", "n2")
    now, _ = _play(swarm, script, restart)
    swarm.settle(now)
    kept = _counts(swarm, restart, now)
    swarm.new_leader(now, base=swarm.base + 1000.0)
    assert _counts(swarm, restart, now) == kept


def test_a_slot_reused_while_its_old_task_stops_starts_with_no_restarts() -> None:
    policy = RestartPolicy(delay=0.0, max_attempts=1)
    swarm = started(2, policy)
    for t in swarm.tasks():
        swarm.report(t.id, TaskState.RUNNING, 1.0, node="n1")
    swarm.scale(1, 2.0)
    swarm.settle(2.0)
    # Slot 2's task is still stopping when the service grows again.
    swarm.scale(2, 3.0)
    swarm.settle(3.0)
    assert len(swarm.live_in(2)) == 1
    for leader in (False, True):
        if leader:
            swarm.new_leader(4.0)
        assert swarm.orch.restarts.allowed(policy, (SID, 2), swarm.service().spec_version, 4.0)
    assert _fail_current_in(swarm, 2, 4.0)
    assert not _fail_current_in(swarm, 2, 5.0)


def _fail_current_in(swarm: Swarm, slot: int, now: float) -> bool:
    current = swarm.live_in(slot)[0]
    swarm.report(current.id, TaskState.FAILED, now)
    swarm.settle(now)
    return bool(swarm.live_in(slot))


def test_tasks_on_a_node_that_went_down_are_replaced() -> None:
    swarm = started(2)
    _with_nodes(swarm, "n1", "n2")
    first, second = swarm.live()
    swarm.report(first.id, TaskState.RUNNING, 1.0, node="n1")
    swarm.report(second.id, TaskState.RUNNING, 1.0, node="n2")
    node = swarm.store.get_node("n1")
    assert node is not None
    down = replace(node, status=NodeStatus(state=NodeState.DOWN, message="heartbeat failure"))
    swarm.write([Change("update", down)], 2.0)
    swarm.settle(2.0)
    live = {t.slot: t for t in swarm.live()}
    assert sorted(live) == [1, 2]
    assert live[first.slot].id != first.id and live[first.slot].node_id == ""
    assert live[second.slot].id == second.id


def test_tasks_stopped_before_reaching_a_node_are_history_and_trimmed() -> None:
    # An unschedulable service updated again and again: each update leaves the
    # old, never-placed task behind; the history limit must bound them.
    swarm = started(1)
    for i in range(8):
        current = swarm.service().spec
        task = replace(current.task, container=ContainerSpec(command=("run",), args=(str(i),)))
        swarm.update(replace(current, task=task), float(i + 1))
        swarm.settle(float(i + 1))
    slot_tasks = [t for t in swarm.tasks() if t.slot == 1]
    assert len(slot_tasks) == 5
    assert len(swarm.live_in(1)) == 1


class CountingStore(MemoryStore):
    """Counts the task reads by id."""

    def __init__(self) -> None:
        super().__init__()
        self.task_reads = 0

    def get(self, kind: Kind, obj_id: str) -> StoreObject | None:
        if kind == "task":
            self.task_reads += 1
        return super().get(kind, obj_id)


def test_the_reaper_looks_again_only_at_tasks_that_changed() -> None:
    swarm = Swarm()
    swarm.store = CountingStore()
    swarm.create(spec(20), 0.0)
    swarm.settle(0.0)
    for t in swarm.live():
        swarm.report(t.id, TaskState.RUNNING, 1.0)
    swarm.delete_service(2.0)
    swarm.settle(2.0)
    waiting = swarm.tasks()
    assert len(waiting) == 20 and all(t.desired_state == TaskState.REMOVE for t in waiting)
    # One task's agent reports it stopped: only that one is looked at again.
    store = swarm.store
    assert isinstance(store, CountingStore)
    store.task_reads = 0
    swarm.report(waiting[0].id, TaskState.SHUTDOWN, 3.0)
    reads = store.task_reads
    swarm.step(3.0)
    assert store.task_reads - reads <= 2
    assert [t.id for t in swarm.tasks()] == [t.id for t in waiting[1:]]


# --- a refused batch looks again without moving restart times --------------


def test_a_refused_batch_after_a_wall_clock_jump_keeps_the_restart_delay() -> None:
    # Same leader, same monotonic clock: its batch is refused (it lost to an
    # agent's status write) and it looks at the store again, while the wall
    # clock was set an hour forward. The waiting restart is still not due.
    swarm = started(1)
    swarm.report(swarm.live()[0].id, TaskState.FAILED, 10.0)
    swarm.settle(10.0)
    [waiting] = swarm.live()
    assert waiting.desired_state == TaskState.READY
    swarm.offset += 3600.0
    swarm.orch.reset(swarm.store, 11.0 + swarm.base, swarm.wall(11.0), resync=True)
    swarm.settle(11.0)
    assert swarm.store.get_task(waiting.id).desired_state == TaskState.READY


def test_a_refused_batch_after_a_wall_clock_jump_keeps_the_restart_window() -> None:
    swarm = started(1, RestartPolicy(delay=0.0, max_attempts=2, window=100.0))
    assert _fail_current(swarm, 1.0)
    assert _fail_current(swarm, 2.0)
    swarm.offset += 3600.0
    swarm.orch.reset(swarm.store, 3.0 + swarm.base, swarm.wall(3.0), resync=True)
    assert not _fail_current(swarm, 3.0)


def test_a_wall_clock_set_back_does_not_make_an_older_task_look_newer() -> None:
    # on-failure: A fails after the clock was set back an hour, its replacement B
    # completes cleanly. B is the slot's newest task (the store created it
    # later), so the slot is done; by wall-clock times A would look newer and
    # the slot would get a third task.
    swarm = started(1, RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=0.0))
    [a] = swarm.live()
    swarm.report(a.id, TaskState.RUNNING, 1.0)
    swarm.offset -= 3600.0
    swarm.report(a.id, TaskState.FAILED, 10.0)
    swarm.settle(10.0)
    [b] = swarm.live()
    assert b.id != a.id
    swarm.report(b.id, TaskState.RUNNING, 11.0)
    swarm.report(b.id, TaskState.COMPLETE, 12.0)
    swarm.settle(12.0)
    swarm.scale(1, 13.0)  # any service event makes it reconcile the slot
    swarm.settle(13.0)
    assert swarm.live() == []
