"""The agent holds a task with a health check in STARTING until the check
passes, as Docker's swarm mode does."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.agent.core import Agent
from pyswarmkit.api.objects import NodeDescription, Task, TaskStatus
from pyswarmkit.api.protocol import Assignments, Registered
from pyswarmkit.api.states import TaskState

pytestmark = pytest.mark.unit


def started_agent(wait_healthy: bool) -> Agent:
    a = Agent(NodeDescription(hostname="n1"), random.Random(0))
    a.tick(0.0)
    a.registered(Registered(a.token, "s1", 5.0), 0.0, 0.0)
    t = Task(
        id="t1",
        node_id="n1",
        desired_state=TaskState.RUNNING,
        status=TaskStatus(state=TaskState.ASSIGNED),
    )
    a.assignments(Assignments("s1", True, 0, 1, (t,), ()), 1.0, 1.0)
    a.prepared("t1", "", 2.0)
    a.started("t1", 42, "", 3.0, wait_healthy=wait_healthy)
    return a


def test_a_checked_task_stays_starting_until_healthy() -> None:
    a = started_agent(wait_healthy=True)
    assert a.tasks["t1"].state == TaskState.STARTING
    assert a.tasks["t1"].pid == 42
    a.healthy("t1", 4.0)
    assert a.tasks["t1"].state == TaskState.RUNNING
    assert a.pending["t1"].state == TaskState.RUNNING


def test_a_task_without_a_check_runs_at_once() -> None:
    a = started_agent(wait_healthy=False)
    assert a.tasks["t1"].state == TaskState.RUNNING


def test_unhealthy_exit_is_a_failure_with_the_cause() -> None:
    a = started_agent(wait_healthy=True)
    a.exited("t1", 143, 4.0, "non-zero exit (143): unhealthy container")
    assert a.tasks["t1"].state == TaskState.FAILED
    assert a.pending["t1"].err == "task: non-zero exit (143): unhealthy container"


def test_healthy_after_a_stop_was_asked_changes_nothing() -> None:
    a = started_agent(wait_healthy=True)
    a.tasks["t1"].stopping = True
    a.healthy("t1", 4.0)
    assert a.tasks["t1"].state == TaskState.STARTING


def test_an_adopted_task_with_a_check_has_its_spec_handed_to_the_executor() -> None:
    from pyswarmkit.api.objects import ContainerSpec, HealthConfig, TaskSpec

    a = Agent(NodeDescription(hostname="n1"), random.Random(0), awaiting_inventory=True)
    a.inventory({"t1": 42, "t2": 43}, frozenset())
    a.tick(0.0)
    a.registered(Registered(a.token, "s1", 5.0), 0.0, 0.0)
    check = HealthConfig(test=("CMD-SHELL", "true"))
    checked = Task(
        id="t1",
        node_id="n1",
        desired_state=TaskState.RUNNING,
        status=TaskStatus(state=TaskState.RUNNING),
        spec=TaskSpec(container=ContainerSpec(command=("sleep",), healthcheck=check)),
    )
    plain = Task(
        id="t2",
        node_id="n1",
        desired_state=TaskState.RUNNING,
        status=TaskStatus(state=TaskState.RUNNING),
    )
    fx = a.assignments(Assignments("s1", True, 0, 1, (checked, plain), ()), 1.0, 1.0)
    assert [(c.op, c.task) for c in fx.commands] == [("adopt", checked)]
    assert a.tasks["t1"].state == TaskState.RUNNING
