"""What `swarmctl service create/update` shows while a service converges, as
`docker service create` does:

    overall progress: 2 out of 3 tasks
    1/3: running   [==================================================>]
    2/3: starting  [============================================>      ]
    3/3: pending   [=========>                                         ]

Pure: the caller polls the manager and passes the service, its tasks and the
node names; ``view`` says what to show and whether the service converged,
or failed for good (tasks that keep failing, an update paused or rolled
back). Nothing here reads a clock or a socket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pyswarmkit.api.objects import JOB_KINDS, Service, Task, replace
from pyswarmkit.api.states import RestartCondition, TaskState, UpdateState
from pyswarmkit.orchestrator.tasks import is_dirty

# The states a task passes on its way to RUNNING, each a step of the bar.
STEPS = (
    TaskState.NEW,
    TaskState.PENDING,
    TaskState.ASSIGNED,
    TaskState.ACCEPTED,
    TaskState.PREPARING,
    TaskState.READY,
    TaskState.STARTING,
    TaskState.RUNNING,
)
BAR = 50
# A slot's text (an error may be long) is cut to this many characters.
TEXT_MAX = 60
# A slot whose tasks failed this many times since the command began has
# failed for good, as far as the command is concerned.
FAILURES = 3

Outcome = Literal["converging", "converged", "failed"]


@dataclass(frozen=True, slots=True)
class Line:
    label: str  # "2/3", or a node's name for a global service
    text: str  # the task's state, or its error
    step: int  # how far along STEPS (len(STEPS) when running or complete)


@dataclass(frozen=True, slots=True)
class View:
    lines: tuple[Line, ...]
    done: int
    total: int
    outcome: Outcome
    reason: str = ""

    def render(self, columns: int = 120) -> list[str]:
        """The lines, each at most ``columns`` wide (a wrapped line would
        break redrawing in place): a long error is cut, the bar shortened."""
        width = max((len(x.label) for x in self.lines), default=0)
        text_width = min(max((len(x.text) for x in self.lines), default=0), TEXT_MAX)
        bar_len = max(10, min(BAR, columns - width - text_width - 7))
        text_width = max(0, min(text_width, columns - width - bar_len - 7))
        out = [f"overall progress: {self.done} out of {self.total} tasks"[:columns]]
        for x in self.lines:
            filled = bar_len * x.step // len(STEPS)
            bar = "=" * max(0, filled - 1) + (">" if filled else "") + " " * (bar_len - filled)
            text = x.text[:text_width]
            out.append(f"{x.label:>{width}}: {text:<{text_width}}  [{bar}]"[:columns])
        return out


def _step(task: Task) -> int:
    state = task.status.state
    if state >= TaskState.RUNNING:
        return len(STEPS) if state in (TaskState.RUNNING, TaskState.COMPLETE) else 0
    return sum(1 for s in STEPS if s <= state)


def _text(task: Task) -> str:
    state = task.status.state
    if state in (TaskState.FAILED, TaskState.REJECTED) and task.status.err:
        return f"{state.name.lower()}: {task.status.err}"[:120]
    return state.name.lower()


def view(
    service: Service,
    tasks: Sequence[Task],
    nodes: Mapping[str, str],
    since_index: int,
    rollback: bool = False,
    spec_version: int | None = None,
) -> View:
    """Where ``service`` stands. ``since_index`` is the store index when the
    command began: failures of tasks created before it do not count.
    ``rollback``: the command asked for the rollback, so its completion is
    the goal rather than a failure. ``spec_version``: the service's when the
    command began; a later one means another change superseded it."""
    status = service.update_status
    if status is not None and status.state in (UpdateState.PAUSED, UpdateState.ROLLBACK_PAUSED):
        return _failed(service, tasks, nodes, f"update paused: {status.message}")
    if status is not None and status.state == UpdateState.ROLLBACK_COMPLETED and not rollback:
        return _failed(service, tasks, nodes, f"update rolled back: {status.message}")
    # A rollback of this change brings its own spec back: that is not another change.
    rolling_back = status is not None and status.state == UpdateState.ROLLBACK_STARTED
    if spec_version is not None and service.spec_version > spec_version and not rolling_back:
        return _failed(service, tasks, nodes, "superseded by a later change of the service")
    slots = _slots(service, tasks, nodes)
    job = service.spec.mode.kind in JOB_KINDS
    goal = TaskState.COMPLETE if job else TaskState.RUNNING
    lines: list[Line] = []
    done = 0
    failed_slots = 0
    worst = ""
    # An update that completed leaves alone the slots it may not touch (a
    # paused node's): they count as done, as the update's own status says.
    completed = status is not None and status.state == UpdateState.COMPLETED
    limit = _failure_limit(service)
    for label, slot in slots:
        current = _current(slot)
        if current is None:
            lines.append(Line(label, "new", 0))
            continue
        # A task of another spec is on its way out: no progress to show (a
        # rollback makes the tasks of the spec it returns to current again).
        fresh = not is_dirty(current, service)
        if current.status.state == goal and (fresh or completed):
            done += 1
        if fresh:
            lines.append(Line(label, _text(current), _step(current)))
        else:
            # Not replaced yet (or not to be): nothing of this change to show.
            lines.append(Line(label, "", 0))
        failures = [
            t
            for t in slot
            if t.status.state in (TaskState.FAILED, TaskState.REJECTED)
            and t.meta.created_index > since_index
        ]
        if failures:
            failed_slots += 1
            latest = max(failures, key=lambda t: t.meta.version)
            if len(failures) >= limit or not worst:
                worst = latest.status.err or latest.status.message or latest.status.state.name
            if len(failures) >= limit:
                return View(tuple(lines), done, len(slots), "failed", worst)
    total = len(slots)
    restart = service.spec.task.restart
    endless = restart.condition != RestartCondition.NONE and restart.max_attempts == 0
    if total and failed_slots == total and done == 0 and endless:
        # Restarts without end, every slot failed and none runs: it will not get better.
        return View(tuple(lines), done, total, "failed", worst)
    updating = status is not None and status.state in (
        UpdateState.UPDATING,
        UpdateState.ROLLBACK_STARTED,
    )
    outcome: Outcome = "converged" if done == total and not updating else "converging"
    return View(tuple(lines), done, total, outcome)


def _failure_limit(service: Service) -> int:
    """Failures of a slot after which the command gives up: when the restart
    policy does (no restart, or its attempts used up), else ``FAILURES``."""
    restart = service.spec.task.restart
    if restart.condition == RestartCondition.NONE:
        return 1
    if restart.max_attempts > 0:
        return restart.max_attempts + 1
    return FAILURES


def _failed(service: Service, tasks: Sequence[Task], nodes: Mapping[str, str], why: str) -> View:
    shown = view(replace(service, update_status=None), tasks, nodes, 0)
    return View(shown.lines, shown.done, shown.total, "failed", why)


def _slots(
    service: Service, tasks: Sequence[Task], nodes: Mapping[str, str]
) -> list[tuple[str, list[Task]]]:
    mode = service.spec.mode
    if mode.kind in ("global", "global-job"):
        by_node: dict[str, list[Task]] = {}
        for t in tasks:
            if t.node_id:
                by_node.setdefault(t.node_id, []).append(t)
        # Nodes the service still means to run on (not those it left).
        live = {
            n: ts
            for n, ts in by_node.items()
            if any(t.desired_state <= TaskState.COMPLETE for t in ts)
        }
        return sorted((nodes.get(n, n), ts) for n, ts in live.items())
    count = mode.total_completions if mode.kind == "replicated-job" else mode.replicas
    by_slot: dict[int, list[Task]] = {}
    for t in tasks:
        by_slot.setdefault(t.slot, []).append(t)
    return [(f"{i}/{count}", by_slot.get(i, [])) for i in range(1, count + 1)]


def _current(slot: Sequence[Task]) -> Task | None:
    """The task that stands for the slot now: the newest meant to run (or
    complete), else the newest of all."""
    if not slot:
        return None
    live = [t for t in slot if t.desired_state <= TaskState.COMPLETE]
    return max(live or slot, key=lambda t: (t.meta.created_index, t.meta.version))
