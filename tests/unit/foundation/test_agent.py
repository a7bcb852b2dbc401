"""The worker-side agent core: session upkeep, the task state machine, and its reports."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.agent.core import REGISTER_RETRY, Agent, Command, Effects, Message
from pyswarmkit.api.objects import NodeDescription, Task, TaskStatus, replace
from pyswarmkit.api.states import TaskState

pytestmark = pytest.mark.unit

DESC = NodeDescription(hostname="worker-1")


def agent() -> Agent:
    return Agent(DESC, random.Random(0))


def connected(now: float = 0.0, period: float = 5.0) -> Agent:
    a = agent()
    a.tick(now)
    a.registered("s1", period, now)
    return a


def task(tid: str = "t1", desired: TaskState = TaskState.RUNNING) -> Task:
    return Task(
        id=tid,
        node_id="n1",
        desired_state=desired,
        status=TaskStatus(state=TaskState.ASSIGNED, message="scheduler assigned task to node"),
    )


def assign(a: Agent, *tasks: Task, now: float = 1.0, full: bool = False) -> Effects:
    return a.assignments(a.session_id, full, list(tasks), [], now)


def reports(fx: Effects) -> dict[str, TaskStatus]:
    msgs = [m for m in fx.messages if m.method == "update_task_status"]
    assert len(msgs) <= 1, "reports go out once per tick"
    return dict(msgs[0].body["updates"]) if msgs else {}


def states(fx: Effects) -> dict[str, TaskState]:
    return {tid: s.state for tid, s in reports(fx).items()}


def ops(fx: Effects) -> list[tuple[str, str]]:
    return [(c.op, c.task.id) for c in fx.commands]


def running(a: Agent, tid: str = "t1", pid: int = 42) -> None:
    assign(a, task(tid))
    a.prepared(tid, "", 2.0)
    a.started(tid, pid, "", 3.0)
    a.tick(3.0)


# --- session ---------------------------------------------------------------------


def test_before_a_session_the_agent_registers_and_retries() -> None:
    a = agent()
    first = a.tick(0.0)
    assert first.messages == [Message("register", {"description": DESC, "addr": ""})]
    assert first.commands == []
    assert a.tick(1.0).messages == []
    assert a.tick(REGISTER_RETRY - 0.01).messages == []
    assert [m.method for m in a.tick(REGISTER_RETRY).messages] == ["register"]
    assert a.tick(REGISTER_RETRY + 1.0).messages == []


def test_after_registering_the_agent_heartbeats_at_about_the_period() -> None:
    a = connected(now=0.0, period=5.0)
    beats = []
    for i in range(1, 1001):
        now = i / 10
        for m in a.tick(now).messages:
            assert m.method == "heartbeat", "no more registering once a session is open"
            assert m.body == {"session_id": "s1"}
            beats.append(now)
    gaps = [b - a for a, b in zip([0.0, *beats], beats, strict=False)]
    assert all(4.5 - 1e-9 <= g <= 5.6 + 1e-9 for g in gaps), gaps
    assert 18 <= len(beats) <= 22
    # The jitter spreads beats out rather than beating at exactly the period.
    assert len({round(g, 1) for g in gaps}) > 1


def test_the_period_comes_from_the_dispatcher() -> None:
    a = connected(now=0.0, period=1.0)
    beats = [i / 10 for i in range(1, 101) if a.tick(i / 10).messages]
    assert 9 <= len(beats) <= 11


def test_a_lost_session_registers_again_at_once() -> None:
    a = connected(now=0.0)
    a.session_lost()
    assert [m.method for m in a.tick(0.5).messages] == ["register"]


# --- a task's life ----------------------------------------------------------------


def test_a_new_task_is_accepted_and_prepared() -> None:
    a = connected()
    fx = assign(a, task())
    assert ops(fx) == [("prepare", "t1")]
    assert fx.commands[0].task == task()
    assert states(a.tick(1.0)) == {"t1": TaskState.PREPARING}
    assert reports(a.tick(1.1)) == {}


def test_prepared_task_is_started() -> None:
    a = connected()
    assign(a, task())
    a.tick(1.0)
    fx = a.prepared("t1", "", 2.0)
    assert ops(fx) == [("start", "t1")]
    assert states(a.tick(2.0)) == {"t1": TaskState.STARTING}


def test_started_task_runs_with_its_pid() -> None:
    a = connected()
    assign(a, task())
    a.prepared("t1", "", 2.0)
    a.started("t1", 4242, "", 3.0)
    report = reports(a.tick(3.0))["t1"]
    assert report.state == TaskState.RUNNING
    assert report.container.pid == 4242
    assert report.timestamp == 3.0


@pytest.mark.parametrize(
    ("code", "state", "err"),
    [(0, TaskState.COMPLETE, ""), (1, TaskState.FAILED, "task: non-zero exit (1)")],
)
def test_exit_code_decides_complete_or_failed(code: int, state: TaskState, err: str) -> None:
    a = connected()
    running(a)
    a.exited("t1", code, 9.0)
    report = reports(a.tick(9.0))["t1"]
    assert (report.state, report.err, report.container.exit_code) == (state, err, code)
    assert report.container.pid == 42


def test_shutdown_of_a_running_task_ends_as_shutdown_not_failed() -> None:
    a = connected()
    running(a)
    fx = assign(a, task(desired=TaskState.SHUTDOWN), now=5.0)
    assert ops(fx) == [("shutdown", "t1")]
    assert reports(a.tick(5.0)) == {}
    # Repeating the order does not send a second shutdown.
    assert ops(assign(a, task(desired=TaskState.SHUTDOWN), now=5.5)) == []
    a.exited("t1", 143, 6.0)
    report = reports(a.tick(6.0))["t1"]
    assert (report.state, report.err) == (TaskState.SHUTDOWN, "")


def test_shutdown_before_start_needs_no_start() -> None:
    a = connected()
    assign(a, task())
    fx = assign(a, task(desired=TaskState.SHUTDOWN))
    assert ops(fx) == []
    assert states(a.tick(1.0)) == {"t1": TaskState.SHUTDOWN}
    assert ops(a.prepared("t1", "", 2.0)) == []
    assert reports(a.tick(2.0)) == {}


def test_a_new_task_already_told_to_stop_is_never_prepared() -> None:
    a = connected()
    fx = assign(a, task(desired=TaskState.SHUTDOWN))
    assert ops(fx) == []
    assert states(a.tick(1.0)) == {"t1": TaskState.SHUTDOWN}


def test_a_task_the_manager_already_sees_finished_is_not_taken_on() -> None:
    a = connected()
    done = replace(task(), status=TaskStatus(state=TaskState.FAILED))
    assert ops(assign(a, done)) == []
    assert reports(a.tick(1.0)) == {}


def test_a_prepare_error_rejects_the_task() -> None:
    a = connected()
    assign(a, task())
    fx = a.prepared("t1", "image not found", 2.0)
    assert ops(fx) == []
    report = reports(a.tick(2.0))["t1"]
    assert (report.state, report.err) == (TaskState.REJECTED, "image not found")


def test_a_start_error_fails_the_task() -> None:
    a = connected()
    assign(a, task())
    a.prepared("t1", "", 2.0)
    a.started("t1", 0, "exec: no such file", 3.0)
    report = reports(a.tick(3.0))["t1"]
    assert (report.state, report.err) == (TaskState.FAILED, "exec: no such file")


# --- reports ------------------------------------------------------------------------


def test_reports_are_batched_per_tick() -> None:
    a = connected()
    assign(a, task("t2"), task("t1"))
    a.prepared("t1", "", 1.5)
    fx = a.tick(2.0)
    msgs = [m for m in fx.messages if m.method == "update_task_status"]
    assert len(msgs) == 1
    assert msgs[0].body["session_id"] == "s1"
    assert [tid for tid, _ in msgs[0].body["updates"]] == ["t1", "t2"]
    assert states(fx) == {"t1": TaskState.STARTING, "t2": TaskState.PREPARING}
    assert reports(a.tick(2.1)) == {}


def test_late_or_repeated_executor_events_never_move_a_task_back() -> None:
    a = connected()
    running(a)
    a.exited("t1", 0, 5.0)
    a.tick(5.0)
    assert ops(a.prepared("t1", "", 6.0)) == []
    a.started("t1", 7, "", 6.0)
    a.exited("t1", 1, 6.0)
    assert reports(a.tick(6.0)) == {}
    assert a.tasks["t1"].state == TaskState.COMPLETE


def test_executor_events_for_unknown_tasks_are_ignored() -> None:
    a = connected()
    assert a.prepared("ghost", "", 1.0) == Effects()
    a.started("ghost", 1, "", 1.0)
    a.exited("ghost", 1, 1.0)
    assert reports(a.tick(1.0)) == {}


# --- assignment sets -------------------------------------------------------------------


def test_a_full_set_removes_tasks_it_does_not_list() -> None:
    a = connected()
    assign(a, task("t1"), task("t2"))
    fx = assign(a, task("t2"), full=True)
    assert ops(fx) == [("remove", "t1")]
    assert states(a.tick(1.0)) == {"t2": TaskState.PREPARING}
    assert set(a.tasks) == {"t2"}


def test_removed_tasks_are_removed() -> None:
    a = connected()
    assign(a, task("t1"), task("t2"))
    fx = a.assignments("s1", False, [], ["t2", "unknown"], 1.0)
    assert ops(fx) == [("remove", "t2")]
    assert set(a.tasks) == {"t1"}


def test_assignments_for_another_session_are_ignored() -> None:
    a = connected()
    fx = a.assignments("old-session", True, [task()], [], 1.0)
    assert fx == Effects()
    assert a.tasks == {}


def test_reregistering_reports_every_task_again() -> None:
    a = connected()
    running(a, "t1")
    assign(a, task("t2"))
    a.tick(4.0)
    a.session_lost()
    assert [m.method for m in a.tick(5.0).messages] == ["register"]
    a.registered("s2", 5.0, 5.0)
    fx = a.tick(5.0)
    msgs = [m for m in fx.messages if m.method == "update_task_status"]
    assert msgs[0].body["session_id"] == "s2"
    assert states(fx) == {"t1": TaskState.RUNNING, "t2": TaskState.PREPARING}
    assert reports(fx)["t1"].container.pid == 42


def test_reregistering_keeps_the_error_of_an_unsent_failure() -> None:
    a = connected()
    running(a)
    a.exited("t1", 1, 6.0)
    a.session_lost()  # the report above never went out
    a.tick(6.5)
    a.registered("s2", 5.0, 7.0)
    report = reports(a.tick(7.0))["t1"]
    assert report.state == TaskState.FAILED
    assert (report.err, report.container.exit_code) == ("task: non-zero exit (1)", 1)


def test_commands_carry_the_newest_task() -> None:
    a = connected()
    assign(a, task())
    newer = replace(task(), spec_version=2)
    assign(a, newer)
    fx = a.prepared("t1", "", 2.0)
    assert fx.commands == [Command("start", newer)]
