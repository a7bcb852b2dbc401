"""The replicated-service orchestrator and task reaper, as one pure core.

Store events mark what needs a look; ``step(store, now)`` looks and returns one
batch of changes: tasks to create for empty slots, tasks to stop when a service
scales down or its spec changes, restarts per policy, removals, and the trim of
old task history. It reads the store it is handed and keeps only what the store
cannot tell it (restart delays and counts).
"""

from __future__ import annotations

from collections.abc import Callable

from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import Node, Service, Task
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.orchestrator.restart import RestartHistory, wants_restart
from pyswarmkit.orchestrator.tasks import (
    by_slot,
    is_dirty,
    is_history,
    is_live,
    new_task,
    with_desired,
)
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore, Tx

DEFAULT_HISTORY = 5


class ReplicatedOrchestrator:
    def __init__(self, id_gen: Callable[[], str] = new_id) -> None:
        self.id_gen = id_gen
        self.restarts = RestartHistory()
        # (service, slot) -> when its replacement task may be created.
        self.restart_due: dict[tuple[str, int], float] = {}
        self._dirty_services: set[str] = set()
        self._finished: set[str] = set()
        self._removing: set[str] = set()
        self._trim: set[tuple[str, int]] = set()
        self._deleted_services: set[str] = set()
        self._drained_nodes: set[str] = set()
        # Something arrived since the last step. Tasks waiting to be reaped are
        # looked at again only then, not on every tick.
        self._poked = False

    # --- input ------------------------------------------------------------

    def reset(self, store: MemoryStore) -> None:
        """Look at everything again (start, leadership gain)."""
        self._poked = True
        with store.reading():
            self._dirty_services = {s.id for s in store.services()}
            self._drained_nodes = {n.id for n in store.nodes() if _drained("update", n)}
            for t in store.tasks():
                self._note_task(t)
                if t.service_id and store.get_service(t.service_id) is None:
                    self._deleted_services.add(t.service_id)

    def observe(self, batch: EventBatch) -> None:
        self._poked = True
        for ev in batch.events:
            if ev.kind == "service":
                if ev.op == "delete":
                    self._deleted_services.add(ev.obj.id)
                    self._dirty_services.discard(ev.obj.id)
                else:
                    self._dirty_services.add(ev.obj.id)
            elif ev.kind == "task" and ev.op != "delete":
                assert isinstance(ev.obj, Task)
                self._note_task(ev.obj)
            elif ev.kind == "node" and isinstance(ev.obj, Node) and _drained(ev.op, ev.obj):
                self._drained_nodes.add(ev.obj.id)

    def _note_task(self, t: Task) -> None:
        if is_live(t) and t.status.state.terminal:
            self._finished.add(t.id)
        if t.desired_state == TaskState.REMOVE:
            self._removing.add(t.id)
        if t.service_id and is_history(t):
            self._trim.add((t.service_id, t.slot))

    def due(self, now: float) -> bool:
        return self._poked or any(when <= now for when in self.restart_due.values())

    # --- decisions -------------------------------------------------------

    def step(self, store: MemoryStore, now: float) -> list[Change]:
        tx = Tx(store)
        self._created: set[tuple[str, int]] = set()
        with store.reading():
            self._restart_finished(store, tx, now)
            self._move_off_drained(store, tx, now)
            for sid in sorted(self._deleted_services):
                self._remove_service_tasks(store, tx, sid)
            for sid in sorted(self._dirty_services):
                service = store.get_service(sid)
                if service is not None:
                    self._reconcile(store, tx, service, now)
            self._create_due_restarts(store, tx, now)
            self._reap(store, tx)
            self._trim_history(store, tx)
        self._dirty_services.clear()
        self._deleted_services.clear()
        self._poked = False
        return tx.changes

    def _current(self, tx: Tx, task_id: str) -> Task | None:
        obj = tx.get("task", task_id)
        return obj if isinstance(obj, Task) else None

    def _restart_finished(self, store: MemoryStore, tx: Tx, now: float) -> None:
        for tid in sorted(self._finished):
            task = self._current(tx, tid)
            if task is None or not is_live(task) or not task.status.state.terminal:
                continue
            tx.update(with_desired(task, TaskState.SHUTDOWN))
            service = store.get_service(task.service_id)
            if service is None or task.slot > service.spec.mode.replicas:
                continue
            policy = task.spec.restart
            key = (task.service_id, task.slot)
            if wants_restart(policy, task) and self.restarts.allowed(policy, key, now):
                self.restarts.record(key, now)
                self.restart_due[key] = now + policy.delay
        self._finished.clear()

    def _move_off_drained(self, store: MemoryStore, tx: Tx, now: float) -> None:
        """Tasks on a drained, down or removed node stop there and start again elsewhere."""
        for node_id in sorted(self._drained_nodes):
            for t in store.tasks_by_node(node_id):
                task = self._current(tx, t.id)
                if task is None or not is_live(task):
                    continue
                tx.update(with_desired(task, TaskState.SHUTDOWN))
                service = store.get_service(task.service_id)
                if service is not None and task.slot <= service.spec.mode.replicas:
                    self._create(tx, service, task.slot, now)
        self._drained_nodes.clear()

    def _create(self, tx: Tx, service: Service, slot: int, now: float) -> None:
        """A new task for the slot, unless this step already made one."""
        key = (service.id, slot)
        if key not in self._created:
            self._created.add(key)
            tx.create(new_task(service, slot, now, self.id_gen))

    def _slot_done(
        self, store: MemoryStore, tx: Tx, service: Service, slot: int, now: float
    ) -> bool:
        """The slot's newest task finished and its restart policy says it stays
        finished; the slot counts as filled (SwarmKit's dead slot)."""
        tasks = [self._current(tx, t.id) for t in store.tasks_by_slot(service.id, slot)]
        finished = [t for t in tasks if t is not None]
        if not finished:
            return False
        newest = max(finished, key=lambda t: (t.meta.created_at, t.status.timestamp))
        if is_live(newest) or not newest.status.state.terminal or is_dirty(newest, service):
            return False
        if newest.desired_state != TaskState.SHUTDOWN:
            return False
        policy = newest.spec.restart
        key = (service.id, slot)
        return not wants_restart(policy, newest) or not self.restarts.allowed(policy, key, now)

    def _create_due_restarts(self, store: MemoryStore, tx: Tx, now: float) -> None:
        for key, when in sorted(self.restart_due.items()):
            if when > now:
                continue
            del self.restart_due[key]
            service = store.get_service(key[0])
            if service is None or key[1] > service.spec.mode.replicas:
                continue
            slot_tasks = [self._current(tx, t.id) for t in store.tasks_by_slot(*key)]
            if not any(t is not None and is_live(t) for t in slot_tasks):
                self._create(tx, service, key[1], now)

    def _reconcile(self, store: MemoryStore, tx: Tx, service: Service, now: float) -> None:
        want = service.spec.mode.replicas
        live: list[Task] = []
        for t in store.tasks_by_service(service.id):
            current = self._current(tx, t.id)
            if current is not None and is_live(current):
                live.append(current)
        slots = by_slot(live)
        for slot, tasks in slots.items():
            if slot > want:
                for t in tasks:
                    tx.update(with_desired(t, TaskState.REMOVE))
                self.restart_due.pop((service.id, slot), None)
                continue
            dirty = [t for t in tasks if is_dirty(t, service)]
            for t in dirty:
                tx.update(with_desired(t, TaskState.SHUTDOWN))
            if dirty and len(dirty) == len(tasks):
                self._create(tx, service, slot, now)
        for slot in range(1, want + 1):
            if (
                slot not in slots
                and (service.id, slot) not in self.restart_due
                and not self._slot_done(store, tx, service, slot, now)
            ):
                self._create(tx, service, slot, now)
        for key in [k for k in self.restart_due if k[0] == service.id and k[1] > want]:
            del self.restart_due[key]

    def _remove_service_tasks(self, store: MemoryStore, tx: Tx, service_id: str) -> None:
        for t in store.tasks_by_service(service_id):
            current = self._current(tx, t.id)
            if current is not None and current.desired_state < TaskState.REMOVE:
                tx.update(with_desired(current, TaskState.REMOVE))
                self._removing.add(t.id)
        self.restarts.forget_service(service_id)
        for key in [k for k in self.restart_due if k[0] == service_id]:
            del self.restart_due[key]

    def _reap(self, store: MemoryStore, tx: Tx) -> None:
        for tid in sorted(self._removing):
            task = self._current(tx, tid)
            if task is None or task.desired_state != TaskState.REMOVE:
                self._removing.discard(tid)
                continue
            unassigned = not task.node_id or task.status.state < TaskState.ASSIGNED
            if unassigned or task.status.state.terminal:
                tx.delete(task)
                self._removing.discard(tid)

    def _trim_history(self, store: MemoryStore, tx: Tx) -> None:
        limit = DEFAULT_HISTORY
        clusters = store.clusters()
        if clusters:
            limit = clusters[0].spec.orchestration.task_history_retention_limit
        for key in sorted(self._trim):
            # The limit counts every task of the slot, the running one included.
            tasks = [
                t
                for t in (self._current(tx, t.id) for t in store.tasks_by_slot(*key))
                if t is not None
            ]
            old = [t for t in tasks if is_history(t)]
            excess = len(tasks) - limit
            if excess > 0:
                old.sort(key=lambda t: (t.status.timestamp, t.meta.version))
                for t in old[:excess]:
                    tx.delete(t)
        self._trim.clear()


def _drained(op: str, node: Node) -> bool:
    """Tasks on this node must run elsewhere: it was removed, drained, or is down."""
    return (
        op == "delete"
        or node.spec.availability == NodeAvailability.DRAIN
        or node.status.state == NodeState.DOWN
    )
