"""Taking back the tasks a previous run of a node left running: which recorded
processes are still ours (given a fake /proc), and how the agent core adopts,
keeps or stops them once its dispatcher's assignments arrive."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.agent.core import Agent, Command, Effects
from pyswarmkit.api.objects import NodeDescription, Task, TaskStatus
from pyswarmkit.api.protocol import Assignments, Register, Registered, UpdateTaskStatus
from pyswarmkit.api.states import TaskState
from pyswarmkit.executor.base import EXIT_UNKNOWN
from pyswarmkit.executor.records import (
    ProcInfo,
    Record,
    is_running,
    may_signal_group,
    parse_record,
    parse_stat,
    sort_records,
)

pytestmark = pytest.mark.unit


def view(procs: dict[int, ProcInfo]):  # type: ignore[no-untyped-def]
    return procs.get


# --- records and /proc -------------------------------------------------------


def test_a_record_is_pid_and_start_time() -> None:
    assert parse_record("123 456\n") == Record(123, 456)
    for bad in ("", "123", "123 456 789", "x 1", "1 1", "0 5", "-4 5", "12 -1"):
        assert parse_record(bad) is None, bad


def test_stat_fields_are_counted_after_the_command_name() -> None:
    stat = "77 (a (tricky) name) S 1 77 77 0 -1 4194560 " + " ".join(["0"] * 12) + " 98765 0 0"
    assert parse_stat(stat) == ProcInfo(started=98765, state="S")


def test_only_processes_with_the_recorded_start_time_are_adopted() -> None:
    procs = view(
        {
            10: ProcInfo(500, "S"),  # ours, still running
            11: ProcInfo(999, "S"),  # the pid was reused by another process
            12: ProcInfo(502, "Z"),  # ours, exited, not yet reaped
        }
    )
    records = [
        ("run", Record(10, 500)),
        ("reused", Record(11, 501)),
        ("zombie", Record(12, 502)),
        ("vanished", Record(13, 503)),
        ("never-started", None),
    ]
    found = sort_records(records, procs)
    assert found.adopt == {"run": Record(10, 500)}
    assert found.gone == ["never-started", "reused", "vanished", "zombie"]


def test_a_reused_pid_is_never_signalled() -> None:
    rec = Record(10, 500)
    assert may_signal_group(rec, view({10: ProcInfo(500, "S")}))
    # Members may outlive their leader; the pid stays theirs while they do.
    assert may_signal_group(rec, view({}))
    assert not may_signal_group(rec, view({10: ProcInfo(777, "S")}))
    assert not is_running(rec, view({10: ProcInfo(777, "S")}))


# --- the agent core ------------------------------------------------------------

DESC = NodeDescription(hostname="worker-1")


def agent_with(running: dict[str, int], gone: set[str] | None = None) -> Agent:
    """A restarted agent: the executor's inventory first, then a session."""
    a = Agent(DESC, random.Random(0), awaiting_inventory=True)
    a.inventory(running, gone or set())
    a.tick(0.0)
    a.registered(Registered(a.token, "s1", 5.0), 0.0, 0.0)
    return a


def task(
    tid: str,
    state: TaskState = TaskState.RUNNING,
    desired: TaskState = TaskState.RUNNING,
) -> Task:
    return Task(id=tid, node_id="n1", desired_state=desired, status=TaskStatus(state=state))


def full_set(a: Agent, *tasks: Task) -> Effects:
    msg = Assignments(a.session_id, True, 0, a.seq + 1, tuple(tasks), ())
    return a.assignments(msg, 1.0, 1.0)


def ops(fx: Effects) -> list[tuple[str, str]]:
    return [(c.op, c.task.id) for c in fx.commands]


def reported(a: Agent) -> dict[str, TaskStatus]:
    fx = a.tick(1.0)
    msgs = [m for m in fx.messages if isinstance(m, UpdateTaskStatus)]
    return {u.task_id: u.status for m in msgs for u in m.updates}


