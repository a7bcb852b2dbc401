"""Making tasks from services, and the questions every reconciler asks of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import Service, Task, TaskStatus, replace
from pyswarmkit.api.states import TaskState

IdGen = Callable[[], str]


def new_task(
    service: Service,
    slot: int,
    wall: float,
    id_gen: IdGen = new_id,
    desired: TaskState = TaskState.RUNNING,
) -> Task:
    """A task for the slot; ``desired`` READY makes a restart that waits out its
    delay (placed and prepared, started once moved to RUNNING)."""
    # There is no network allocator yet, so a task is created straight in
    # PENDING: ready for the scheduler in the same batch that creates it.
    return Task(
        id=id_gen(),
        service_id=service.id,
        slot=slot,
        spec=service.spec.task,
        spec_version=service.spec_version,
        service_name=service.name,
        desired_state=desired,
        status=TaskStatus(
            timestamp=wall, state=TaskState.PENDING, message="pending task scheduling"
        ),
    )


def is_live(task: Task) -> bool:
    """Meant to run: the orchestrator still wants it (desired at most RUNNING,
    so a restart still waiting out its delay, desired READY, counts)."""
    return task.desired_state <= TaskState.RUNNING


def is_history(task: Task) -> bool:
    """No longer wanted and done with: it finished, or it was stopped before it
    ever reached a node. Such tasks are kept, up to the history limit, for
    `task ls -a`."""
    if is_live(task):
        return False
    return task.status.state.terminal or task.status.state < TaskState.ASSIGNED


def is_dirty(task: Task, service: Service) -> bool:
    """Made from a spec the service no longer has."""
    return task.spec != service.spec.task


def with_desired(task: Task, desired: TaskState) -> Task:
    return replace(task, desired_state=desired)


def by_slot(tasks: Iterable[Task]) -> dict[int, list[Task]]:
    slots: dict[int, list[Task]] = {}
    for t in tasks:
        slots.setdefault(t.slot, []).append(t)
    return slots
