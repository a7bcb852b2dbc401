"""The job orchestrator, as a pure core: replicated jobs and global jobs.

A job's tasks run to completion. A task that completes is never restarted (it
is marked desired COMPLETE, as SwarmKit shows it); one that fails follows the
restart policy, counted per slot within the job's iteration; a slot whose task
failed and may not restart stays failed.

- replicated-job: ``total_completions`` slots (1..N), at most ``max_concurrent``
  of them (0: all) running at once; new tasks fill the lowest free slots.
- global-job: one task on every READY, ACTIVE node that satisfies the
  constraints and platforms, made assigned to its node (slot 0).

Every update of a job starts its next iteration (``Service.job_iteration``):
tasks of older iterations still running are removed, finished ones stay as
history, and the job runs again from nothing (so `service update --force`
re-runs it). A running task on a node that is removed, drained or down is
stopped and its slot filled again.
"""

from __future__ import annotations

from collections.abc import Callable

from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import JOB_KINDS, Node, Service, Task, replace
from pyswarmkit.api.states import NodeAvailability, TaskState
from pyswarmkit.orchestrator.restart import RestartHistory, RestartKey, wants_restart
from pyswarmkit.orchestrator.support import (
    Delays,
    age,
    created,
    current,
    fits_node,
    history_limit,
    node_gone,
    shut_down,
    takes_new_tasks,
    trim,
)
from pyswarmkit.orchestrator.tasks import is_live, new_task, with_desired
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore, Tx

_FAILED = (TaskState.FAILED, TaskState.REJECTED)


def is_job(service: Service) -> bool:
    return service.spec.mode.kind in JOB_KINDS


def concurrency(service: Service) -> int:
    mode = service.spec.mode
    return mode.max_concurrent or mode.total_completions


