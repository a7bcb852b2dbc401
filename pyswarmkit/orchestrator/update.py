"""Rolling updates and rollbacks, as a pure core (SwarmKit's updater).

A service whose tasks were made from another spec than its own is updated slot
by slot, following its update settings (``spec.update``, or ``spec.rollback``
while its status is ``ROLLBACK_STARTED``). The core owns no clock and writes
nothing: the orchestrator hands it what the store holds and applies what it
returns, in the same batch as its own changes.

The whole API::

    updates = Updates()
    step = updates.step(service, slots, now, wall, make_task)
    # step.create: new tasks; step.desired: tasks with a new desired state;
    # step.service: the service with a new update status (or, for an automatic
    # rollback, its previous spec back); step.wake_at: when to step again even
    # if nothing happens (a delay or a monitor window ends).
    updates.updating(service_id)   # an update runs: step it on its tasks' events
    updates.due(now)               # services whose wake_at has come
    updates.forget(service_id)     # the service was deleted

``slots`` maps a slot key to every task of that slot that is not being removed
(its live tasks and its history). The key is whatever the caller uses: the
slot number for a replicated service, the node ID for a global one; the core
never looks inside it, only orders keys by ``sort_key`` (numbers first, then
text). ``make_task(key, desired)`` returns a new task of the service's current
spec for that slot, desired READY (stop-first: it starts once the old task
stopped) or RUNNING (start-first). ``now`` is monotonic, ``wall`` stamps the
update status.

The semantics are SwarmKit's (``manager/orchestrator/update/updater.go``):

- A slot is dirty when it holds more than one live task or its live task was
  made from another spec. An update takes dirty slots in key order, at most
  ``parallelism`` at a time (0: all at once); a slot is done when its new task
  reached RUNNING (or went past it), and the worker that did it rests ``delay``
  before it takes the next slot. Replacements keep the slot.
- stop-first (the default): the old task is told to stop and the new one is
  created desired READY (placed and prepared); it is told to run once the old
  one stopped, never reached a node, or after ``OLD_TASK_TIMEOUT``.
  start-first: the new task runs at once; the old one is stopped only when the
  new one is RUNNING, so a slot never goes without a running task.
- A slot that already holds a task of the new spec (a restart made from it)
  keeps that one and stops the others; no new task is made.
- Failures: a task this update made that ends by itself (FAILED, COMPLETE,
  REJECTED, ORPHANED; not SHUTDOWN, which is a stop asked for) before it ran
  for ``monitor`` seconds counts. Once failures / dirty slots at the start
  exceed ``max_failure_ratio``, the failure action runs: ``pause`` (status
  PAUSED, "update paused due to failure or early termination of task X"),
  ``rollback`` (the previous spec comes back, status ROLLBACK_STARTED, "update
  rolled back due to failure or early termination of task X"; a rollback
  itself is never rolled back, it pauses as ROLLBACK_PAUSED), or ``continue``.
- When every slot is done the update watches for ``monitor`` more seconds and
  then completes ("update completed" / "rollback completed"). Unlike
  SwarmKit, the worker that did the last slot does not rest ``delay`` first:
  the delay separates batches, it does not follow the last one.
- A paused update does nothing until the service is updated again. A change
  of the service's spec supersedes a running update: the next step starts one
  toward the new spec.

The core's decisions are level-based: each step derives what to write from
the store it is handed (a stop, a start, a status), so a batch the store
refused is simply decided again. What it keeps in memory (which tasks it made
and when they started running, the failures counted, resting workers) is lost
with leadership, as in SwarmKit: a new leader starts the update afresh over the
slots still dirty.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyswarmkit.api.objects import Service, ServiceSpec, Task, UpdateConfig, UpdateStatus, replace
from pyswarmkit.api.states import TaskState, UpdateState
from pyswarmkit.orchestrator.tasks import is_dirty, is_live, with_desired

# How long a stop-first replacement waits for the old task to stop before it
# starts anyway (SwarmKit's restart supervisor's task timeout).
OLD_TASK_TIMEOUT = 60.0

# A slot key: a slot number (replicated) or a node ID (global).
Slots = Mapping[Any, Sequence[Task]]
MakeTask = Callable[[Any, TaskState], Task]

_PAUSED = (UpdateState.PAUSED, UpdateState.ROLLBACK_PAUSED)
_IN_PROGRESS = (UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED)


@dataclass(slots=True)
class UpdateStep:
    create: list[Task] = field(default_factory=list)
    desired: list[Task] = field(default_factory=list)
    service: Service | None = None
    wake_at: float | None = None


@dataclass(slots=True)
class _Busy:
    task_id: str
    start_first: bool


@dataclass(slots=True)
class _Run:
    """One update of one service toward one spec."""

    spec: ServiceSpec
    rollback: bool
    config: UpdateConfig
    queue: deque[Hashable]
    total: int
    workers: int
    busy: dict[Hashable, _Busy] = field(default_factory=dict)
    resting: list[float] = field(default_factory=list)
    # Tasks this update made -> when it first saw them RUNNING (None: not yet).
    updated: dict[str, float | None] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    finished_at: float | None = None
    # The status that ends this run, once decided; written until the store has it.
    ending: UpdateStatus | None = None


def sort_key(key: Hashable) -> tuple[int, str, int]:
    if isinstance(key, int):
        return (0, "", key)
    return (1, str(key), 0)


def settings(service: Service) -> UpdateConfig:
    """The settings the service's current update runs with."""
    status = service.update_status
    if status is not None and status.state == UpdateState.ROLLBACK_STARTED:
        return service.spec.rollback
    return service.spec.update


