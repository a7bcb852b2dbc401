"""A finished task's output outlives a restart of its node's swarmd: the
agent keeps it while the store keeps the task, and removes it after."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.agent.core import Agent, Effects
from pyswarmkit.api.objects import NodeDescription, Task, TaskStatus
from pyswarmkit.api.protocol import Assignments, Registered, UpdateTaskStatus
from pyswarmkit.api.states import TaskState

pytestmark = pytest.mark.unit


def restarted(gone: set[str]) -> Agent:
    a = Agent(NodeDescription(hostname="w"), random.Random(0), awaiting_inventory=True)
    a.inventory({}, gone)
    a.tick(0.0)
    a.registered(Registered(a.token, "s1", 5.0), 0.0, 0.0)
    return a


def finished(tid: str) -> Task:
    return Task(
        id=tid,
        node_id="n1",
        desired_state=TaskState.SHUTDOWN,
        status=TaskStatus(state=TaskState.COMPLETE, message="finished"),
    )


def full(a: Agent, *tasks: Task) -> Effects:
    return a.assignments(Assignments(a.session_id, True, 0, a.seq + 1, tasks, ()), 1.0, 1.0)


def test_a_finished_task_keeps_its_output_until_the_store_drops_it() -> None:
    a = restarted({"done"})
    fx = full(a, finished("done"))
    assert fx.commands == []  # kept: its output files stay for `logs`
    reports = [m for m in a.tick(1.0).messages if isinstance(m, UpdateTaskStatus)]
    # Nothing new to say of it (anything said is its stored status, which changes nothing).
    assert all(u.status.state == TaskState.COMPLETE for m in reports for u in m.updates)
    dropped = Assignments(a.session_id, False, a.seq, a.seq + 1, (), ("done",))
    assert [(c.op, c.task.id) for c in a.assignments(dropped, 2.0, 2.0).commands] == [
        ("remove", "done")
    ]
