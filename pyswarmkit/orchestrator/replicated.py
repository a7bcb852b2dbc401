"""The replicated-service orchestrator and task reaper, as one pure core.

Store events mark what needs a look; ``step(store, now, wall)`` looks and
returns one batch of changes: tasks to create for empty slots, tasks to stop
when a service scales down or its spec changes, restarts per policy, removals,
and the trim of old task history. ``now`` is monotonic and times restart delays
and windows; ``wall`` only stamps the tasks it creates. It reads the store it is
handed and keeps only what the store does not say directly (restart counts and
when each waiting restart may start), and rebuilds both from the store on
``reset``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import INT64_MAX, Node, Service, Task
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.orchestrator.restart import RestartHistory, SlotKey, wants_restart
from pyswarmkit.orchestrator.tasks import (
    is_dirty,
    is_history,
    is_live,
    new_task,
    with_desired,
)
from pyswarmkit.orchestrator.update import Updates
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore, Tx

DEFAULT_HISTORY = 5


@dataclass(slots=True)
class _Slot:
    """A slot that counts toward the service's replicas: its live tasks, or the
    finished task that stays finished (SwarmKit's updatable slot)."""

    number: int
    tasks: list[Task]

    @property
    def running(self) -> bool:
        return any(t.status.state == TaskState.RUNNING for t in self.tasks)


# A step reconciles at most this many services, holding the store's lock
# meanwhile: about 25 ms of work. A new leader looks at every service again;
# with 150,000 in the store one pass held every write for over a second.
DIRTY_PER_STEP = 4096


class ReplicatedOrchestrator:
    def __init__(self, id_gen: Callable[[], str] = new_id) -> None:
        self.id_gen = id_gen
        self.restarts = RestartHistory()
        # Restart tasks waiting out their delay (desired READY): task id -> the
        # monotonic time they may start. A heap finds the next one due.
        self.delayed: dict[str, float] = {}
        self._timers: list[tuple[float, str]] = []
        self._dirty_services: set[str] = set()
        # The pass's dirty services, in the order they are taken (popped from
        # the end), while more are dirty than one step reconciles (see
        # DIRTY_PER_STEP).
        self._backlog: list[str] = []
        self._finished: set[str] = set()
        # Tasks desired REMOVE to look at in the next reap: those whose events
        # arrived since the last one. Whether a task can be deleted depends only
        # on its own fields, so one that did not change need not be looked at again.
        self._reap_next: set[str] = set()
        self._trim: set[SlotKey] = set()
        self._deleted_services: set[str] = set()
        self._drained_nodes: set[str] = set()
        # Nodes that live tasks were seen placed on since the last step.
        self._placed_on: set[str] = set()
        # Something arrived since the last step. Tasks waiting to be reaped are
        # looked at again only then, not on every tick.
        self._poked = False
        # What this step created, per slot and per service.
        self._created: set[SlotKey] = set()
        self._made: dict[str, list[Task]] = {}
        # Rolling updates in progress (orchestrator/update.py).
        self.updates = Updates()

    # --- input ------------------------------------------------------------

    def reset(self, store: MemoryStore, now: float, wall: float, resync: bool = False) -> None:
        """Look at everything again (start, leadership gain, a refused batch).

        ``resync`` is for the same leader looking again (a refused batch): the
        restart times it already holds run on its own monotonic clock and are
        kept, so a wall clock set meanwhile moves none of them; only a waiting
        task it does not know yet is timed from the store.

        Restart counts and pending delays are rebuilt from the tasks, as
        SwarmKit's orchestrator does at start: in a slot, every task of the
        newest spec version but the first was a restart, made when it was
        created; a task still desired READY waits until its creation plus its
        restart delay. Wall times from the store become monotonic ones through
        the offset between the two clocks now; a wait never grows past the
        delay, so a wall clock set back cannot stretch it."""
        self._poked = True
        known = self.delayed if resync else {}
        kept = self.restarts if resync else None
        if not resync:
            # A new leader starts updates afresh over the slots still dirty,
            # as SwarmKit's does; the same leader keeps its failure counts and
            # delays (the updater re-derives what a refused batch lost).
            self.updates = Updates()
        self.restarts = RestartHistory()
        self.delayed = {}
        self._timers = []
        slots: dict[SlotKey, list[Task]] = {}
        # Every service is looked at. Read before the consistent view below,
        # which holds the store's writes: a service written meanwhile comes as
        # an event, and one deleted is passed over.
        ids = store.ids("service")
        self._dirty_services = set(ids)
        # A pass longer than a step goes in the store's order: sorting
        # hundreds of thousands of IDs would stop every thread for a third
        # of a second, just as a new leader takes over.
        self._backlog = ids[::-1] if len(ids) > DIRTY_PER_STEP else []
        with store.reading():
            self._drained_nodes = {n.id for n in store.nodes() if _drained("update", n)}
            for t in store.tasks():
                self._note_task(t)
                if not t.service_id:
                    continue
                if store.get_service(t.service_id) is None:
                    self._deleted_services.add(t.service_id)
                    continue
                if t.desired_state != TaskState.REMOVE:
                    slots.setdefault((t.service_id, t.slot), []).append(t)
                if t.desired_state == TaskState.READY:
                    if t.id in known:
                        self._delay(t.id, known[t.id])
                        continue
                    delay = t.spec.restart.delay
                    left = min(delay, _created(t) + delay - wall)
                    self._delay(t.id, now + left)
        if kept is not None:
            self.restarts = kept
            return
        for key, tasks in slots.items():
            newest = max(t.spec_version for t in tasks)
            current = sorted((t for t in tasks if t.spec_version == newest), key=_age)
            for t in current[1:]:
                when = min(now, now + _created(t) - wall)
                self.restarts.record(t.spec.restart, key, t.spec_version, when)

    def observe(self, batch: EventBatch) -> None:
        self._poked = True
        for ev in batch.events:
            if ev.kind == "service":
                if ev.op == "delete":
                    self._deleted_services.add(ev.obj.id)
                    self._dirty_services.discard(ev.obj.id)
                    self.updates.forget(ev.obj.id)
                else:
                    self._dirty_services.add(ev.obj.id)
            elif ev.kind == "task":
                assert isinstance(ev.obj, Task)
                if ev.op == "delete":
                    self.delayed.pop(ev.obj.id, None)
                    self._reap_next.discard(ev.obj.id)
                else:
                    self._note_task(ev.obj)
                if self.updates.updating(ev.obj.service_id):
                    # A rolling update waits on its tasks' states.
                    self._dirty_services.add(ev.obj.service_id)
            elif ev.kind == "node" and isinstance(ev.obj, Node) and _drained(ev.op, ev.obj):
                self._drained_nodes.add(ev.obj.id)

    def _note_task(self, t: Task) -> None:
        # Runs for every task event: is_live, terminal and is_history inlined.
        state = t.status.state
        if t.desired_state <= TaskState.RUNNING:
            if state > TaskState.RUNNING:
                self._finished.add(t.id)
            elif t.node_id:
                # Checked once per step: a placement committed just after its
                # node was removed must not stay on a node that does not exist.
                self._placed_on.add(t.node_id)
            return
        if t.desired_state == TaskState.REMOVE:
            self._reap_next.add(t.id)
        if t.service_id and (state > TaskState.RUNNING or state < TaskState.ASSIGNED):
            self._trim.add((t.service_id, t.slot))

    def due(self, now: float) -> bool:
        if self._poked or bool(self._timers and self._timers[0][0] <= now):
            return True
        wake = self.updates.next_wake()
        return wake is not None and wake <= now

    def _delay(self, task_id: str, when: float) -> None:
        self.delayed[task_id] = when
        heapq.heappush(self._timers, (when, task_id))

    # --- decisions -------------------------------------------------------

    def step(self, store: MemoryStore, now: float, wall: float) -> list[Change]:
        tx = Tx(store)
        self._created = set()
        self._made = {}
        self._dirty_services.update(self.updates.due(now))
        dirty = self._next_dirty()
        with store.reading():
            self._start_delayed(tx, now)
            self._restart_finished(store, tx, now, wall)
            self._drained_nodes.update(n for n in self._placed_on if store.get_node(n) is None)
            self._placed_on.clear()
            self._move_off_drained(store, tx, now, wall)
            for sid in sorted(self._deleted_services):
                self._remove_service_tasks(store, tx, sid)
            for sid in dirty:
                service = store.get_service(sid)
                if service is not None and replicated(service):
                    self._reconcile(store, tx, service, now, wall)
            self._reap(store, tx)
            self._trim_history(store, tx)
        self._deleted_services.clear()
        # Services left for the next step keep it due.
        self._poked = bool(self._dirty_services)
        self._made = {}
        return tx.changes

    def _next_dirty(self) -> list[str]:
        """The dirty services this step reconciles: all of them, in ID
        order, or DIRTY_PER_STEP when more are dirty (a new leader's first
        pass over a large store, in the store's order), the rest in later
        steps, so the step's hold on the store never keeps writes waiting long."""
        dirty = self._dirty_services
        if len(dirty) <= DIRTY_PER_STEP:
            self._backlog = []
            out = sorted(dirty)
            dirty.clear()
            return out
        if not self._backlog:
            # Sorted once for the whole pass (a reset gave the store's order);
            # services made dirty meanwhile are taken in the next pass, or
            # with the last chunk of this one.
            self._backlog = sorted(dirty, reverse=True)
        out = []
        while self._backlog and len(out) < DIRTY_PER_STEP:
            sid = self._backlog.pop()
            if sid in dirty:
                dirty.remove(sid)
                out.append(sid)
        return out

    def _current(self, tx: Tx, task_id: str) -> Task | None:
        obj = tx.get("task", task_id)
        return obj if isinstance(obj, Task) else None

    def _current_all(self, tx: Tx, tasks: Iterable[Task]) -> list[Task]:
        found = (self._current(tx, t.id) for t in tasks)
        return [t for t in found if t is not None]

    def _start_delayed(self, tx: Tx, now: float) -> None:
        """Restarts whose delay is over are told to run (desired RUNNING)."""
        while self._timers and self._timers[0][0] <= now:
            when, tid = heapq.heappop(self._timers)
            if self.delayed.get(tid) != when:
                continue  # superseded or dropped
            del self.delayed[tid]
            task = self._current(tx, tid)
            # One that already stopped is restarted by _restart_finished.
            if (
                task is not None
                and task.desired_state == TaskState.READY
                and not task.status.state.terminal
            ):
                tx.update(with_desired(task, TaskState.RUNNING))

    def _restart_finished(self, store: MemoryStore, tx: Tx, now: float, wall: float) -> None:
        for tid in sorted(self._finished):
            task = self._current(tx, tid)
            if task is None or not is_live(task) or not task.status.state.terminal:
                self._finished.discard(tid)
                continue
            owner = store.get_service(task.service_id)
            if owner is not None and not replicated(owner):
                self._finished.discard(tid)
                continue
            if tid in self.delayed:
                # A restart that failed before its own delay ended (it could
                # not even be prepared) is restarted only once that delay is
                # over, so a broken task never loops faster than its policy.
                continue
            self._finished.discard(tid)
            tx.update(with_desired(task, TaskState.SHUTDOWN))
            service = store.get_service(task.service_id)
            if service is None:
                continue
            policy = task.spec.restart
            key = (task.service_id, task.slot)
            if wants_restart(policy, task) and self.restarts.allowed(
                policy, key, task.spec_version, now
            ):
                self._create(store, tx, service, task.slot, now, wall, delay=policy.delay)

    def _move_off_drained(self, store: MemoryStore, tx: Tx, now: float, wall: float) -> None:
        """Tasks on a drained, down or removed node stop there and start again elsewhere."""
        for node_id in sorted(self._drained_nodes):
            for task in self._current_all(tx, store.tasks_by_node(node_id)):
                if not is_live(task) or task.node_id != node_id:
                    continue
                service = store.get_service(task.service_id)
                if service is not None and not replicated(service):
                    continue
                tx.update(with_desired(task, TaskState.SHUTDOWN))
                if service is not None:
                    self._create(store, tx, service, task.slot, now, wall)
        self._drained_nodes.clear()

    def _create(
        self,
        store: MemoryStore,
        tx: Tx,
        service: Service,
        slot: int,
        now: float,
        wall: float,
        delay: float = 0.0,
    ) -> None:
        """A new task for the slot, unless this step already made one.

        With a delay it is created at once but desired READY, and told to run
        when the delay ends. It counts as a restart of the slot when the slot
        already holds a task of the same spec version: the rule a new leader
        uses to rebuild the counts, so the two always agree."""
        key = (service.id, slot)
        if key in self._created:
            return
        self._created.add(key)
        desired = TaskState.READY if delay > 0 else TaskState.RUNNING
        task = new_task(service, slot, wall, self.id_gen, desired)
        tx.create(task)
        self._made.setdefault(service.id, []).append(task)
        if delay > 0:
            self._delay(task.id, now + delay)
        if task.spec.restart.max_attempts <= 0:
            return  # nothing to count
        earlier = self._current_all(tx, store.tasks_by_slot(service.id, slot))
        if any(
            t.spec_version == task.spec_version and t.desired_state != TaskState.REMOVE
            for t in earlier
        ):
            self.restarts.record(task.spec.restart, key, task.spec_version, now)

    def _slot_done(self, tasks: list[Task], service: Service, now: float) -> Task | None:
        """The slot's newest task, when it finished and its restart policy says
        it stays finished: the slot counts as filled (SwarmKit's dead slot)."""
        if not tasks:
            return None
        newest = max(tasks, key=_age)
        if is_live(newest) or not newest.status.state.terminal or is_dirty(newest, service):
            return None
        if newest.desired_state != TaskState.SHUTDOWN:
            return None
        policy = newest.spec.restart
        key = (service.id, newest.slot)
        if wants_restart(policy, newest) and self.restarts.allowed(
            policy, key, newest.spec_version, now
        ):
            return None
        return newest

    def _reconcile(
        self, store: MemoryStore, tx: Tx, service: Service, now: float, wall: float
    ) -> None:
        want = service.spec.mode.replicas
        by_number: dict[int, list[Task]] = {}
        for t in self._current_all(tx, store.tasks_by_service(service.id)):
            by_number.setdefault(t.slot, []).append(t)
        for t in self._made.get(service.id, []):
            by_number.setdefault(t.slot, []).append(t)
        slots: list[_Slot] = []
        for number, tasks in sorted(by_number.items()):
            live = [t for t in tasks if is_live(t)]
            if live:
                slots.append(_Slot(number, live))
                continue
            done = self._slot_done(tasks, service, now)
            if done is not None:
                slots.append(_Slot(number, [done]))
        if len(slots) > want:
            kept = _scale_down_order(slots)
            for slot in kept[want:]:
                self._remove_slot(tx, service.id, by_number[slot.number])
            slots = kept[:want]
        if self._update(tx, service, slots, by_number, now, wall):
            return  # rolled back: the restored spec is reconciled once committed
        taken = {s.number for s in slots}
        number = 0
        for _ in range(want - len(slots)):
            number += 1
            while number in taken:
                number += 1
            self._create(store, tx, service, number, now, wall)

    def _update(
        self,
        tx: Tx,
        service: Service,
        slots: list[_Slot],
        by_number: dict[int, list[Task]],
        now: float,
        wall: float,
    ) -> bool:
        """Tasks made from another spec are replaced by the rolling updater,
        slot by slot. True when the updater rolled the service's spec back."""
        view = {
            s.number: [t for t in by_number[s.number] if t.desired_state != TaskState.REMOVE]
            for s in slots
        }

        def make(key: object, desired: TaskState) -> Task:
            assert isinstance(key, int)
            return new_task(service, key, wall, self.id_gen, desired)

        step = self.updates.step(service, view, now, wall, make)
        for t in step.desired:
            tx.update(t)
        for t in step.create:
            tx.create(t)
            self._created.add((service.id, t.slot))
            self._made.setdefault(service.id, []).append(t)
        if step.service is None:
            return False
        tx.update(step.service)
        return step.service.spec != service.spec

    def _remove_slot(self, tx: Tx, service_id: str, tasks: list[Task]) -> None:
        """Scale down: every task of the slot goes, its history included; the
        agents stop the live ones and the reaper deletes each once it is done."""
        for t in tasks:
            current = self._current(tx, t.id)
            if current is not None and current.desired_state < TaskState.REMOVE:
                tx.update(with_desired(current, TaskState.REMOVE))
                self._reap_next.add(t.id)
        if tasks:
            self.restarts.forget_slot((service_id, tasks[0].slot))

    def _remove_service_tasks(self, store: MemoryStore, tx: Tx, service_id: str) -> None:
        for t in store.tasks_by_service(service_id):
            current = self._current(tx, t.id)
            if current is not None and current.desired_state < TaskState.REMOVE:
                tx.update(with_desired(current, TaskState.REMOVE))
                self._reap_next.add(t.id)
        self.restarts.forget_service(service_id)

    def _reap(self, store: MemoryStore, tx: Tx) -> None:
        """Delete the tasks desired REMOVE that are done with: never placed, or
        finished. One that is not yet is looked at again when it changes."""
        for tid in sorted(self._reap_next):
            task = self._current(tx, tid)
            if task is None or task.desired_state != TaskState.REMOVE:
                continue
            unassigned = not task.node_id or task.status.state < TaskState.ASSIGNED
            if unassigned or task.status.state.terminal:
                tx.delete(task)
        self._reap_next.clear()

    def _trim_history(self, store: MemoryStore, tx: Tx) -> None:
        limit = DEFAULT_HISTORY
        clusters = store.clusters()
        if clusters:
            limit = clusters[0].spec.orchestration.task_history_retention_limit
        for key in sorted(self._trim):
            service = store.get_service(key[0])
            if service is not None and not replicated(service):
                continue
            keep = _history_limit(limit, service)
            if keep is None:
                continue
            # The limit counts every task of the slot, the running one included.
            tasks = self._current_all(tx, store.tasks_by_slot(*key))
            old = [t for t in tasks if is_history(t)]
            excess = len(tasks) - keep
            if excess > 0:
                old.sort(key=_age)
                for t in old[:excess]:
                    tx.delete(t)
        self._trim.clear()


def replicated(service: Service) -> bool:
    """This core's services; global services and jobs have their own (global_.py, jobs.py)."""
    return service.spec.mode.kind == "replicated"


def _history_limit(limit: int, service: Service | None) -> int | None:
    """How many tasks a slot keeps; None keeps them all.

    A negative cluster limit keeps everything. With max attempts set, a slot
    keeps at least max attempts + 1 tasks, enough for a new leader to count the
    restarts of the current spec version again."""
    if limit < 0:
        return None
    if service is not None and service.spec.task.restart.max_attempts > 0:
        return max(limit, service.spec.task.restart.max_attempts + 1)
    return limit


def _scale_down_order(slots: list[_Slot]) -> list[_Slot]:
    """Slots in the order they are kept; a scale down removes from the end.

    SwarmKit's order: running slots before the others, lower slot numbers
    first; then each slot is numbered as the n-th copy of the service on its
    node and the order is by that number, slots without exactly one placed task
    last. So the first removed are tasks not placed, then those on the nodes
    holding the most copies, not running before running, highest slots first."""
    ordered = sorted(slots, key=lambda s: (not s.running, s.number))
    per_node: dict[str, int] = {}
    copy: dict[int, int] = {}
    for s in ordered:
        if len(s.tasks) == 1 and s.tasks[0].node_id:
            node = s.tasks[0].node_id
            per_node[node] = per_node.get(node, 0) + 1
            copy[s.number] = per_node[node]
    # Stable: equal copy numbers keep the running-then-slot order.
    return sorted(ordered, key=lambda s: (s.number not in copy, copy.get(s.number, 0)))


def _age(task: Task) -> int:
    """Orders a slot's tasks oldest first by when the store created them, not
    by wall-clock times, which move when the clock is set. A task not yet
    committed (made in this step) is the newest."""
    return task.meta.created_index or INT64_MAX


def _created(task: Task) -> float:
    """When the task was created (wall); the store stamps it on commit."""
    return task.meta.created_at or task.status.timestamp


def _drained(op: str, node: Node) -> bool:
    """Tasks on this node must run elsewhere: it was removed, drained, or is down."""
    return (
        op == "delete"
        or node.spec.availability == NodeAvailability.DRAIN
        or node.status.state == NodeState.DOWN
    )