def slot_dirty(tasks: Sequence[Task], service: Service) -> bool:
    live = [t for t in tasks if is_live(t)]
    return len(live) > 1 or (len(live) == 1 and is_dirty(live[0], service))


def failed_by_itself(task: Task) -> bool:
    """Ended without being asked to: a failure or an early termination."""
    state = task.status.state
    return state.terminal and state != TaskState.SHUTDOWN


def _stopped(task: Task) -> bool:
    """An old task no longer in the way of its replacement."""
    state = task.status.state
    return state > TaskState.RUNNING or state < TaskState.ASSIGNED or not task.node_id


def rolled_back(service: Service, previous: ServiceSpec) -> ServiceSpec:
    """The previous spec, back. The update and rollback settings stay as the
    operator last set them: they say how to change the service, not what it runs."""
    return replace(previous, update=service.spec.update, rollback=service.spec.rollback)


def with_spec(service: Service, spec: ServiceSpec, previous: ServiceSpec | None) -> Service:
    bump = 1 if spec.task != service.spec.task else 0
    return replace(
        service, spec=spec, previous_spec=previous, spec_version=service.spec_version + bump
    )


class Updates:
    """The rolling updates in progress, one per service at most."""

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._wakes: dict[str, float] = {}
        # Stop-first replacements waiting for their old task to stop, per
        # service: task id -> (slot key, when made). Kept apart from the runs:
        # a replacement made by an update that was since superseded or paused
        # still starts.
        self._starts: dict[str, dict[str, tuple[Any, float]]] = {}
        # Slots replaced start-first, per service: their other live tasks stop
        # once a task of the service's spec runs there (the update that made it
        # may have been paused or superseded since).
        self._swaps: dict[str, set[Any]] = {}
        # The slots given a new task in the current step (not yet in ``slots``).
        self._made_keys: set[Any] = set()

    def updating(self, service_id: str) -> bool:
        return service_id in self._runs or service_id in self._starts or service_id in self._swaps

    def due(self, now: float) -> list[str]:
        return sorted(sid for sid, when in self._wakes.items() if when <= now)

    def next_wake(self) -> float | None:
        return min(self._wakes.values(), default=None)

    def forget(self, service_id: str) -> None:
        self._runs.pop(service_id, None)
        self._wakes.pop(service_id, None)
        self._starts.pop(service_id, None)
        self._swaps.pop(service_id, None)

    def step(
        self,
        service: Service,
        slots: Slots,
        now: float,
        wall: float,
        make_task: MakeTask,
    ) -> UpdateStep:
        out = UpdateStep()
        wakes: list[float] = []
        self._made_keys = set()
        self._wakes.pop(service.id, None)
        run = self._decide(service, slots, now, wall, make_task, out, wakes)
        if run is None:
            self._runs.pop(service.id, None)
        else:
            self._runs[service.id] = run
        self._start_ready(service, slots, now, out, wakes)
        self._swap(service, slots, out)
        out.wake_at = min(wakes, default=None)
        if out.wake_at is not None:
            self._wakes[service.id] = out.wake_at
        return out

    def _decide(
        self,
        service: Service,
        slots: Slots,
        now: float,
        wall: float,
        make_task: MakeTask,
        out: UpdateStep,
        wakes: list[float],
    ) -> _Run | None:
        """The run after this step (None: no update in progress)."""
        run = self._runs.get(service.id)
        if run is not None and run.spec != service.spec:
            run = None  # superseded by a newer spec (or rolled back)
        status = service.update_status
        if run is not None and run.ending is not None:
            ending = (run.ending.state, run.ending.message)
            in_progress = status is not None and status.state in _IN_PROGRESS
            if in_progress and status is not None and (status.state, status.message) != ending:
                # Not in the store yet (a refused batch): say it again.
                out.service = replace(service, update_status=run.ending)
                return run
            run = None  # written, or the operator has moved on since
        if status is not None and status.state in _PAUSED:
            return None
        if run is None:
            run = self._start(service, slots, wall, out)
            if run is None:
                return None
        elif status is None:
            out.service = replace(service, update_status=_started(wall))
        self._advance(run, service, slots, now, wall, make_task, out, wakes)
        return run

    def _swap(self, service: Service, slots: Slots, out: UpdateStep) -> None:
        """Start-first slots: once a task of the service's spec runs, the
        slot's other live tasks stop."""
        swapping = self._swaps.get(service.id)
        if not swapping:
            return
        stopping = {t.id for t in out.desired if t.desired_state > TaskState.RUNNING}
        for key in list(swapping):
            live = [t for t in slots.get(key, ()) if is_live(t) and t.id not in stopping]
            if len(live) <= 1 and key not in self._made_keys:
                swapping.discard(key)
                continue
            up = next(
                (
                    t
                    for t in live
                    if t.status.state == TaskState.RUNNING
                    and t.desired_state == TaskState.RUNNING
                    and not is_dirty(t, service)
                ),
                None,
            )
            if up is not None:
                _stop([t for t in live if t.id != up.id], out)
                swapping.discard(key)
        if not swapping:
            del self._swaps[service.id]

    def _start_ready(
        self, service: Service, slots: Slots, now: float, out: UpdateStep, wakes: list[float]
    ) -> None:
        """Stop-first replacements run once the tasks they replace stopped (or
        never reached a node), or after OLD_TASK_TIMEOUT."""
        waiting = self._starts.get(service.id)
        if not waiting:
            return
        created = {t.id for t in out.create}
        stopping = {t.id for t in out.desired if t.desired_state > TaskState.RUNNING}
        for tid, (key, since) in list(waiting.items()):
            if tid in created:
                wakes.append(since + OLD_TASK_TIMEOUT)
                continue
            tasks = slots.get(key, ())
            new = next((t for t in tasks if t.id == tid), None)
            if new is None or new.desired_state != TaskState.READY or tid in stopping:
                del waiting[tid]
                continue
            others = [t for t in tasks if t.id != tid]
            if all(_stopped(t) for t in others) or now >= since + OLD_TASK_TIMEOUT:
                out.desired.append(with_desired(new, TaskState.RUNNING))
                del waiting[tid]
            else:
                wakes.append(since + OLD_TASK_TIMEOUT)
        if not waiting:
            del self._starts[service.id]

    def _start(
        self,
        service: Service,
        slots: Slots,
        wall: float,
        out: UpdateStep,
    ) -> _Run | None:
        status = service.update_status
        dirty = [k for k, tasks in slots.items() if slot_dirty(tasks, service)]
        dirty.sort(key=sort_key)
        if not dirty:
            if status is not None and status.state in _IN_PROGRESS:
                out.service = replace(service, update_status=_completed(status, wall))
            return None
        if status is None:
            out.service = replace(service, update_status=_started(wall))
        rollback = status is not None and status.state == UpdateState.ROLLBACK_STARTED
        config = settings(service)
        workers = config.parallelism if config.parallelism > 0 else len(dirty)
        return _Run(service.spec, rollback, config, deque(dirty), len(dirty), workers)

    def _advance(
        self,
        run: _Run,
        service: Service,
        slots: Slots,
        now: float,
        wall: float,
        make_task: MakeTask,
        out: UpdateStep,
        wakes: list[float],
    ) -> None:
        by_id = {t.id: t for tasks in slots.values() for t in tasks}
        failed = self._watch(run, by_id, now)
        if failed is not None:
            self._fail(run, service, failed, wall, out)
            return
        self._check_busy(run, slots, by_id, now, out)
        if not run.queue and not run.busy:
            # Nothing left in hand: anything still dirty (a stop the store
            # refused, a slot a restart made dirty again) goes round again.
            again = [k for k, tasks in slots.items() if slot_dirty(tasks, service)]
            run.queue.extend(sorted(again, key=sort_key))
        self._dispatch(run, service, slots, now, make_task, out)
        if run.queue or run.busy:
            run.finished_at = None
            wakes.extend(w for w in run.resting if w > now)
        else:
            if run.finished_at is None:
                run.finished_at = now
            done_at = run.finished_at + run.config.monitor
            if now >= done_at:
                status = service.update_status or _started(wall)
                run.ending = _completed(status, wall)
                out.service = replace(service, update_status=run.ending)
            else:
                wakes.append(done_at)

    def _watch(self, run: _Run, by_id: dict[str, Task], now: float) -> Task | None:
        """Note when the tasks this update made started running, and count the
        ones that ended early; the task that tips the failure ratio, if any."""
        config = run.config
        for tid, since in run.updated.items():
            task = by_id.get(tid)
            if task is None:
                continue
            if since is None and task.status.state == TaskState.RUNNING:
                run.updated[tid] = since = now
            if tid in run.failed or not failed_by_itself(task):
                continue
            if since is not None and now - since > config.monitor:
                continue
            if config.failure_action == "continue":
                continue
            run.failed.add(tid)
            if len(run.failed) / run.total > config.max_failure_ratio:
                return task
        return None

    def _fail(self, run: _Run, service: Service, task: Task, wall: float, out: UpdateStep) -> None:
        status = service.update_status or _started(wall)
        what = f"due to failure or early termination of task {task.id}"
        if run.config.failure_action == "rollback" and not run.rollback:
            if service.previous_spec is not None:
                status = replace(
                    status,
                    state=UpdateState.ROLLBACK_STARTED,
                    message=f"update rolled back {what}",
                )
                restored = with_spec(service, rolled_back(service, service.previous_spec), None)
                run.ending = status
                out.service = replace(restored, update_status=status)
                return
            message = f"update paused {what} (no previous spec to roll back to)"
        elif run.rollback:
            message = f"rollback paused {what}"
        else:
            message = f"update paused {what}"
        state = UpdateState.ROLLBACK_PAUSED if run.rollback else UpdateState.PAUSED
        run.ending = replace(status, state=state, message=message)
        out.service = replace(service, update_status=run.ending)

    def _check_busy(
        self,
        run: _Run,
        slots: Slots,
        by_id: dict[str, Task],
        now: float,
        out: UpdateStep,
    ) -> None:
        for key, busy in list(run.busy.items()):
            new = by_id.get(busy.task_id)
            tasks = slots.get(key, ())
            if new is None:
                # Never committed (a refused batch) or its slot went away.
                del run.busy[key]
                if tasks:
                    run.queue.appendleft(key)
                continue
            others = [t for t in tasks if t.id != new.id]
            if new.desired_state > TaskState.RUNNING or new.status.state >= TaskState.RUNNING:
                # Done; a start-first slot's old task is stopped by _swap.
                del run.busy[key]
                if run.config.delay > 0 and run.queue:
                    run.resting.append(now + run.config.delay)
            elif not busy.start_first:
                _stop(others, out)

    def _dispatch(
        self,
        run: _Run,
        service: Service,
        slots: Slots,
        now: float,
        make_task: MakeTask,
        out: UpdateStep,
    ) -> None:
        run.resting = [w for w in run.resting if w > now]
        free = run.workers - len(run.busy) - len(run.resting)
        start_first = run.config.order == "start-first"
        while free > 0 and run.queue:
            key = run.queue.popleft()
            tasks = slots.get(key, ())
            if key in run.busy or not slot_dirty(tasks, service):
                continue
            live = [t for t in tasks if is_live(t)]
            clean = [t for t in live if not is_dirty(t, service)]
            if clean:
                # A task of the new spec is already there (a restart made it):
                # keep it, stop the rest.
                keep = next((t for t in clean if t.desired_state == TaskState.RUNNING), clean[0])
                _stop([t for t in live if t.id != keep.id], out)
                continue
            desired = TaskState.RUNNING if start_first else TaskState.READY
            task = make_task(key, desired)
            out.create.append(task)
            run.updated[task.id] = None
            run.busy[key] = _Busy(task.id, start_first)
            self._made_keys.add(key)
            if start_first:
                self._swaps.setdefault(service.id, set()).add(key)
            else:
                _stop(live, out)
                self._starts.setdefault(service.id, {})[task.id] = (key, now)
            free -= 1


def _stop(tasks: Sequence[Task], out: UpdateStep) -> None:
    for t in tasks:
        if is_live(t):
            out.desired.append(with_desired(t, TaskState.SHUTDOWN))


def _started(wall: float) -> UpdateStatus:
    return UpdateStatus(state=UpdateState.UPDATING, started_at=wall, message="update in progress")


def _completed(status: UpdateStatus, wall: float) -> UpdateStatus:
    if status.state == UpdateState.ROLLBACK_STARTED:
        state, message = UpdateState.ROLLBACK_COMPLETED, "rollback completed"
    else:
        state, message = UpdateState.COMPLETED, "update completed"
    return replace(status, state=state, message=message, completed_at=wall)
