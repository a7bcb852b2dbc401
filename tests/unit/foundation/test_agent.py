"""The worker-side agent core: session upkeep, the task state machine, and its reports."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.agent.core import (
    REGISTER_RETRY,
    REPORT_RETRY,
    REPORT_RETRY_MAX,
    Agent,
    Command,
    Effects,
)
from pyswarmkit.api.objects import NodeDescription, Task, TaskStatus, replace
from pyswarmkit.api.protocol import (
    Acked,
    Assignments,
    AssignmentsRequest,
    Error,
    Heartbeat,
    HeartbeatAck,
    ManagerAddr,
    Register,
    Registered,
    UpdateTaskStatus,
    UpdateTaskStatusAck,
)
from pyswarmkit.api.states import TaskState

pytestmark = pytest.mark.unit

DESC = NodeDescription(hostname="worker-1")


def agent() -> Agent:
    return Agent(DESC, random.Random(0))


def connected(now: float = 0.0, period: float = 5.0, sid: str = "s1") -> Agent:
    a = agent()
    a.tick(now)
    a.registered(Registered(a.token, sid, period), now, now)
    return a


def task(tid: str = "t1", desired: TaskState = TaskState.RUNNING) -> Task:
    return Task(
        id=tid,
        node_id="n1",
        desired_state=desired,
        status=TaskStatus(state=TaskState.ASSIGNED, message="scheduler assigned task to node"),
    )


def assign(a: Agent, *tasks: Task, now: float = 1.0, full: bool = False) -> Effects:
    """The next set in sequence."""
    applies_to = 0 if full else a.seq
    msg = Assignments(a.session_id, full, applies_to, a.seq + 1, tuple(tasks), ())
    return a.assignments(msg, now, now)


def reports(fx: Effects) -> dict[str, TaskStatus]:
    msgs = [m for m in fx.messages if isinstance(m, UpdateTaskStatus)]
    assert len(msgs) <= 1, "reports go out once per tick"
    return {u.task_id: u.status for u in msgs[0].updates} if msgs else {}


def states(fx: Effects) -> dict[str, TaskState]:
    return {tid: s.state for tid, s in reports(fx).items()}


def ops(fx: Effects) -> list[tuple[str, str]]:
    return [(c.op, c.task.id) for c in fx.commands]


def kinds(fx: Effects) -> list[str]:
    return [m.kind for m in fx.messages]


def ack(a: Agent, fx: Effects) -> None:
    """The dispatcher acknowledges every report in ``fx``."""
    for m in fx.messages:
        if isinstance(m, UpdateTaskStatus):
            acked = tuple(Acked(u.task_id, u.status.state) for u in m.updates)
            a.acknowledged(UpdateTaskStatusAck(m.session_id, acked))


def running(a: Agent, tid: str = "t1", pid: int = 42) -> None:
    assign(a, task(tid))
    a.prepared(tid, "", 2.0)
    a.started(tid, pid, "", 3.0)
    ack(a, a.tick(3.0))


# --- session ---------------------------------------------------------------------


def test_before_a_session_the_agent_registers_and_retries() -> None:
    a = agent()
    first = a.tick(0.0)
    assert first.messages == [Register(a.token, DESC)]
    assert first.commands == []
    assert a.tick(1.0).messages == []
    assert a.tick(REGISTER_RETRY - 0.01).messages == []
    assert kinds(a.tick(REGISTER_RETRY)) == ["register"]
    assert a.tick(REGISTER_RETRY + 1.0).messages == []


def test_after_registering_the_agent_heartbeats_at_about_the_period() -> None:
    a = connected(now=0.0, period=5.0)
    beats = []
    for i in range(1, 1001):
        now = i / 10
        for m in a.tick(now).messages:
            assert m == Heartbeat("s1"), "no more registering once a session is open"
            beats.append(now)
            a.receive(HeartbeatAck(5.0), now, now)
    gaps = [b - a for a, b in zip([0.0, *beats], beats, strict=False)]
    assert all(4.5 - 1e-9 <= g <= 5.6 + 1e-9 for g in gaps), gaps
    assert 18 <= len(beats) <= 22
    # The jitter spreads beats out rather than beating at exactly the period.
    assert len({round(g, 1) for g in gaps}) > 1


def test_a_silent_manager_ends_the_session_and_the_agent_tries_another() -> None:
    a = connected(now=0.0, period=1.0)
    a.receive(HeartbeatAck(1.0, 0, (ManagerAddr("m1", "10.0.0.1:4242"),)), 0.5, 0.5)
    assert a.managers == (ManagerAddr("m1", "10.0.0.1:4242"),)
    assert all(not f.switch_manager for f in (a.tick(i / 10) for i in range(6, 35)))
    fx = a.tick(3.6)  # three periods since the manager last spoke
    assert fx.switch_manager and kinds(fx) == ["register"]
    assert a.session_id == ""
    # Nobody answers that registration either: the next try goes elsewhere again.
    assert not a.tick(4.0).messages
    fx = a.tick(3.7 + REGISTER_RETRY)
    assert fx.switch_manager and kinds(fx) == ["register"]


def test_a_dropped_connection_to_the_manager_turns_the_agent_away_at_once() -> None:
    a = connected(now=0.0, period=5.0)
    old = a.token
    fx = a.manager_gone(1.0)  # long before three silent periods
    assert fx.switch_manager and kinds(fx) == ["register"]
    assert a.session_id == "" and a.token != old
    # That registration goes unanswered too: the retry turns again.
    assert not a.tick(2.0).messages
    assert a.tick(1.0 + REGISTER_RETRY).switch_manager


def test_a_manager_that_does_not_lead_sends_the_agent_to_the_leader() -> None:
    a = connected(now=0.0)
    fx = a.receive(Error("unavailable", "this manager does not lead", "heartbeat", "", "m2"), 1, 1)
    assert fx.switch_to == "m2" and a.session_id == ""
    assert kinds(a.tick(1.1)) == ["register"]
    # A manager that cannot serve the session and names no leader (it left
    # the managers, say): the agent tries the next one.
    b = connected(now=0.0)
    fx = b.receive(Error("unavailable", "the swarm has no leader"), 1, 1)
    assert fx.switch_to == "" and fx.switch_manager and b.session_id == ""


def test_the_period_comes_from_the_dispatcher() -> None:
    a = connected(now=0.0, period=1.0)
    beats = []
    for i in range(1, 101):
        if a.tick(i / 10).messages:
            beats.append(i / 10)
            a.receive(HeartbeatAck(1.0), i / 10, i / 10)
    assert 9 <= len(beats) <= 11


def test_a_lost_session_registers_again_at_once() -> None:
    a = connected(now=0.0)
    a.session_lost()
    assert kinds(a.tick(0.5)) == ["register"]


# --- a task's life ----------------------------------------------------------------


def test_a_new_task_is_accepted_and_prepared() -> None:
    a = connected()
    fx = assign(a, task())
    assert ops(fx) == [("prepare", "t1")]
    assert fx.commands[0].task == task()
    fx = a.tick(1.0)
    assert states(fx) == {"t1": TaskState.PREPARING}
    ack(a, fx)
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


@pytest.mark.parametrize(
    ("desired", "ends"),
    [(TaskState.RUNNING, TaskState.FAILED), (TaskState.SHUTDOWN, TaskState.SHUTDOWN)],
)
def test_a_task_an_earlier_agent_ran_is_never_run_again_under_its_id(
    desired: TaskState, ends: TaskState
) -> None:
    # The node's agent and executor were restarted: the store says RUNNING, but
    # the process went with the old executor. Running it again would reuse the
    # task's ID and dodge its restart policy; it is reported ended instead.
    a = connected()
    seen = replace(task(desired=desired), status=TaskStatus(state=TaskState.RUNNING))
    fx = assign(a, seen, full=True)
    assert ops(fx) == []
    report = reports(a.tick(1.0))
    assert report["t1"].state == ends
    if ends == TaskState.FAILED:
        assert "agent restarted" in report["t1"].err


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
    msgs = [m for m in fx.messages if isinstance(m, UpdateTaskStatus)]
    assert len(msgs) == 1
    assert msgs[0].session_id == "s1"
    assert [u.task_id for u in msgs[0].updates] == ["t1", "t2"]
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
    fx = a.assignments(Assignments("s1", False, a.seq, a.seq + 1, (), ("t2", "unknown")), 1.0, 1.0)
    assert ops(fx) == [("remove", "t2")]
    assert set(a.tasks) == {"t1"}


def test_assignments_for_another_session_are_ignored() -> None:
    a = connected()
    fx = a.assignments(Assignments("old-session", True, 0, 9, (task(),)), 1.0, 1.0)
    assert fx == Effects()
    assert a.tasks == {}


def test_reregistering_reports_every_task_again() -> None:
    a = connected()
    running(a, "t1")
    assign(a, task("t2"))
    a.tick(4.0)
    a.session_lost()
    assert kinds(a.tick(5.0)) == ["register"]
    a.registered(Registered(a.token, "s2", 5.0), 5.0, 5.0)
    fx = a.tick(5.0)
    msgs = [m for m in fx.messages if isinstance(m, UpdateTaskStatus)]
    assert msgs[0].session_id == "s2"
    assert states(fx) == {"t1": TaskState.RUNNING, "t2": TaskState.PREPARING}
    assert reports(fx)["t1"].container.pid == 42


def test_reregistering_keeps_the_error_of_an_unsent_failure() -> None:
    a = connected()
    running(a)
    a.exited("t1", 1, 6.0)
    a.session_lost()  # the report above never went out
    a.tick(6.5)
    a.registered(Registered(a.token, "s2", 5.0), 7.0, 7.0)
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


# --- acknowledgements --------------------------------------------------------------------


def test_a_report_is_sent_again_until_acknowledged() -> None:
    a = connected()
    assign(a, task())
    assert states(a.tick(1.0)) == {"t1": TaskState.PREPARING}
    assert reports(a.tick(1.0 + REPORT_RETRY / 2)) == {}
    again = a.tick(1.0 + REPORT_RETRY + 0.1)
    assert states(again) == {"t1": TaskState.PREPARING}
    ack(a, again)
    assert a.pending == {}
    assert reports(a.tick(10.0)) == {}


def test_reports_wait_while_the_dispatcher_acknowledges_others() -> None:
    a = connected()
    assign(a, task("t1"))
    assert states(a.tick(1.0)) == {"t1": TaskState.PREPARING}
    # A backlog: other reports keep being acknowledged, t1's answer is still to come.
    now = 1.0
    while now < 1.0 + REPORT_RETRY_MAX - 0.5:
        now += 0.5
        a.acknowledged(UpdateTaskStatusAck(a.session_id, (Acked("other", TaskState.RUNNING),)), now)
        assert reports(a.tick(now)) == {}, f"sent again at {now}"
    # It is sent again once it has waited the longest a report waits...
    assert states(a.tick(1.0 + REPORT_RETRY_MAX + 0.1)) == {"t1": TaskState.PREPARING}


def test_reports_are_sent_again_soon_once_acknowledgements_stop() -> None:
    a = connected()
    assign(a, task("t1"))
    assert states(a.tick(1.0)) == {"t1": TaskState.PREPARING}
    a.acknowledged(UpdateTaskStatusAck(a.session_id, (Acked("other", TaskState.RUNNING),)), 1.5)
    assert reports(a.tick(1.0 + REPORT_RETRY + 0.1)) == {}
    assert states(a.tick(1.5 + 2 * REPORT_RETRY + 0.1)) == {"t1": TaskState.PREPARING}


def test_an_ack_of_an_older_state_keeps_the_newer_report() -> None:
    a = connected()
    assign(a, task())
    first = a.tick(1.0)
    a.prepared("t1", "", 1.5)
    ack(a, first)  # acknowledges PREPARING; STARTING is not yet acknowledged
    assert states(a.tick(1.6)) == {"t1": TaskState.STARTING}
    assert a.pending["t1"].state == TaskState.STARTING
    a.acknowledged(UpdateTaskStatusAck("s1", (Acked("t1", TaskState.RUNNING),)))
    assert a.pending == {}


def test_unacknowledged_reports_go_out_again_on_a_new_session() -> None:
    a = connected()
    assign(a, task("t1"), task("t2"))
    fx = a.tick(1.0)
    a.acknowledged(UpdateTaskStatusAck("s1", (Acked("t1", TaskState.PREPARING),)))
    a.refused(Error("not_found", "session invalid: register again", "heartbeat", "s1"))
    assert kinds(a.tick(1.1)) == ["register"]
    assert states(fx) == {"t1": TaskState.PREPARING, "t2": TaskState.PREPARING}
    a.registered(Registered(a.token, "s2", 5.0), 1.2, 1.2)
    # Everything again on a new session: the new dispatcher may have lost state.
    assert set(states(a.tick(1.2))) == {"t1", "t2"}


def test_an_error_about_another_session_does_not_drop_this_one() -> None:
    a = connected()
    a.refused(Error("not_found", "session invalid: register again", "heartbeat", "s0"))
    assert a.session_id == "s1"
    a.refused(Error("invalid_argument", "bad", "update_task_status", "s1"))
    assert a.session_id == "s1"


# --- registration ---------------------------------------------------------------------


def test_only_the_answer_to_the_current_attempt_opens_a_session() -> None:
    a = agent()
    a.tick(0.0)
    old_token = a.token
    a.registered(Registered(old_token + 1, "stranger", 5.0), 0.1, 0.1)
    assert a.session_id == ""
    a.registered(Registered(old_token, "s1", 5.0), 0.2, 0.2)
    assert a.session_id == "s1"
    a.session_lost()
    assert a.token != old_token
    a.registered(Registered(old_token, "s1", 5.0), 0.3, 0.3)  # late duplicate
    assert a.session_id == ""


def test_a_heartbeat_period_that_is_not_a_positive_number_is_ignored() -> None:
    a = connected(period=2.0)
    for bad in (float("nan"), 0.0, -1.0, float("inf")):
        a.heartbeat_ack(HeartbeatAck(bad, 0), 1.0)
        assert a.heartbeat_period == 2.0


# --- assignment sequence -----------------------------------------------------------------


def test_sets_apply_in_sequence_and_a_gap_asks_for_a_full_set() -> None:
    a = connected()
    assign(a, task("t1"), full=True)
    assert a.seq == 1
    # Applies to 2, but this agent holds 1: the set for 1 -> 2 was lost.
    gap = a.assignments(Assignments("s1", False, 2, 3, (task("t3"),)), 2.0, 2.0)
    assert ops(gap) == []
    assert gap.messages == [AssignmentsRequest("s1")]
    assert "t3" not in a.tasks
    # Asked once; not again at once.
    assert a.assignments(Assignments("s1", False, 2, 3, (task("t3"),)), 2.1, 2.1).messages == []
    full = a.assignments(Assignments("s1", True, 0, 4, (task("t1"), task("t3"))), 2.2, 2.2)
    assert ops(full) == [("prepare", "t3")]
    assert a.seq == 4
    # A late full set and a late incremental one change nothing.
    stale_full = Assignments("s1", True, 0, 2, ())
    stale_inc = Assignments("s1", False, 1, 2, (), ("t1",))
    assert a.assignments(stale_full, 3.0, 3.0) == Effects()
    assert a.assignments(stale_inc, 3.0, 3.0) == Effects()
    assert set(a.tasks) == {"t1", "t3"}


def test_a_heartbeat_ack_naming_a_newer_set_asks_for_a_full_set() -> None:
    a = connected()
    assign(a, task("t1"), full=True)
    assert a.heartbeat_ack(HeartbeatAck(5.0, 1), 1.0).messages == []
    assert a.heartbeat_ack(HeartbeatAck(5.0, 2), 1.0).messages == [AssignmentsRequest("s1")]


# --- desired state READY --------------------------------------------------------------------


def test_a_task_desired_ready_is_prepared_but_started_only_when_desired_running() -> None:
    a = connected()
    waiting = task(desired=TaskState.READY)
    assert ops(assign(a, waiting)) == [("prepare", "t1")]
    assert ops(a.prepared("t1", "", 2.0)) == []
    assert a.tasks["t1"].state == TaskState.READY
    assert ops(assign(a, waiting, now=3.0)) == []
    fx = assign(a, task(desired=TaskState.RUNNING), now=4.0)
    assert ops(fx) == [("start", "t1")]
    assert states(a.tick(4.0)) == {"t1": TaskState.STARTING}
    # Told to run again: not a second start.
    assert ops(assign(a, task(desired=TaskState.RUNNING), now=5.0)) == []


def test_a_task_desired_running_before_it_is_prepared_starts_when_prepared() -> None:
    a = connected()
    assign(a, task(desired=TaskState.READY))
    assign(a, task(desired=TaskState.RUNNING), now=1.5)
    assert ops(a.prepared("t1", "", 2.0)) == [("start", "t1")]
