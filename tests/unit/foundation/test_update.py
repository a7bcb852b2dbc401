"""Rolling updates and rollbacks (orchestrator/update.py), driven through the
replicated orchestrator against a real store with a fake clock: each knob, each
failure action, the monitor window, the orders, supersession."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api.errors import FailedPrecondition, InvalidArgument
from pyswarmkit.api.objects import RestartPolicy, Task, UpdateConfig, replace
from pyswarmkit.api.states import RestartCondition, TaskState, UpdateState
from pyswarmkit.control.handlers import Handlers, Write
from pyswarmkit.control.validate import validate_update_config
from pyswarmkit.orchestrator.update import OLD_TASK_TIMEOUT
from tests.unit.orchestration.world import World
from tests.unit.orchestration.world import spec as world_spec

from .test_orchestrator import SID, Swarm, spec

pytestmark = pytest.mark.unit

NO_DELAY = RestartPolicy(delay=0.0)


def running(replicas: int, update: UpdateConfig | None = None, **kw: object) -> Swarm:
    """A service whose tasks all run on n1."""
    swarm = Swarm()
    s = spec(replicas, restart=NO_DELAY)
    swarm.create(replace(s, update=update or UpdateConfig(), **kw), 0.0)
    swarm.settle(0.0)
    agent(swarm, 0.0)
    return swarm


def agent(swarm: Swarm, now: float, fail: set[str] | None = None) -> None:
    """What the scheduler and agents do, at once: tasks desired RUNNING run (or
    fail, for commands in ``fail``), tasks told to stop stop."""
    fail = fail or set()
    for t in swarm.tasks():
        state = t.status.state
        if t.desired_state == TaskState.RUNNING and state < TaskState.RUNNING:
            bad = " ".join(t.spec.container.command) in fail
            swarm.report(t.id, TaskState.FAILED if bad else TaskState.RUNNING, now)
        elif t.desired_state == TaskState.READY and state < TaskState.READY:
            swarm.report(t.id, TaskState.READY, now)
        elif t.desired_state > TaskState.RUNNING and not state.terminal and t.node_id:
            swarm.report(t.id, TaskState.SHUTDOWN, now)


def run(swarm: Swarm, start: float, end: float, dt: float = 0.5, **kw: object) -> None:
    """Step the orchestrator and the agents from ``start`` to ``end``."""
    now = start
    while now <= end:
        swarm.settle(now)
        agent(swarm, now, **kw)  # type: ignore[arg-type]
        swarm.settle(now)
        now += dt


def change(swarm: Swarm, now: float, command: str = "serve --v2", **kw: object) -> None:
    current = swarm.service().spec
    task = replace(
        current.task, container=replace(current.task.container, command=("sh", "-c", command))
    )
    swarm.update(replace(current, task=task, **kw), now)


def status(swarm: Swarm) -> tuple[UpdateState, str]:
    st_ = swarm.service().update_status
    assert st_ is not None
    return st_.state, st_.message


def new_tasks(swarm: Swarm, command: str = "serve --v2") -> list[Task]:
    return [t for t in swarm.tasks() if t.spec.container.command[-1] == command]


def created(swarm: Swarm, command: str = "serve --v2") -> list[float]:
    return sorted(t.meta.created_at - swarm.offset for t in new_tasks(swarm, command))


# --- pace --------------------------------------------------------------------------


def test_parallelism_and_delay_pace_the_batches() -> None:
    swarm = running(6, UpdateConfig(parallelism=2, delay=10.0))
    change(swarm, 1.0)
    run(swarm, 1.0, 40.0)
    times = created(swarm)
    assert len(times) == 6
    # Two at a time, each batch once the one before ran and rested 10 s.
    assert times[1] - times[0] < 1 and times[3] - times[2] < 1 and times[5] - times[4] < 1
    assert 10 <= times[2] - times[1] < 11.5 and 10 <= times[4] - times[3] < 11.5
    state, message = status(swarm)
    assert (state, message) == (UpdateState.COMPLETED, "update completed")
    st_ = swarm.service().update_status
    assert st_ is not None
    # Done when the last batch ran, plus the 5 s monitor; no rest after the last batch.
    assert 25 <= st_.completed_at - st_.started_at < 28


def test_the_update_status_is_in_progress_until_the_monitor_window_ends() -> None:
    swarm = running(2, UpdateConfig(parallelism=0, monitor=5.0))
    change(swarm, 1.0)
    swarm.settle(1.0)
    assert status(swarm) == (UpdateState.UPDATING, "update in progress")
    run(swarm, 1.0, 5.0)
    assert status(swarm)[0] == UpdateState.UPDATING
    run(swarm, 5.5, 8.0)
    assert status(swarm) == (UpdateState.COMPLETED, "update completed")


def test_parallelism_zero_replaces_every_slot_at_once() -> None:
    swarm = running(5, UpdateConfig(parallelism=0))
    change(swarm, 1.0)
    swarm.settle(1.0)
    assert len(new_tasks(swarm)) == 5


def test_default_parallelism_is_one_slot_at_a_time() -> None:
    swarm = running(3)
    change(swarm, 1.0)
    swarm.settle(1.0)
    assert len(new_tasks(swarm)) == 1
    swarm.settle(30.0)  # nothing more until that one runs
    assert len(new_tasks(swarm)) == 1
    run(swarm, 31.0, 40.0)
    assert len(new_tasks(swarm)) == 3
    assert sorted(t.slot for t in new_tasks(swarm)) == [1, 2, 3]  # replacements keep the slot


# --- orders ------------------------------------------------------------------------


def test_stop_first_starts_the_replacement_once_the_old_task_stopped() -> None:
    swarm = running(1)
    old = swarm.live()[0]
    change(swarm, 1.0)
    swarm.settle(1.0)
    new = new_tasks(swarm)[0]
    assert new.desired_state == TaskState.READY
    assert swarm.store.get_task(old.id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]
    swarm.settle(30.0)
    assert swarm.store.get_task(new.id).desired_state == TaskState.READY  # type: ignore[union-attr]
    swarm.report(old.id, TaskState.SHUTDOWN, 31.0)
    swarm.settle(31.0)
    assert swarm.store.get_task(new.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]


def test_stop_first_gives_up_waiting_for_the_old_task_after_a_timeout() -> None:
    swarm = running(1)
    change(swarm, 1.0)
    swarm.settle(1.0)
    new = new_tasks(swarm)[0]
    swarm.settle(1.0 + OLD_TASK_TIMEOUT - 1)
    assert swarm.store.get_task(new.id).desired_state == TaskState.READY  # type: ignore[union-attr]
    assert swarm.orch.due(1.0 + OLD_TASK_TIMEOUT)
    swarm.settle(1.0 + OLD_TASK_TIMEOUT)
    assert swarm.store.get_task(new.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]


def test_start_first_never_runs_fewer_tasks_than_desired() -> None:
    swarm = running(3, UpdateConfig(parallelism=2, order="start-first"))
    change(swarm, 1.0)
    now = 1.0
    while now < 30:
        swarm.settle(now)
        up = [
            t
            for t in swarm.tasks()
            if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING
        ]
        assert len({t.slot for t in up}) == 3, now
        agent(swarm, now)
        now += 0.5
    assert len(new_tasks(swarm)) == 3
    assert all(t.spec.container.command[-1] == "serve --v2" for t in swarm.live())
    assert status(swarm)[0] == UpdateState.COMPLETED


def test_start_first_keeps_the_old_task_until_the_new_one_runs() -> None:
    swarm = running(1, UpdateConfig(order="start-first"))
    old = swarm.live()[0]
    change(swarm, 1.0)
    swarm.settle(1.0)
    new = new_tasks(swarm)[0]
    assert new.desired_state == TaskState.RUNNING
    assert swarm.store.get_task(old.id).desired_state == TaskState.RUNNING  # type: ignore[union-attr]
    swarm.report(new.id, TaskState.RUNNING, 2.0)
    swarm.settle(2.0)
    assert swarm.store.get_task(old.id).desired_state == TaskState.SHUTDOWN  # type: ignore[union-attr]


# --- failures ----------------------------------------------------------------------


def test_pause_on_failure() -> None:
    swarm = running(4)
    change(swarm, 1.0, "broken")
    run(swarm, 1.0, 3.0, fail={"sh -c broken"})
    state, message = status(swarm)
    # The first to fail is the one the update made; its restarts fail too.
    failed = min(new_tasks(swarm, "broken"), key=lambda t: t.meta.created_index)
    assert state == UpdateState.PAUSED
    assert message == f"update paused due to failure or early termination of task {failed.id}"
    # Paused: slots 3 and 4 are never touched.
    assert {t.slot for t in new_tasks(swarm, "broken")} <= {1, 2}


def test_a_paused_update_resumes_when_the_same_spec_is_sent_again() -> None:
    swarm = running(2)
    change(swarm, 1.0, "broken")
    run(swarm, 1.0, 10.0, fail={"sh -c broken"})
    assert status(swarm)[0] == UpdateState.PAUSED
    handlers = Handlers(wall=lambda: swarm.wall(11.0))
    body = {"ref": "web", "version": swarm.service().meta.version, "spec": swarm.service().spec}
    outcome = handlers.handle(swarm.store, "service.update", body)
    assert isinstance(outcome, Write)
    swarm.write(outcome.build(swarm.store), 11.0)
    assert swarm.service().update_status is None
    swarm.settle(11.0)
    assert status(swarm)[0] == UpdateState.UPDATING


def test_continue_on_failure_updates_every_slot() -> None:
    swarm = running(3, UpdateConfig(failure_action="continue"))
    change(swarm, 1.0, "broken")
    run(swarm, 1.0, 30.0, fail={"sh -c broken"})
    assert {t.slot for t in new_tasks(swarm, "broken")} == {1, 2, 3}
    assert status(swarm) == (UpdateState.COMPLETED, "update completed")


def test_max_failure_ratio_tolerates_that_share_of_failures() -> None:
    # 4 slots, ratio 0.5: two failures are tolerated, the third pauses.
    once = RestartPolicy(condition=RestartCondition.NONE)
    swarm = running(4, UpdateConfig(max_failure_ratio=0.5), task=spec(4, restart=once).task)
    change(swarm, 1.0, "broken")
    run(swarm, 1.0, 30.0, fail={"sh -c broken"})
    failed = [t for t in new_tasks(swarm, "broken") if t.status.state == TaskState.FAILED]
    assert len(failed) == 3
    assert status(swarm)[0] == UpdateState.PAUSED


def test_a_failure_after_the_monitor_window_does_not_count() -> None:
    swarm = running(2, UpdateConfig(monitor=2.0))
    change(swarm, 1.0)
    run(swarm, 1.0, 2.0)
    first = new_tasks(swarm)[0]
    swarm.report(first.id, TaskState.FAILED, 6.0)  # ran 4.5 s > 2 s
    run(swarm, 6.0, 20.0)
    assert status(swarm) == (UpdateState.COMPLETED, "update completed")


def test_a_failure_inside_the_monitor_window_counts_after_the_last_slot() -> None:
    swarm = running(1, UpdateConfig(monitor=10.0))
    change(swarm, 1.0)
    run(swarm, 1.0, 3.0)
    assert status(swarm)[0] == UpdateState.UPDATING
    new = next(t for t in new_tasks(swarm) if t.desired_state == TaskState.RUNNING)
    swarm.report(new.id, TaskState.COMPLETE, 5.0)  # an early termination
    swarm.settle(5.0)
    assert status(swarm) == (
        UpdateState.PAUSED,
        f"update paused due to failure or early termination of task {new.id}",
    )


def test_rollback_on_failure_returns_to_the_previous_spec_with_its_own_settings() -> None:
    swarm = running(
        4,
        UpdateConfig(failure_action="rollback"),
        rollback=UpdateConfig(parallelism=0, monitor=1.0),
    )
    old_task = swarm.service().spec.task
    change(swarm, 1.0, "broken")
    swarm.settle(1.0)
    run(swarm, 1.0, 3.0, fail={"sh -c broken"})
    svc = swarm.service()
    assert svc.update_status is not None
    assert svc.update_status.state in (UpdateState.ROLLBACK_STARTED, UpdateState.ROLLBACK_COMPLETED)
    assert (
        svc.update_status.message.startswith(
            "update rolled back due to failure or early termination of task "
        )
        or svc.update_status.message == "rollback completed"
    )
    assert svc.spec.task == old_task
    assert svc.spec.update.failure_action == "rollback"  # the settings stay
    run(swarm, 3.0, 12.0)
    assert status(swarm) == (UpdateState.ROLLBACK_COMPLETED, "rollback completed")
    live = swarm.live()
    assert len(live) == 4 and all(t.spec == old_task for t in live)


def test_a_failing_rollback_pauses_and_is_never_rolled_back() -> None:
    # "first" will fail once "second" is tried: the rollback to it fails too.
    swarm2 = running(2, UpdateConfig(failure_action="rollback"))
    change(swarm2, 1.0, "first")
    run(swarm2, 1.0, 20.0)
    assert status(swarm2)[0] == UpdateState.COMPLETED
    change(swarm2, 21.0, "second")
    run(swarm2, 21.0, 40.0, fail={"sh -c second", "sh -c first"})
    state, message = status(swarm2)
    assert state == UpdateState.ROLLBACK_PAUSED
    assert message.startswith("rollback paused due to failure or early termination of task ")


# --- supersession, rollback by hand, force ---------------------------------------------


def test_a_new_update_supersedes_the_one_in_progress() -> None:
    swarm = running(4, UpdateConfig(delay=100.0))
    change(swarm, 1.0, "v2")
    run(swarm, 1.0, 3.0)
    assert len(new_tasks(swarm, "v2")) == 1
    change(swarm, 4.0, "v3", update=UpdateConfig(parallelism=0))
    run(swarm, 4.0, 20.0)
    live = swarm.live()
    assert all(t.spec.container.command[-1] == "v3" for t in live)
    assert len(new_tasks(swarm, "v2")) == 1  # the v2 run took no more slots
    assert status(swarm)[0] == UpdateState.COMPLETED


def _handle(swarm: Swarm, now: float, **body: object) -> None:
    handlers = Handlers(wall=lambda: swarm.wall(now))
    svc = swarm.service()
    request = {"ref": "web", "version": svc.meta.version, "spec": svc.spec, **body}
    outcome = handlers.handle(swarm.store, "service.update", request)
    assert isinstance(outcome, Write)
    swarm.write(outcome.build(swarm.store), now)


def test_a_manual_rollback_swaps_the_specs_and_uses_the_rollback_settings() -> None:
    swarm = running(3, rollback=UpdateConfig(parallelism=0))
    old_task = swarm.service().spec.task
    change(swarm, 1.0)
    run(swarm, 1.0, 20.0)
    assert status(swarm)[0] == UpdateState.COMPLETED
    new_task_spec = swarm.service().spec.task
    _handle(swarm, 21.0, rollback=True)
    svc = swarm.service()
    assert svc.spec.task == old_task and svc.previous_spec is not None
    assert svc.previous_spec.task == new_task_spec
    assert status(swarm) == (UpdateState.ROLLBACK_STARTED, "manually requested rollback")
    swarm.settle(21.0)
    # Rollback parallelism 0: every slot at once.
    assert len([t for t in swarm.live() if t.spec == old_task]) == 3
    run(swarm, 21.0, 30.0)
    assert status(swarm) == (UpdateState.ROLLBACK_COMPLETED, "rollback completed")


def test_a_manual_rollback_needs_a_previous_spec() -> None:
    swarm = running(1)
    with pytest.raises(FailedPrecondition, match="no previous spec"):
        _handle(swarm, 1.0, rollback=True)


def test_force_replaces_every_task_of_an_unchanged_service() -> None:
    swarm = running(2, UpdateConfig(parallelism=0))
    before = {t.id for t in swarm.live()}
    current = swarm.service().spec
    forced = replace(current, task=replace(current.task, force_update=1))
    swarm.update(forced, 1.0)
    run(swarm, 1.0, 10.0)
    assert not before & {t.id for t in swarm.live()}
    assert len(swarm.live()) == 2


def test_update_replacements_are_not_counted_as_restarts() -> None:
    policy = RestartPolicy(delay=0.0, max_attempts=1)
    swarm = running(1, task=spec(1, restart=policy).task)
    change(swarm, 1.0, "v2")
    run(swarm, 1.0, 10.0)
    # The one restart allowed is still there for the new spec.
    svc = swarm.service()
    assert swarm.orch.restarts.allowed(policy, (SID, 1), svc.spec_version, 11.0)


def test_bad_update_settings_are_refused_in_one_line() -> None:
    with pytest.raises(InvalidArgument, match="update failure action must be one of"):
        validate_update_config(UpdateConfig(failure_action="explode"), "update")
    with pytest.raises(InvalidArgument, match="rollback failure action must be one of pause"):
        validate_update_config(UpdateConfig(failure_action="rollback"), "rollback")
    with pytest.raises(InvalidArgument, match="order"):
        validate_update_config(UpdateConfig(order="sideways"), "update")
    with pytest.raises(InvalidArgument, match="ratio"):
        validate_update_config(UpdateConfig(max_failure_ratio=1.5), "update")
    with pytest.raises(InvalidArgument, match="parallelism"):
        validate_update_config(UpdateConfig(parallelism=-1), "update")


# --- property: any spec changes and failures settle into one task per slot -------------

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("spec"), st.sampled_from(["a", "b", "c"])),
        st.tuples(
            st.just("settings"),
            st.tuples(
                st.integers(0, 2),
                st.sampled_from(["stop-first", "start-first"]),
                st.sampled_from(["pause", "continue", "rollback"]),
            ),
        ),
        st.tuples(st.just("scale"), st.integers(0, 4)),
        st.tuples(st.just("fail"), st.integers(0, 10)),
        st.tuples(st.just("wait"), st.sampled_from([0.5, 3.0, 11.0])),
    ),
    max_size=20,
)


@settings(max_examples=100, deadline=None)
@given(script=ACTIONS)
def test_updates_settle_into_exactly_the_replicas(script: list[tuple[str, object]]) -> None:
    swarm = running(3)
    now = 1.0
    for action, arg in script:
        current = swarm.service().spec
        if action == "spec":
            change(swarm, now, str(arg))
        elif action == "settings":
            par, order, fail = arg  # type: ignore[misc]
            update = UpdateConfig(parallelism=par, order=order, failure_action=fail, delay=1.0)
            swarm.update(replace(current, update=update), now)
        elif action == "scale":
            swarm.scale(int(arg), now)  # type: ignore[call-overload]
        elif action == "fail":
            up = [t for t in swarm.tasks() if t.status.state == TaskState.RUNNING]
            if up:
                swarm.report(up[int(arg) % len(up)].id, TaskState.FAILED, now)  # type: ignore[call-overload]
        else:
            now += float(arg)  # type: ignore[arg-type]
        swarm.settle(now)
        agent(swarm, now)
    # Run to a fixed point: agents do what they are told, time passes.
    for _ in range(40):
        now += 7.0
        swarm.settle(now)
        agent(swarm, now)
    swarm.settle(now + OLD_TASK_TIMEOUT)
    agent(swarm, now + OLD_TASK_TIMEOUT)
    swarm.settle(now + OLD_TASK_TIMEOUT)
    svc = swarm.service()
    desired = [t for t in swarm.tasks() if t.desired_state == TaskState.RUNNING]
    per_slot = Counter(t.slot for t in desired)
    assert all(n == 1 for n in per_slot.values()), per_slot
    assert len(desired) == svc.spec.mode.replicas


def test_the_service_is_written_only_when_its_status_changes() -> None:
    swarm = running(2, UpdateConfig(parallelism=0))
    change(swarm, 1.0)
    run(swarm, 1.0, 10.0)
    version = swarm.service().meta.version
    run(swarm, 10.0, 30.0)
    assert swarm.service().meta.version == version


def test_a_start_first_update_paused_mid_batch_still_stops_the_old_tasks() -> None:
    swarm = running(3, UpdateConfig(parallelism=0, order="start-first"))
    change(swarm, 1.0)
    swarm.settle(1.0)
    new = new_tasks(swarm)
    # Every new task runs and one of them fails, all before the next step.
    for t in new[1:]:
        swarm.report(t.id, TaskState.RUNNING, 2.0)
    swarm.report(new[0].id, TaskState.FAILED, 2.0)
    run(swarm, 2.0, 10.0)
    assert status(swarm)[0] == UpdateState.PAUSED
    desired = Counter(t.slot for t in swarm.tasks() if t.desired_state == TaskState.RUNNING)
    assert desired == {1: 1, 2: 1, 3: 1}


def test_a_new_leader_carries_an_update_on_to_completion() -> None:
    swarm = running(4, UpdateConfig(delay=5.0))
    change(swarm, 1.0)
    run(swarm, 1.0, 8.0)
    assert 1 <= len(new_tasks(swarm)) < 4
    swarm.new_leader(8.5)
    run(swarm, 8.5, 40.0)
    assert len(new_tasks(swarm)) == 4
    assert all(t.spec.container.command[-1] == "serve --v2" for t in swarm.live())
    assert status(swarm) == (UpdateState.COMPLETED, "update completed")


def test_a_refused_batch_is_decided_again() -> None:
    swarm = running(2)
    change(swarm, 1.0)
    # The orchestrator's first batch (a new task, the old one stopped, the
    # status) is lost: the store refused it.
    changes = swarm.orch.step(swarm.store, 1.0, swarm.wall(1.0))
    assert changes
    swarm.orch.reset(swarm.store, 1.0, swarm.wall(1.0), resync=True)
    run(swarm, 1.5, 20.0)
    assert len([t for t in swarm.live() if t.spec.container.command[-1] == "serve --v2"]) == 2
    assert status(swarm) == (UpdateState.COMPLETED, "update completed")


# --- global services update with the same machinery, slots keyed by node -----------


def test_a_global_service_updates_one_node_at_a_time_with_a_delay() -> None:
    w = World()
    for name in ("n1", "n2", "n3"):
        w.add_node(name)
    paced = UpdateConfig(parallelism=1, delay=10.0)
    sid = w.create(replace(world_spec("agent", "global"), update=paced))
    w.settle()
    w.run_pending()
    w.settle()
    w.update(sid, replace(world_spec("agent", "global", command="v2"), update=paced), 1.0)
    started: dict[str, float] = {}
    now = 1.0
    while now < 60:
        w.settle(now)
        w.stop_unwanted(now)
        w.settle(now)
        w.run_pending(now)
        for t in w.tasks(sid):
            if t.spec.container.command[-1] == "v2" and t.status.state == TaskState.RUNNING:
                started.setdefault(t.node_id, now)
        now += 0.5
    # One node at a time, each 10 s after the one before ran; the new task
    # keeps its node.
    assert sorted(started) == ["n1", "n2", "n3"]
    times = sorted(started.values())
    assert 10 <= times[1] - times[0] <= 11 and 10 <= times[2] - times[1] <= 11
    svc = w.service(sid)
    assert svc.update_status is not None and svc.update_status.state == UpdateState.COMPLETED
    assert sorted(t.node_id for t in w.wanted(sid)) == ["n1", "n2", "n3"]
