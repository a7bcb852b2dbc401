"""The orchestrator actor hands its core the right clock for each job: monotonic
time for delays, wall time for stamps, both read together when it starts."""

from __future__ import annotations

import pytest

from pyswarmkit import clock
from pyswarmkit.actors.orchestrator import OrchestratorActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.objects import (
    Annotations,
    RestartPolicy,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
)
from pyswarmkit.api.states import TaskState
from pyswarmkit.store import Change, MemoryStore

pytestmark = pytest.mark.unit

WALL = 1_700_000_000.0
SID = "s" * 25
TID = "t" * 25


def _waiting_restart() -> MemoryStore:
    """A store whose one task is a restart created at WALL, waiting out a 5 s delay."""
    store = MemoryStore()
    task_spec = TaskSpec(restart=RestartPolicy(delay=5.0))
    service = Service(id=SID, spec=ServiceSpec(annotations=Annotations(name="web"), task=task_spec))
    waiting = Task(
        id=TID,
        service_id=SID,
        slot=1,
        spec=task_spec,
        spec_version=service.spec_version,
        desired_state=TaskState.READY,
        status=TaskStatus(timestamp=WALL, state=TaskState.PENDING),
    )
    store.apply([Change("create", service), Change("create", waiting)], 1, WALL)
    return store


def _desired(changes: list[Change]) -> dict[str, TaskState]:
    return {
        ch.obj.id: ch.obj.desired_state
        for ch in changes
        if ch.op == "update" and isinstance(ch.obj, Task)
    }


def test_a_starting_orchestrator_times_waiting_restarts_on_the_monotonic_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _waiting_restart()
    # Leadership arrives 2 s after the restart was made; this process's
    # monotonic clock reads 100.
    monkeypatch.setattr(clock, "monotonic", lambda: 100.0)
    monkeypatch.setattr(clock, "wall", lambda: WALL + 2.0)
    actor = OrchestratorActor(Registry("n1"), store)
    actor.reset()
    assert actor.core.delayed == {TID: 103.0}
    # The wall clock jumping either way moves nothing.
    assert TID not in _desired(actor.decide(102.9, WALL + 3600.0))
    assert not actor.due(102.9)
    assert actor.due(103.0)
    assert _desired(actor.decide(103.0, WALL - 3600.0)) == {TID: TaskState.RUNNING}
