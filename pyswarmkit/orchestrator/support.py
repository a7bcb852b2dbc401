"""What the global and job orchestrators share: where a service may run, restart
delays on the monotonic clock, and trimming a slot's task history."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from functools import lru_cache

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import INT64_MAX, Node, Service, Task
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.orchestrator.tasks import is_history, with_desired
from pyswarmkit.scheduler.constraint import Constraint, parse_constraints
from pyswarmkit.scheduler.filters import platform_matches
from pyswarmkit.scheduler.nodeinfo import node_is_ready
from pyswarmkit.store.memory import MemoryStore, Tx

DEFAULT_HISTORY = 5


def node_gone(node: Node | None) -> bool:
    """Tasks here must stop: the node was removed, drained or is down."""
    return (
        node is None
        or node.spec.availability == NodeAvailability.DRAIN
        or node.status.state == NodeState.DOWN
    )


@lru_cache(maxsize=1024)
def parsed_constraints(exprs: tuple[str, ...]) -> tuple[Constraint, ...] | None:
    """Stored constraints, parsed once; None if they do not parse (the control
    API refuses such specs, so no node satisfies them)."""
    try:
        return tuple(parse_constraints(exprs))
    except InvalidArgument:
        return None


def meets_constraints(exprs: tuple[str, ...], node: Node) -> bool:
    if not exprs:
        return True
    parsed = parsed_constraints(exprs)
    return parsed is not None and all(c.matches(node) for c in parsed)


def fits_node(service: Service, node: Node) -> bool:
    """The service's current constraints and platforms allow the node.

    The current spec, not a task's: a task made before the constraints changed
    still carries the old ones (SwarmKit's constraint enforcer reads them the
    same way)."""
    placement = service.spec.task.placement
    if not meets_constraints(placement.constraints, node):
        return False
    platform = node.description.platform
    wanted = placement.platforms
    return not wanted or any(platform_matches(p, platform) for p in wanted)


def takes_new_tasks(node: Node) -> bool:
    """A node a task may be newly placed on: ready, active and accepted into the
    swarm (the scheduler's readiness)."""
    return node_is_ready(node)


def age(task: Task) -> tuple[int, str]:
    """Orders tasks oldest first by store creation; one made in this step is
    newest; tasks made in one batch by id, so every run orders them alike."""
    return (task.meta.created_index or INT64_MAX, task.id)


def created(task: Task) -> float:
    return task.meta.created_at or task.status.timestamp


def current(tx: Tx, tasks: Iterable[Task]) -> list[Task]:
    """The tasks as this step's own writes left them (deleted ones dropped)."""
    out = []
    for t in tasks:
        obj = tx.get("task", t.id)
        if isinstance(obj, Task):
            out.append(obj)
    return out


def shut_down(tx: Tx, task: Task) -> None:
    if task.desired_state < TaskState.SHUTDOWN:
        tx.update(with_desired(task, TaskState.SHUTDOWN))


class Delays:
    """Restarts waiting out their delay (desired READY): task id -> the monotonic
    time they may start, with a heap to find the next one due."""

    def __init__(self) -> None:
        self.when: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def add(self, task_id: str, when: float) -> None:
        self.when[task_id] = when
        heapq.heappush(self._heap, (when, task_id))

    def drop(self, task_id: str) -> None:
        self.when.pop(task_id, None)

    def due(self, now: float) -> bool:
        return bool(self._heap and self._heap[0][0] <= now)

    def next_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def start_due(self, tx: Tx, now: float) -> None:
        """Restarts whose delay is over are told to run (desired RUNNING)."""
        while self._heap and self._heap[0][0] <= now:
            when, tid = heapq.heappop(self._heap)
            if self.when.get(tid) != when:
                continue  # superseded or dropped
            del self.when[tid]
            task = tx.get("task", tid)
            if (
                isinstance(task, Task)
                and task.desired_state == TaskState.READY
                and not task.status.state.terminal
            ):
                tx.update(with_desired(task, TaskState.RUNNING))

    def rebuild(self, task: Task, now: float, wall: float) -> None:
        """A waiting task found in the store: it starts its delay after its
        creation, never later than a full delay from now (a wall clock set
        back cannot stretch it)."""
        delay = task.spec.restart.delay
        self.add(task.id, now + min(delay, created(task) + delay - wall))


def history_limit(store: MemoryStore, service: Service | None) -> int | None:
    """How many tasks a slot keeps (None: all), as the replicated orchestrator counts."""
    clusters = store.clusters()
    limit = clusters[0].spec.orchestration.task_history_retention_limit if clusters else 5
    if limit < 0:
        return None
    if service is not None and service.spec.task.restart.max_attempts > 0:
        return max(limit, service.spec.task.restart.max_attempts + 1)
    return limit


def trim(tx: Tx, tasks: list[Task], keep: int | None) -> None:
    """Delete a slot's oldest finished tasks beyond ``keep`` (counting them all)."""
    if keep is None:
        return
    excess = len(tasks) - keep
    if excess <= 0:
        return
    old = sorted((t for t in tasks if is_history(t)), key=age)
    for t in old[:excess]:
        tx.delete(t)
