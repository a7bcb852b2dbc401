"""The global-service orchestrator, as a pure core: one task of each global
service on every node that may run it.

A node may run a service when it exists, is not down and not drained, and
satisfies the service's constraints and platforms; a new task is placed only on
a READY, ACTIVE node. On a paused node the task there is kept but nothing new
is placed, updated or restarted. A node that is removed, drained, goes down or
stops satisfying the constraints loses its task. Tasks are made already
assigned to their node (slot 0): the scheduler only checks that they fit there
(resources, ports), as SwarmKit's does.

Like the replicated core: events mark what needs a look, ``step(store, now,
wall)`` returns one batch of changes; ``now`` (monotonic) times restart delays
and windows, ``wall`` only stamps new tasks. Restart counts are per (service,
node), rebuilt from the store on ``reset``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import Node, Service, Task, replace
from pyswarmkit.api.states import NodeAvailability, TaskState
from pyswarmkit.orchestrator.restart import RestartHistory, wants_restart
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
from pyswarmkit.orchestrator.tasks import is_dirty, is_live, new_task, with_desired
from pyswarmkit.orchestrator.update import Updates
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore, Tx

# The slots of a global service: node id -> the tasks there that count.
NodeSlots = dict[str, list[Task]]


def is_global(service: Service) -> bool:
    return service.spec.mode.kind == "global"


def replace_at_once(
    service: Service, slots: NodeSlots, make: Callable[[str, TaskState], Task]
) -> tuple[list[Task], list[Task]]:
    """Every slot's live tasks made from another spec (and any second task) are
    stopped, and a slot left without a task of the current spec gets a new one:
    (tasks with a new desired state, tasks to create)."""
    desired: list[Task] = []
    create: list[Task] = []
    for node_id, tasks in sorted(slots.items()):
        live = sorted((t for t in tasks if is_live(t)), key=age)
        clean = [t for t in live if not is_dirty(t, service)]
        # One per node: the oldest task of the current spec stays.
        stop = [t for t in live if is_dirty(t, service)] + clean[1:]
        if not stop:
            continue
        desired.extend(with_desired(t, TaskState.SHUTDOWN) for t in stop)
        if not clean:
            create.append(make(node_id, TaskState.RUNNING))
    return desired, create


class GlobalOrchestrator:
    def __init__(self, id_gen: Callable[[], str] = new_id) -> None:
        self.id_gen = id_gen
        self.restarts = RestartHistory()
        self.delays = Delays()
        # Global services to look at whole, and nodes to look at for all of them.
        self._services: set[str] = set()
        self._nodes: set[str] = set()
        # Every global service, so that other services' task events cost nothing.
        self._globals: set[str] = set()
        self._poked = False
        # Per step: the (service, node) pairs a task was made for.
        self._made: set[tuple[str, str]] = set()
        self._touched: set[tuple[str, str]] = set()
        # Rolling updates in progress (orchestrator/update.py), keyed by node.
        self.updates = Updates()

    # --- input ------------------------------------------------------------

    def reset(self, store: MemoryStore, now: float, wall: float, resync: bool = False) -> None:
        """Look at everything again. Restart delays and counts are rebuilt from the
        tasks as the replicated core does; ``resync`` (same leader, refused batch)
        keeps the ones it holds, which run on its own monotonic clock."""
        self._poked = True
        if not resync:
            self.updates = Updates()  # a new leader starts updates afresh
        kept_delays = self.delays if resync else None
        kept_restarts = self.restarts if resync else None
        self.delays = Delays()
        self.restarts = RestartHistory()
        slots: dict[tuple[str, str], list[Task]] = {}
        # Picked out before the consistent view below, which holds the
        # store's writes (a pass over every service of a large store took a
        # tenth of a second): a service written meanwhile comes as an event.
        services = {s.id: s for s in store.services() if is_global(s)}
        with store.reading():
            self._services = set(services)
            self._globals = set(services)
            self._nodes = {n.id for n in store.nodes()}
            for sid in services:
                for t in store.tasks_by_service(sid):
                    if t.desired_state == TaskState.REMOVE:
                        continue
                    slots.setdefault((sid, t.node_id), []).append(t)
                    if t.desired_state == TaskState.READY:
                        if kept_delays is not None and t.id in kept_delays.when:
                            self.delays.add(t.id, kept_delays.when[t.id])
                        else:
                            self.delays.rebuild(t, now, wall)
        if kept_restarts is not None:
            self.restarts = kept_restarts
            return
        for key, tasks in slots.items():
            newest = max(t.spec_version for t in tasks)
            same = sorted((t for t in tasks if t.spec_version == newest), key=age)
            for t in same[1:]:
                when = min(now, now + created(t) - wall)
                self.restarts.record(t.spec.restart, key, t.spec_version, when)

    def observe(self, batch: EventBatch) -> None:
        for ev in batch.events:
            obj = ev.obj
            if ev.kind == "service":
                assert isinstance(obj, Service)
                if ev.op == "delete":
                    self.restarts.forget_service(obj.id)
                    self.updates.forget(obj.id)
                    self._services.discard(obj.id)
                    self._globals.discard(obj.id)
                elif is_global(obj):
                    self._globals.add(obj.id)
                    self._services.add(obj.id)
                    self._poked = True
            elif ev.kind == "node":
                self._nodes.add(obj.id)
                self._poked = self._poked or bool(self._globals)
            elif ev.kind == "task":
                assert isinstance(obj, Task)
                if ev.op == "delete":
                    self.delays.drop(obj.id)
                elif obj.service_id in self._globals and obj.node_id:
                    if self.updates.updating(obj.service_id):
                        # A rolling update waits on its tasks' states.
                        self._services.add(obj.service_id)
                        self._poked = True
                    elif is_live(obj) and obj.status.state.terminal:
                        # The whole service looks: a rolling update wants every
                        # slot at once, and waits on its tasks' states.
                        self._services.add(obj.service_id)
                        self._poked = True
                    elif not is_live(obj):
                        # Only its history may need trimming.
                        self._touched.add((obj.service_id, obj.node_id))

    def due(self, now: float) -> bool:
        wake = self.updates.next_wake()
        return self._poked or self.delays.due(now) or (wake is not None and wake <= now)

    # --- decisions -------------------------------------------------------

    def step(self, store: MemoryStore, now: float, wall: float) -> list[Change]:
        tx = Tx(store)
        self._made = set()
        touched, self._touched = self._touched, set()
        # Updates whose delay or monitor window ended look at their service again.
        self._services.update(sid for sid in self.updates.due(now) if sid in self._globals)
        with store.reading():
            self.delays.start_due(tx, now)
            found = (store.get_service(sid) for sid in self._globals)
            services = [s for s in found if s is not None and is_global(s)]
            nodes = {n.id: n for n in store.nodes()}
            for service in sorted(services, key=lambda s: s.id):
                whole = service.id in self._services
                look = set(self._nodes) | {n for (sid, n) in touched if sid == service.id}
                if not whole and not look:
                    continue
                by_node: dict[str, list[Task]] = {}
                for t in current(tx, store.tasks_by_service(service.id)):
                    by_node.setdefault(t.node_id, []).append(t)
                if whole:
                    look = set(nodes) | set(by_node)
                updatable: NodeSlots = {}
                for node_id in sorted(look):
                    tasks = by_node.get(node_id, [])
                    if self._reconcile_node(
                        tx, service, node_id, nodes.get(node_id), tasks, now, wall
                    ):
                        # As the updater wants a slot: its tasks as this
                        # batch leaves them, history included, none removed.
                        current_tasks = current(tx, tasks)
                        updatable[node_id] = [
                            t for t in current_tasks if t.desired_state != TaskState.REMOVE
                        ]
                    touched.add((service.id, node_id))
                if whole:
                    self._update(tx, service, updatable, now, wall)
                else:
                    # A node that comes back (activated, a paused node resumed)
                    # with an old task gets the new spec at once, outside any
                    # rolling update, as in SwarmKit: it was not the update's.
                    changed = {n: ts for n, ts in updatable.items() if n in self._nodes}
                    make = self._task_for(service, wall)
                    self._apply(tx, replace_at_once(service, changed, make))
            self._trim(store, tx, touched)
        self._services.clear()
        self._nodes.clear()
        self._poked = False
        return tx.changes

    def _update(self, tx: Tx, service: Service, slots: NodeSlots, now: float, wall: float) -> None:
        """Replace the tasks made from a spec the service no longer has, as a
        rolling update (orchestrator/update.py) over the slots keyed by node id,
        with the service's update settings."""
        step = self.updates.step(service, slots, now, wall, self._task_for(service, wall))
        self._apply(tx, (step.desired, step.create))
        if step.service is not None:
            tx.update(step.service)

    def _task_for(self, service: Service, wall: float) -> Callable[[str, TaskState], Task]:
        def make(node_id: str, desired: TaskState) -> Task:
            task = new_task(service, 0, wall, self.id_gen, desired)
            return replace(task, node_id=node_id)

        return make

    def _apply(self, tx: Tx, decided: tuple[list[Task], list[Task]]) -> None:
        desired, create = decided
        for t in desired:
            tx.update(t)
        for t in create:
            key = (t.service_id, t.node_id)
            if key not in self._made:
                self._made.add(key)
                tx.create(t)

    def _reconcile_node(
        self,
        tx: Tx,
        service: Service,
        node_id: str,
        node: Node | None,
        tasks: list[Task],
        now: float,
        wall: float,
    ) -> bool:
        """The service on one node. True when the node's slot is one an update
        looks at: the node may run the service and is not paused (a failed task
        restarted here still tells the update that it failed)."""
        live = [t for t in tasks if is_live(t)]
        if node_gone(node) or node is None or not fits_node(service, node):
            for t in live:
                shut_down(tx, t)
            return False
        ended = [t for t in live if t.status.state.terminal]
        running = [t for t in live if not t.status.state.terminal]
        for t in ended:
            shut_down(tx, t)
        if node.spec.availability == NodeAvailability.PAUSE:
            return False
        if running:
            return True  # a second task, or one of another spec: the update's
        if ended:
            newest = max(ended, key=age)
            policy = newest.spec.restart
            key = (service.id, node_id)
            if wants_restart(policy, newest) and self.restarts.allowed(
                policy, key, newest.spec_version, now
            ):
                self._create(tx, service, node_id, now, wall, delay=policy.delay)
            return True
        if takes_new_tasks(node) and not self._stays_finished(service, tasks, now):
            self._create(tx, service, node_id, now, wall)
        return True

    def _stays_finished(self, service: Service, tasks: list[Task], now: float) -> bool:
        """The node's last task of the service ended on its own and its restart
        policy says it stays ended (a task we stopped, or one of an older spec,
        is replaced)."""
        if not tasks:
            return False
        newest = max(tasks, key=age)
        if is_dirty(newest, service):
            return False
        if newest.status.state not in (TaskState.COMPLETE, TaskState.FAILED, TaskState.REJECTED):
            return False
        policy = newest.spec.restart
        key = (service.id, newest.node_id)
        return not (
            wants_restart(policy, newest)
            and self.restarts.allowed(policy, key, newest.spec_version, now)
        )

    def _create(
        self, tx: Tx, service: Service, node_id: str, now: float, wall: float, delay: float = 0.0
    ) -> None:
        """A task for the node, made assigned to it; with a delay it waits
        desired READY. A second task of the same spec version on the node is a
        restart, counted as a new leader would count it."""
        key = (service.id, node_id)
        if key in self._made:
            return
        self._made.add(key)
        desired = TaskState.READY if delay > 0 else TaskState.RUNNING
        task = replace(new_task(service, 0, wall, self.id_gen, desired), node_id=node_id)
        earlier = [
            t
            for t in current(tx, tx.store.tasks_by_node(node_id))
            if t.service_id == service.id
            and t.spec_version == task.spec_version
            and t.desired_state != TaskState.REMOVE
        ]
        tx.create(task)
        if delay > 0:
            self.delays.add(task.id, now + delay)
        if earlier:
            self.restarts.record(task.spec.restart, key, task.spec_version, now)

    def _trim(self, store: MemoryStore, tx: Tx, keys: set[tuple[str, str]]) -> None:
        for sid, node_id in sorted(keys):
            service = store.get_service(sid)
            if service is None or not is_global(service):
                continue
            tasks = [t for t in current(tx, store.tasks_by_node(node_id)) if t.service_id == sid]
            keep = history_limit(store, service)
            if keep is not None and (sid, node_id) in self._made:
                keep -= 1  # the task made in this step counts too
            trim(tx, tasks, keep)
