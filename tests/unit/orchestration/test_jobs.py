"""Replicated and global jobs: run to completion, at most max-concurrent at a
time, failures per the restart policy, re-run on update."""

from __future__ import annotations

import pytest

from pyswarmkit.api.objects import RestartPolicy
from pyswarmkit.api.states import NodeAvailability, RestartCondition, TaskState
from pyswarmkit.orchestrator.jobs import JobsOrchestrator
from tests.unit.orchestration.world import ON_FAILURE, WALL, World, spec

pytestmark = pytest.mark.unit


def job(total: int, concurrent: int = 0, restart: RestartPolicy = ON_FAILURE) -> World:
    w = World()
    w.add_node("n1")
    w.add_node("n2")
    return w


def running(w: World, sid: str) -> list[str]:
    return [
        t.id
        for t in w.tasks(sid)
        if t.desired_state <= TaskState.RUNNING and not t.status.state.terminal
    ]


def completed(w: World, sid: str) -> int:
    s = w.service(sid)
    return sum(
        1
        for t in w.tasks(sid)
        if t.status.state == TaskState.COMPLETE and t.job_iteration == s.job_iteration
    )


def test_ten_completions_three_at_a_time() -> None:
    w = job(10, 3)
    sid = w.create(spec("batch", "replicated-job", total=10, concurrent=3, restart=ON_FAILURE))
    w.settle()
    now = 0.0
    most = 0
    while completed(w, sid) < 10:
        now += 1
        assert now < 50, "the job never ends"
        w.run_pending(now, node="n1")
        live = running(w, sid)
        most = max(most, len(live))
        assert len(live) <= 3
        # One finishes at a time; its slot is done and another starts.
        w.report(live[0], TaskState.COMPLETE, now)
        w.settle(now)
    assert most == 3
    assert running(w, sid) == []
    tasks = w.tasks(sid)
    assert len(tasks) == 10
    assert sorted(t.slot for t in tasks) == list(range(1, 11))
    # Done tasks are desired COMPLETE (as SwarmKit shows them) and nothing restarts.
    assert all(t.desired_state == TaskState.COMPLETE for t in tasks)
    index = w.store.index
    w.settle(now + 100)
    assert w.store.index == index


def test_max_concurrent_zero_runs_them_all_at_once() -> None:
    w = job(4)
    sid = w.create(spec("batch", "replicated-job", total=4))
    w.settle()
    assert len(running(w, sid)) == 4


def test_a_failed_task_restarts_in_its_slot_and_a_slot_out_of_attempts_stays_failed() -> None:
    w = job(2)
    policy = RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=0.0, max_attempts=2)
    sid = w.create(spec("batch", "replicated-job", total=2, concurrent=1, restart=policy))
    w.settle()
    for attempt in range(3):
        w.run_pending(attempt, node="n1")
        (tid,) = running(w, sid)
        assert w.store.get_task(tid).slot == 1  # type: ignore[union-attr]
        w.report(tid, TaskState.FAILED, attempt)
        w.settle(attempt)
    # Slot 1 failed for good after 2 restarts; slot 2 runs now.
    w.run_pending(10, node="n1")
    (tid,) = running(w, sid)
    assert w.store.get_task(tid).slot == 2  # type: ignore[union-attr]
    w.report(tid, TaskState.COMPLETE, 11)
    w.settle(11)
    assert running(w, sid) == []
    assert completed(w, sid) == 1
    assert len(w.tasks(sid)) == 4


def test_restart_condition_none_leaves_a_failure_alone() -> None:
    w = job(1)
    none = RestartPolicy(condition=RestartCondition.NONE, delay=0.0)
    sid = w.create(spec("batch", "replicated-job", total=1, restart=none))
    w.settle()
    w.run_pending(0, node="n1")
    w.report(running(w, sid)[0], TaskState.FAILED, 1)
    w.settle(1)
    assert running(w, sid) == [] and len(w.tasks(sid)) == 1


def test_even_restart_condition_any_never_restarts_a_completed_task() -> None:
    w = job(1)
    any_ = RestartPolicy(condition=RestartCondition.ANY, delay=0.0)
    sid = w.create(spec("batch", "replicated-job", total=2, concurrent=2, restart=any_))
    w.settle()
    w.run_pending(0, node="n1")
    for tid in running(w, sid):
        w.report(tid, TaskState.COMPLETE, 1)
    w.settle(1)
    assert running(w, sid) == [] and len(w.tasks(sid)) == 2


