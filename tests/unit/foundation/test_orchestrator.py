"""The replicated orchestrator, driven against a real store the way its actor drives it:
step, apply the changes at the next index, feed the committed batch back."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api.objects import (
    Annotations,
    Cluster,
    ClusterSpec,
    ContainerSpec,
    Node,
    NodeSpec,
    NodeStatus,
    OrchestrationConfig,
    RestartPolicy,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
    replace,
)
from pyswarmkit.api.states import NodeAvailability, NodeState, RestartCondition, TaskState
from pyswarmkit.orchestrator.replicated import ReplicatedOrchestrator
from pyswarmkit.orchestrator.restart import RestartHistory, wants_restart
from pyswarmkit.orchestrator.tasks import is_dirty, is_live, new_task
from pyswarmkit.store import Change, EventBatch, MemoryStore

pytestmark = pytest.mark.unit

SID = "svc000000000000000000000a"
NO_DELAY = RestartPolicy(delay=0.0)


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

    def write(self, changes: list[Change], now: float) -> EventBatch:
        batch = self.store.apply(changes, self.store.index + 1, now)
        self.batches.append(batch)
        self.orch.observe(batch)
        return batch

    def step(self, now: float) -> list[Change]:
        changes = self.orch.step(self.store, now)
        if changes:
            self.write(changes, now)
        return changes

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
        updated = replace(
            current, spec=s, previous_spec=current.spec, spec_version=current.spec_version + bump
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
        status = TaskStatus(timestamp=now, state=state)
        self.write([Change("update", replace(t, node_id=node, status=status))], now)


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
        assert t.status.timestamp == 10.0
    assert len({t.id for t in tasks}) == 3


def test_repeated_steps_change_nothing_once_settled() -> None:
    swarm = started(3)
    index = swarm.store.index
    for now in (1.0, 2.0, 100.0):
        assert swarm.orch.step(swarm.store, now) == []
    assert swarm.store.index == index


def test_scaling_up_adds_the_missing_slots() -> None:
    swarm = started(3)
    before = {t.id for t in swarm.tasks()}
    swarm.scale(5, 1.0)
    swarm.settle(1.0)
    assert swarm.live_slots() == [1, 2, 3, 4, 5]
    assert before <= {t.id for t in swarm.tasks()}


def test_scaling_down_removes_the_highest_slots() -> None:
    swarm = started(5)
    by_slot = {t.slot: t.id for t in swarm.tasks()}
    swarm.report(by_slot[3], TaskState.RUNNING, 1.0)
    swarm.report(by_slot[4], TaskState.RUNNING, 1.0)
    swarm.scale(2, 2.0)
    swarm.step(2.0)
    desired = {t.slot: t.desired_state for t in swarm.tasks()}
    assert desired == {
        1: TaskState.RUNNING,
        2: TaskState.RUNNING,
        3: TaskState.REMOVE,
        4: TaskState.REMOVE,
        5: TaskState.REMOVE,
    }
    # A task that was never assigned goes at once; running ones wait for their agent.
    swarm.settle(2.0)
    assert sorted(t.slot for t in swarm.tasks()) == [1, 2, 3, 4]
    swarm.report(by_slot[3], TaskState.SHUTDOWN, 3.0)
    swarm.settle(3.0)
    assert sorted(t.slot for t in swarm.tasks()) == [1, 2, 4]
    swarm.report(by_slot[4], TaskState.FAILED, 4.0)
    swarm.settle(4.0)
    assert sorted(t.slot for t in swarm.tasks()) == [1, 2]
    # Nothing comes back for the removed slots.
    swarm.settle(100.0)
    assert swarm.live_slots() == [1, 2]


def test_scaling_to_zero_and_back() -> None:
    swarm = started(2)
    swarm.scale(0, 1.0)
    swarm.settle(1.0)
    assert swarm.tasks() == []
    swarm.scale(2, 2.0)
    swarm.settle(2.0)
    assert swarm.live_slots() == [1, 2]


# --- restarts ---------------------------------------------------------------------


def test_a_failed_task_is_replaced_in_its_slot_after_the_restart_delay() -> None:
    swarm = started(2)
    failed = swarm.live_in(1)[0]
    swarm.report(failed.id, TaskState.RUNNING, 1.0)
    swarm.report(failed.id, TaskState.FAILED, 10.0)
    swarm.step(10.0)
    assert swarm.store.get_task(failed.id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]
    assert swarm.live_slots() == [2]
    swarm.settle(14.9)
    assert swarm.live_slots() == [2]
    assert not swarm.orch.due(14.9)
    assert swarm.orch.due(15.0)
    swarm.settle(15.0)
    assert swarm.live_slots() == [1, 2]
    replacement = swarm.live_in(1)[0]
    assert replacement.id != failed.id
    assert replacement.status.state == TaskState.PENDING
    # The failed task stays as history.
    assert swarm.store.get_task(failed.id) is not None


@pytest.mark.parametrize(
    ("condition", "final", "restarted"),
    [
        (RestartCondition.ANY, TaskState.COMPLETE, True),
        (RestartCondition.ANY, TaskState.FAILED, True),
        (RestartCondition.ON_FAILURE, TaskState.COMPLETE, False),
        (RestartCondition.ON_FAILURE, TaskState.FAILED, True),
        (RestartCondition.ON_FAILURE, TaskState.REJECTED, True),
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
    assert history.allowed(policy, key, 0.0)
    history.record(key, 0.0)
    assert not history.allowed(policy, key, 9.9)
    assert history.allowed(policy, key, 10.0)
    assert history.allowed(policy, ("s", 2), 1.0)
    history.forget_service("s")
    assert history.allowed(policy, key, 1.0)


def test_wants_restart_by_condition() -> None:
    def finished(state: TaskState) -> Task:
        return Task(id="t", status=TaskStatus(state=state))

    on_failure = RestartPolicy(condition=RestartCondition.ON_FAILURE)
    assert wants_restart(on_failure, finished(TaskState.FAILED))
    assert wants_restart(on_failure, finished(TaskState.ORPHANED))
    assert not wants_restart(on_failure, finished(TaskState.COMPLETE))
    assert not wants_restart(on_failure, finished(TaskState.SHUTDOWN))
    assert wants_restart(RestartPolicy(), finished(TaskState.COMPLETE))
    assert not wants_restart(
        RestartPolicy(condition=RestartCondition.NONE), finished(TaskState.FAILED)
    )


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
        leader = ReplicatedOrchestrator()
        leader.reset(swarm.store)
        assert leader.step(swarm.store, 3.0) == []


# --- spec changes and removal ------------------------------------------------------


def test_a_spec_change_replaces_every_live_task() -> None:
    swarm = started(3)
    old = {t.id for t in swarm.tasks()}
    for t in swarm.tasks():
        swarm.report(t.id, TaskState.RUNNING, 1.0)
    new_spec = spec(3, command="serve --v2")
    swarm.update(new_spec, 2.0)
    swarm.settle(2.0)
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
    leader = ReplicatedOrchestrator(id_gen=lambda: "x" * 25)
    swarm.orch = leader
    leader.reset(swarm.store)
    swarm.settle(1.0)
    assert swarm.live_slots() == [1, 3]
    assert swarm.store.get_task(failed.id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]
    swarm.settle(6.0)
    assert swarm.live_slots() == [1, 2, 3]


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
    replicas = swarm.service().spec.mode.replicas
    per_slot = Counter(t.slot for t in swarm.live())
    assert all(n == 1 for n in per_slot.values()), per_slot
    assert set(per_slot) <= set(range(1, replicas + 1))


@settings(max_examples=150, deadline=None)
@given(delay=st.sampled_from([0.0, 5.0]), script=actions)
def test_never_two_live_tasks_in_a_slot(
    delay: float, script: list[tuple[tuple[str, object], bool]]
) -> None:
    restart = RestartPolicy(delay=delay)
    swarm = started(3, restart)
    _with_nodes(swarm, "n1", "n2")
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
            swarm.update(spec(current.mode.replicas, str(arg), restart), now)
        elif action == "wait":
            now += float(arg)  # type: ignore[arg-type]
        elif action == "stopped":
            # An agent confirms that a task it was told to stop has stopped.
            going = [t for t in swarm.tasks() if not is_live(t) and not t.status.state.terminal]
            if going:
                swarm.report(going[int(arg) % len(going)].id, TaskState.SHUTDOWN, now)  # type: ignore[call-overload]
        else:
            live = [t for t in swarm.live() if t.status.state < FINAL[action]]
            nodes = [n for n in ("n1", "n2") if n not in drained]
            if live and nodes:
                picked = live[int(arg) % len(live)]  # type: ignore[call-overload]
                node = picked.node_id or nodes[int(arg) % len(nodes)]  # type: ignore[call-overload]
                swarm.report(picked.id, FINAL[action], now, node=node)
        if step_now:
            swarm.step(now)
            _check(swarm)
    # Once every restart delay has passed, the service has exactly its slots.
    swarm.settle(now)
    _check(swarm)
    swarm.settle(now + 10.0)
    _check(swarm)
    service = swarm.service()
    assert swarm.live_slots() == list(range(1, service.spec.mode.replicas + 1))
    assert all(t.spec == service.spec.task for t in swarm.live())
    assert not any(t.node_id in drained for t in swarm.live())


def test_tasks_on_a_node_that_went_down_are_replaced() -> None:
    swarm = started(2)
    _with_nodes(swarm, "n1", "n2")
    first, second = swarm.live()
    swarm.report(first.id, TaskState.RUNNING, 1.0, node="n1")
    swarm.report(second.id, TaskState.RUNNING, 1.0, node="n2")
    node = swarm.store.get_node("n1")
    assert node is not None
    down = replace(
        node, status=NodeStatus(state=NodeState.DOWN, message="heartbeat failure")
    )
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
        task = replace(
            current.task, container=ContainerSpec(command=("run",), args=(str(i),))
        )
        swarm.update(replace(current, task=task), float(i + 1))
        swarm.settle(float(i + 1))
    slot_tasks = [t for t in swarm.tasks() if t.slot == 1]
    assert len(slot_tasks) == 5
    assert len(swarm.live_in(1)) == 1