class JobsOrchestrator:
    def __init__(self, id_gen: Callable[[], str] = new_id) -> None:
        self.id_gen = id_gen
        self.restarts = RestartHistory()
        self.delays = Delays()
        self._dirty: set[str] = set()
        # The job services, so that other services' task events cost nothing.
        self._jobs: set[str] = set()
        self._all = False
        self._poked = False

    # --- input ------------------------------------------------------------

    def reset(self, store: MemoryStore, now: float, wall: float, resync: bool = False) -> None:
        """Look at every job again; restart counts (within the current iteration)
        and delays are rebuilt from the tasks as the other cores do."""
        self._poked = True
        self._all = True
        kept_delays = self.delays if resync else None
        kept_restarts = self.restarts if resync else None
        self.delays = Delays()
        self.restarts = RestartHistory()
        slots: dict[RestartKey, list[Task]] = {}
        # Picked out before the consistent view below, which holds the
        # store's writes (a pass over every service of a large store took a
        # tenth of a second): a service written meanwhile comes as an event.
        self._jobs = {s.id for s in store.services() if is_job(s)}
        with store.reading():
            for sid in sorted(self._jobs):
                s = store.get_service(sid)  # as it is now
                if s is None or not is_job(s):
                    continue
                for t in store.tasks_by_service(s.id):
                    if t.job_iteration != s.job_iteration:
                        continue
                    slots.setdefault(_key(s, t), []).append(t)
                    if t.desired_state == TaskState.READY:
                        if kept_delays is not None and t.id in kept_delays.when:
                            self.delays.add(t.id, kept_delays.when[t.id])
                        else:
                            self.delays.rebuild(t, now, wall)
        if kept_restarts is not None:
            self.restarts = kept_restarts
            return
        for key, tasks in slots.items():
            for t in sorted(tasks, key=age)[1:]:
                when = min(now, now + created(t) - wall)
                self.restarts.record(t.spec.restart, key, t.job_iteration, when)

    def observe(self, batch: EventBatch) -> None:
        for ev in batch.events:
            obj = ev.obj
            if ev.kind == "service":
                assert isinstance(obj, Service)
                if ev.op == "delete":
                    self.restarts.forget_service(obj.id)
                    self._dirty.discard(obj.id)
                    self._jobs.discard(obj.id)
                elif is_job(obj):
                    self._jobs.add(obj.id)
                    self._dirty.add(obj.id)
                    self._poked = True
            elif ev.kind == "node" and self._jobs:
                # A node coming, going or changing: every job looks (few jobs,
                # and a global job needs a task on a new node).
                self._all = True
                self._poked = True
            elif ev.kind == "task":
                assert isinstance(obj, Task)
                if ev.op == "delete":
                    self.delays.drop(obj.id)
                elif obj.service_id in self._jobs and obj.status.state.terminal:
                    # One stopped by us may still report it completed: its
                    # slot is done then, and a replacement made meanwhile goes.
                    self._dirty.add(obj.service_id)
                    self._poked = True

    def due(self, now: float) -> bool:
        return self._poked or self.delays.due(now)

    # --- decisions -------------------------------------------------------

    def step(self, store: MemoryStore, now: float, wall: float) -> list[Change]:
        tx = Tx(store)
        with store.reading():
            self.delays.start_due(tx, now)
            # All: the jobs known (reset and observe keep them); scanning every
            # service here cost a large store's new leader a tenth of a second.
            ids = sorted(self._jobs if self._all else self._dirty)
            nodes = {n.id: n for n in store.nodes()}
            for sid in ids:
                service = store.get_service(sid)
                if service is None or not is_job(service):
                    continue
                if service.spec.mode.kind == "replicated-job":
                    self._replicated(store, tx, service, nodes, now, wall)
                else:
                    self._global(store, tx, service, nodes, now, wall)
        self._dirty.clear()
        self._all = False
        self._poked = False
        return tx.changes

    def _tasks(self, store: MemoryStore, tx: Tx, service: Service) -> list[Task]:
        """The current iteration's tasks; older iterations' running tasks go."""
        out = []
        for t in current(tx, store.tasks_by_service(service.id)):
            if t.job_iteration == service.job_iteration:
                out.append(t)
            elif t.desired_state < TaskState.REMOVE and t.status.state <= TaskState.RUNNING:
                tx.update(with_desired(t, TaskState.REMOVE))
            elif is_live(t):
                shut_down(tx, t)
        return out

    def _replicated(
        self,
        store: MemoryStore,
        tx: Tx,
        service: Service,
        nodes: dict[str, Node],
        now: float,
        wall: float,
    ) -> None:
        by_slot: dict[int, list[Task]] = {}
        for t in self._tasks(store, tx, service):
            by_slot.setdefault(t.slot, []).append(t)
        total = service.spec.mode.total_completions
        active = done = 0
        taken: set[int] = set()
        for slot, tasks in sorted(by_slot.items()):
            state = self._slot(tx, service, slot, tasks, nodes, now, wall)
            if state == "free":
                continue
            taken.add(slot)
            if state == "active":
                active += 1
            else:
                done += 1  # completed, or failed for good
        room = min(concurrency(service) - active, total - active - done)
        slot = 0
        for _ in range(max(room, 0)):
            slot += 1
            while slot in taken:
                slot += 1
            self._create(tx, service, slot, "", now, wall, restart=bool(by_slot.get(slot)))
        keep = history_limit(store, service)
        for slot in by_slot:
            trim(tx, current(tx, store.tasks_by_slot(service.id, slot)), keep)

    def _global(
        self,
        store: MemoryStore,
        tx: Tx,
        service: Service,
        nodes: dict[str, Node],
        now: float,
        wall: float,
    ) -> None:
        by_node: dict[str, list[Task]] = {}
        for t in self._tasks(store, tx, service):
            by_node.setdefault(t.node_id, []).append(t)
        settled: dict[str, str] = {}
        for node_id, tasks in sorted(by_node.items()):
            node = nodes.get(node_id)
            if node is None or node_gone(node) or not fits_node(service, node):
                for t in tasks:
                    if is_live(t) and not t.status.state.terminal:
                        shut_down(tx, t)
                # Its task stopped there and does not run elsewhere.
                settled[node_id] = "gone"
                continue
            settled[node_id] = self._slot(tx, service, 0, tasks, nodes, now, wall)
        for node_id, node in sorted(nodes.items()):
            if settled.get(node_id, "free") != "free":
                continue
            if takes_new_tasks(node) and fits_node(service, node):
                self._create(tx, service, 0, node_id, now, wall, restart=node_id in by_node)
        keep = history_limit(store, service)
        for node_id in by_node:
            trim(tx, [t for t in current(tx, by_node[node_id])], keep)

    def _slot(
        self,
        tx: Tx,
        service: Service,
        slot: int,
        tasks: list[Task],
        nodes: dict[str, Node],
        now: float,
        wall: float,
    ) -> str:
        """Settle one slot (of a replicated job; for a global job, one node) and
        say what it is: "complete", "active" (a task runs or will), "failed"
        (for good) or "free" (nothing counts: fill it)."""
        live = [t for t in tasks if is_live(t)]
        if any(t.status.state == TaskState.COMPLETE for t in tasks):
            for t in live:
                if t.status.state == TaskState.COMPLETE:
                    tx.update(with_desired(t, TaskState.COMPLETE))
                else:
                    shut_down(tx, t)
            return "complete"
        running = [t for t in live if not t.status.state.terminal]
        ended = [t for t in live if t.status.state.terminal]
        for t in ended:
            shut_down(tx, t)
        if slot and running:
            # A replicated job's task on a node that went away runs again elsewhere.
            for t in running:
                if t.node_id and node_gone(nodes.get(t.node_id)):
                    shut_down(tx, t)
            running = [t for t in running if not (t.node_id and node_gone(nodes.get(t.node_id)))]
        if running:
            return "active"
        newest = max(ended, key=age) if ended else (max(tasks, key=age) if tasks else None)
        if newest is None or newest.status.state not in _FAILED:
            return "free"
        node = nodes.get(newest.node_id)
        if not slot and node is not None and node.spec.availability == NodeAvailability.PAUSE:
            return "failed"  # nothing restarts on a paused node
        policy = newest.spec.restart
        key = _key(service, newest)
        if wants_restart(policy, newest) and self.restarts.allowed(
            policy, key, newest.job_iteration, now
        ):
            if ended:
                node_id = "" if slot else newest.node_id
                self._create(tx, service, slot, node_id, now, wall, policy.delay, restart=True)
                return "active"
            return "free"
        return "failed"

    def _create(
        self,
        tx: Tx,
        service: Service,
        slot: int,
        node_id: str,
        now: float,
        wall: float,
        delay: float = 0.0,
        restart: bool = False,
    ) -> None:
        """A task for the slot (or node); ``restart`` when the slot already had
        one in this iteration, the rule ``reset`` rebuilds the counts by."""
        desired = TaskState.READY if delay > 0 else TaskState.RUNNING
        task = new_task(service, slot, wall, self.id_gen, desired)
        task = replace(task, node_id=node_id, job_iteration=service.job_iteration)
        tx.create(task)
        if delay > 0:
            self.delays.add(task.id, now + delay)
        if restart:
            self.restarts.record(task.spec.restart, _key(service, task), task.job_iteration, now)


def _key(service: Service, task: Task) -> RestartKey:
    """A replicated job's restarts count per slot, a global job's per node."""
    return (service.id, task.slot if task.slot else task.node_id)