def test_a_restart_waits_out_its_delay() -> None:
    w = job(1)
    policy = RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=3.0)
    sid = w.create(spec("batch", "replicated-job", total=1, restart=policy))
    w.settle()
    w.run_pending(0, node="n1")
    w.report(running(w, sid)[0], TaskState.FAILED, 1.0)
    w.settle(1.0)
    (waiting,) = running(w, sid)
    assert w.store.get_task(waiting).desired_state == TaskState.READY  # type: ignore[union-attr]
    w.settle(3.9)
    assert w.store.get_task(waiting).desired_state == TaskState.READY  # type: ignore[union-attr]
    w.settle(4.0)
    assert w.store.get_task(waiting).desired_state == TaskState.RUNNING  # type: ignore[union-attr]


def test_an_update_runs_the_job_again() -> None:
    w = job(3)
    s = spec("batch", "replicated-job", total=3, concurrent=2)
    sid = w.create(s)
    w.settle()
    w.run_pending(0, node="n1")
    first = running(w, sid)
    w.report(first[0], TaskState.COMPLETE, 1)
    w.settle(1)
    assert completed(w, sid) == 1
    # `service update --force` (any update of a job): the next iteration.
    w.update(sid, spec("batch", "replicated-job", total=3, concurrent=2, command="again"))
    w.settle(2)
    assert w.service(sid).job_iteration == 1
    # The old iteration's running task is removed, its completed one kept.
    old = w.store.get_task(first[1])
    assert old is None or old.desired_state == TaskState.REMOVE
    assert w.store.get_task(first[0]) is not None
    assert completed(w, sid) == 0
    new = running(w, sid)
    assert len(new) == 2
    assert all(w.store.get_task(t).job_iteration == 1 for t in new)  # type: ignore[union-attr]


def test_a_task_on_a_drained_node_runs_again_elsewhere() -> None:
    w = job(1)
    sid = w.create(spec("batch", "replicated-job", total=1))
    w.settle()
    w.run_pending(0, node="n1")
    (first,) = running(w, sid)
    w.set_availability("n1", NodeAvailability.DRAIN)
    w.settle(1)
    (again,) = running(w, sid)
    assert again != first
    assert w.store.get_task(again).slot == 1  # type: ignore[union-attr]


def test_a_new_leader_carries_on_without_running_more() -> None:
    w = job(6)
    sid = w.create(spec("batch", "replicated-job", total=6, concurrent=2))
    w.settle()
    w.run_pending(0, node="n1")
    w.report(running(w, sid)[0], TaskState.COMPLETE, 1)
    w.jobs = JobsOrchestrator(id_gen=w.jobs.id_gen)
    w.jobs.reset(w.store, 50.0, WALL + 1)
    w.settle(1)
    assert len(running(w, sid)) == 2
    assert completed(w, sid) == 1


# --- global jobs ------------------------------------------------------------------


def test_a_global_job_runs_once_on_every_node() -> None:
    w = job(0)
    w.add_node("n3")
    w.set_availability("n3", NodeAvailability.PAUSE)
    sid = w.create(spec("once", "global-job"))
    w.settle()
    assert sorted(w.store.get_task(t).node_id for t in running(w, sid)) == ["n1", "n2"]  # type: ignore[union-attr]
    w.run_pending(0)
    for tid in running(w, sid):
        w.report(tid, TaskState.COMPLETE, 1)
    w.settle(1)
    assert running(w, sid) == [] and completed(w, sid) == 2
    # A node joining later runs it too; the others do not run it again.
    w.add_node("n4")
    w.settle(2)
    assert [w.store.get_task(t).node_id for t in running(w, sid)] == ["n4"]  # type: ignore[union-attr]


def test_a_global_job_task_failing_restarts_on_its_node() -> None:
    w = job(0)
    sid = w.create(spec("once", "global-job", restart=ON_FAILURE))
    w.settle()
    w.run_pending(0)
    on_n1 = next(t for t in running(w, sid) if w.store.get_task(t).node_id == "n1")  # type: ignore[union-attr]
    w.report(on_n1, TaskState.FAILED, 1)
    w.settle(1)
    nodes = sorted(w.store.get_task(t).node_id for t in running(w, sid))  # type: ignore[union-attr]
    assert nodes == ["n1", "n2"]
    assert on_n1 not in running(w, sid)


def test_a_global_job_leaves_a_drained_node() -> None:
    w = job(0)
    sid = w.create(spec("once", "global-job"))
    w.settle()
    w.run_pending(0)
    w.set_availability("n1", NodeAvailability.DRAIN)
    w.settle(1)
    assert [w.store.get_task(t).node_id for t in running(w, sid)] == ["n2"]  # type: ignore[union-attr]
