"""What `service create/update` shows while a service converges, and when it
says converged or failed."""

from __future__ import annotations

from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    Meta,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
    UpdateStatus,
    replace,
)
from pyswarmkit.api.states import TaskState, UpdateState
from pyswarmkit.control.progress import STEPS, view

S = TaskState


def svc(replicas: int = 3, kind: str = "replicated", version: int = 1) -> Service:
    task_spec = (
        TaskSpec() if version == 1 else TaskSpec(container=ContainerSpec(image=f"v{version}"))
    )
    spec = ServiceSpec(
        annotations=Annotations(name="web"),
        mode=ServiceMode(kind, replicas),  # type: ignore[arg-type]
        task=task_spec,
    )
    return Service(id="s1", spec=spec, spec_version=version)


def task(
    slot: int,
    state: TaskState,
    created: int = 10,
    err: str = "",
    node: str = "n1",
    version: int = 1,
    desired: TaskState = S.RUNNING,
) -> Task:
    return Task(
        id=f"t{slot}-{created}",
        service_id="s1",
        slot=slot,
        node_id=node,
        desired_state=desired,
        spec_version=version,
        # An older spec version: the task was made from another spec.
        spec=TaskSpec() if version == 1 else TaskSpec(container=ContainerSpec(image=f"v{version}")),
        status=TaskStatus(state=state, err=err),
        meta=Meta(version=created, created_index=created),
    )


def test_slots_show_their_step_and_convergence_is_every_slot_running() -> None:
    tasks = [task(1, S.RUNNING), task(2, S.STARTING), task(3, S.PENDING)]
    v = view(svc(), tasks, {"n1": "node-1"}, since_index=0)
    assert v.outcome == "converging" and (v.done, v.total) == (1, 3)
    assert [(x.label, x.text) for x in v.lines] == [
        ("1/3", "running"),
        ("2/3", "starting"),
        ("3/3", "pending"),
    ]
    assert [x.step for x in v.lines] == [len(STEPS), 7, 2]
    lines = v.render()
    assert lines[0] == "overall progress: 1 out of 3 tasks"
    assert lines[1].startswith("1/3: running ") and lines[1].endswith("=>]")
    done = view(svc(), [task(i, S.RUNNING) for i in (1, 2, 3)], {}, since_index=0)
    assert done.outcome == "converged"


def test_an_older_specs_task_does_not_count_during_an_update() -> None:
    tasks = [task(1, S.RUNNING, version=1), task(2, S.RUNNING, version=2)]
    v = view(svc(2, version=2), tasks, {}, since_index=0)
    assert v.done == 1 and v.outcome == "converging"
    assert v.lines[0].step == 0


def test_a_slot_failing_again_and_again_fails_the_command_with_its_error() -> None:
    tasks = [task(1, S.RUNNING)] + [
        task(2, S.FAILED, created=20 + i, err="exit status 1", desired=S.SHUTDOWN) for i in range(3)
    ]
    v = view(svc(2), tasks, {}, since_index=5)
    assert v.outcome == "failed" and v.reason == "exit status 1"
    # Failures from before the command began do not count.
    assert view(svc(2), tasks, {}, since_index=50).outcome == "converging"


def test_every_slot_failed_and_none_running_fails_at_once() -> None:
    tasks = [task(1, S.REJECTED, created=20, err="executable file not found", desired=S.SHUTDOWN)]
    v = view(svc(1), tasks, {}, since_index=5)
    assert v.outcome == "failed" and "not found" in v.reason
    assert v.lines[0].text == "rejected: executable file not found"


def test_a_paused_or_rolled_back_update_fails_with_its_message() -> None:
    paused = replace(
        svc(1, version=2),
        update_status=UpdateStatus(UpdateState.PAUSED, message="update paused due to failure"),
    )
    v = view(paused, [task(1, S.RUNNING)], {}, since_index=0)
    assert v.outcome == "failed" and v.reason == "update paused: update paused due to failure"
    back = replace(paused, update_status=UpdateStatus(UpdateState.ROLLBACK_COMPLETED, message="x"))
    assert view(back, [task(1, S.RUNNING)], {}, 0).reason == "update rolled back: x"
    updating = replace(paused, update_status=UpdateStatus(UpdateState.UPDATING))
    assert view(updating, [task(1, S.RUNNING, version=2)], {}, 0).outcome == "converging"


def test_a_global_service_has_a_line_per_node_it_runs_on() -> None:
    tasks = [
        task(0, S.RUNNING, node="n1"),
        task(0, S.ASSIGNED, node="n2"),
        task(0, S.SHUTDOWN, node="n3", desired=S.SHUTDOWN),
    ]
    v = view(svc(0, "global"), tasks, {"n1": "node-1", "n2": "node-2"}, 0)
    assert [x.label for x in v.lines] == ["node-1", "node-2"]
    assert (v.done, v.total) == (1, 2)


def test_a_rollback_the_command_asked_for_converges_when_it_completes() -> None:
    done = replace(
        svc(1, version=3),
        update_status=UpdateStatus(UpdateState.ROLLBACK_COMPLETED, message="rollback completed"),
    )
    tasks = [task(1, S.RUNNING, version=3)]
    assert view(done, tasks, {}, 0, rollback=True).outcome == "converged"
    assert view(done, tasks, {}, 0).outcome == "failed"


def test_a_later_change_supersedes_the_one_watched() -> None:
    later = svc(1, version=3)
    v = view(later, [task(1, S.RUNNING, version=3)], {}, 0, spec_version=2)
    assert v.outcome == "failed" and "superseded" in v.reason


def test_a_completed_update_counts_the_slots_it_left_alone() -> None:
    # A paused node's task keeps the old spec; the update completed without it.
    done = replace(svc(0, "global", version=2), update_status=UpdateStatus(UpdateState.COMPLETED))
    tasks = [task(0, S.RUNNING, node="n1", version=2), task(0, S.RUNNING, node="n2", version=1)]
    v = view(done, tasks, {"n1": "node-1", "n2": "node-2"}, 0)
    assert v.outcome == "converged"
    assert [x.text for x in v.lines] == ["running", ""]


def test_the_restart_policy_says_when_a_failing_slot_is_given_up() -> None:
    from pyswarmkit.api.objects import RestartPolicy
    from pyswarmkit.api.states import RestartCondition

    base = svc(1, "replicated-job")
    policy = RestartPolicy(condition=RestartCondition.ON_FAILURE, max_attempts=2)
    job = replace(base, spec=replace(base.spec, task=replace(base.spec.task, restart=policy)))
    job = replace(job, spec=replace(job.spec, mode=ServiceMode("replicated-job", 0, 0, 1)))
    failed = [task(1, S.FAILED, created=20 + i, err="exit 3", desired=S.SHUTDOWN) for i in range(2)]
    assert view(job, failed, {}, 5).outcome == "converging"  # one attempt is left
    third = [*failed, task(1, S.FAILED, created=30, err="exit 3", desired=S.SHUTDOWN)]
    assert view(job, third, {}, 5).outcome == "failed"


def test_lines_fit_the_terminal() -> None:
    err = "starting 'no-such-command' failed: No such file or directory" * 2
    tasks = [task(1, S.FAILED, created=20, err=err, desired=S.SHUTDOWN), task(2, S.ASSIGNED)]
    lines = view(svc(2), tasks, {}, 50).render(79)
    assert all(len(line) <= 79 for line in lines), lines