def test_no_registration_before_the_executor_says_what_it_took_back() -> None:
    a = Agent(DESC, random.Random(0), awaiting_inventory=True)
    assert a.tick(0.0).messages == []
    assert a.tick(10.0).messages == []
    a.inventory({}, set())
    assert [type(m) for m in a.tick(10.0).messages] == [Register]


def test_an_assigned_task_still_running_is_adopted_not_started_again() -> None:
    a = agent_with({"t1": 4242})
    fx = full_set(a, task("t1"))
    assert ops(fx) == []
    status = reported(a)["t1"]
    assert status.state == TaskState.RUNNING
    assert status.container.pid == 4242
    # Later sets of the same task start nothing either.
    msg = Assignments(a.session_id, False, a.seq, a.seq + 1, (task("t1"),), ())
    assert ops(a.assignments(msg, 2.0, 2.0)) == []


def test_a_task_the_old_run_started_but_never_reported_is_adopted() -> None:
    a = agent_with({"t1": 4242})
    assert ops(full_set(a, task("t1", state=TaskState.ASSIGNED))) == []
    assert reported(a)["t1"].state == TaskState.RUNNING


def test_an_adopted_task_the_dispatcher_no_longer_assigns_is_stopped() -> None:
    a = agent_with({"kept": 1, "dropped": 2}, gone={"old"})
    fx = full_set(a, task("kept"))
    assert sorted(ops(fx)) == [("remove", "dropped"), ("remove", "old")]
    assert a.adopted == {} and a.gone == set()


def test_an_adopted_task_told_to_stop_is_shut_down() -> None:
    a = agent_with({"t1": 7})
    fx = full_set(a, task("t1", desired=TaskState.SHUTDOWN))
    assert ops(fx) == [("shutdown", "t1")]
    # Its exit ends it as SHUTDOWN, whatever code it had.
    a.exited("t1", EXIT_UNKNOWN, 2.0)
    assert reported(a)["t1"].state == TaskState.SHUTDOWN


def test_an_adopted_task_the_manager_counts_ended_is_stopped_unreported() -> None:
    a = agent_with({"t1": 7})
    fx = full_set(a, task("t1", state=TaskState.ORPHANED, desired=TaskState.SHUTDOWN))
    assert ops(fx) == [("remove", "t1")]
    assert "t1" not in reported(a)


def test_an_adopted_task_that_exits_fails_with_an_unknown_code() -> None:
    a = agent_with({"t1": 7})
    full_set(a, task("t1"))
    reported(a)
    a.exited("t1", EXIT_UNKNOWN, 2.0)
    status = reported(a)["t1"]
    assert status.state == TaskState.FAILED
    assert "exit code unknown" in status.err


def test_a_recorded_task_whose_process_is_gone_is_reported_failed() -> None:
    a = agent_with({}, gone={"t1"})
    fx = full_set(a, task("t1"))
    assert ops(fx) == []
    status = reported(a)["t1"]
    assert status.state == TaskState.FAILED
    assert status.err == "task lost: its process ended while the node's agent was down"
    # Its directory goes once the dispatcher drops it.
    fx = full_set(a)
    assert ops(fx) == [("remove", "t1")]


def test_a_fresh_agent_still_starts_new_tasks() -> None:
    a = agent_with({"t1": 7})
    fx = full_set(a, task("t1"), task("t2", state=TaskState.ASSIGNED))
    assert fx.commands == [Command("prepare", fx.commands[0].task)]
    assert ops(fx) == [("prepare", "t2")]


def test_an_adopted_task_that_ends_before_any_assignment_is_reported_lost_not_running() -> None:
    import random as _random

    from pyswarmkit.agent.core import Agent
    from pyswarmkit.api.objects import NodeDescription
    from pyswarmkit.executor.base import EXIT_UNKNOWN

    core = Agent(NodeDescription(), _random.Random(1), awaiting_inventory=True)
    core.inventory({"t1": 4242}, set())
    core.exited("t1", EXIT_UNKNOWN, 100.0)
    assert "t1" not in core.adopted and "t1" in core.gone
