"""The constraint enforcer, as a pure core: when a node changes (labels, role,
availability, resources) so that a task placed on it no longer fits, the task
is rejected there.

As SwarmKit's: the enforcer sets the task's observed state to REJECTED
("task rejected by constraint enforcer") rather than its desired state, which
the orchestrators own; they then stop it (desired SHUTDOWN) and replace it as
its restart policy says, elsewhere if the service may run elsewhere. Only
active nodes are looked at: a drained node loses its tasks anyway, and a paused
one keeps them. Constraints are read from the service's current spec (a task
made before they changed carries the old ones); resources are counted in task
age order, so the newest tasks are the ones that no longer fit.
"""

from __future__ import annotations

from pyswarmkit.api.objects import Node, Task, TaskStatus, replace
from pyswarmkit.api.states import NodeAvailability, TaskState
from pyswarmkit.orchestrator.support import age, meets_constraints
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

REJECTED_MESSAGE = "task rejected by constraint enforcer"
REJECTED_ERR = "assigned node no longer meets constraints"


def _fit_changed(old: Node | None, new: Node) -> bool:
    """Whether anything a placement depends on changed."""
    if old is None:
        return True
    return old.spec != new.spec or old.role != new.role or old.description != new.description


class ConstraintEnforcer:
    def __init__(self) -> None:
        self._nodes: set[str] = set()

    def reset(self, store: MemoryStore) -> None:
        with store.reading():
            self._nodes = {n.id for n in store.nodes()}

    def observe(self, batch: EventBatch) -> None:
        for ev in batch.events:
            if ev.kind != "node" or ev.op == "delete":
                continue
            obj = ev.obj
            assert isinstance(obj, Node)
            old = ev.old if isinstance(ev.old, Node) else None
            if _fit_changed(old, obj):
                self._nodes.add(obj.id)

    def due(self) -> bool:
        return bool(self._nodes)

    def step(self, store: MemoryStore, wall: float) -> list[Change]:
        changes: list[Change] = []
        with store.reading():
            for node_id in sorted(self._nodes):
                node = store.get_node(node_id)
                if node is None or node.spec.availability != NodeAvailability.ACTIVE:
                    continue
                for task in misfits(store, node):
                    status = TaskStatus(
                        wall,
                        TaskState.REJECTED,
                        REJECTED_MESSAGE,
                        REJECTED_ERR,
                        task.status.container,
                    )
                    changes.append(Change("update", replace(task, status=status)))
        self._nodes.clear()
        return changes


def misfits(store: MemoryStore, node: Node) -> list[Task]:
    """The tasks on the node, still meant to run and not yet ended, that it no
    longer fits: its constraints fail, or the reservations of older tasks
    already take what it has."""
    tasks = sorted(
        (
            t
            for t in store.tasks_by_node(node.id)
            if TaskState.ASSIGNED <= t.desired_state <= TaskState.RUNNING
            and t.status.state < TaskState.COMPLETE
        ),
        key=age,
    )
    have = node.description.resources
    cpus, memory = have.nano_cpus, have.memory_bytes
    generic = dict(have.generic)
    out = []
    for t in tasks:
        service = store.get_service(t.service_id)
        placement = service.spec.task.placement if service is not None else t.spec.placement
        if not meets_constraints(placement.constraints, node):
            out.append(t)
            continue
        want = t.spec.resources.reservations
        if want.nano_cpus > cpus or want.memory_bytes > memory:
            out.append(t)
            continue
        if any(n > generic.get(name, 0) for name, n in want.generic.items()):
            out.append(t)
            continue
        cpus -= want.nano_cpus
        memory -= want.memory_bytes
        for name, n in want.generic.items():
            generic[name] = generic.get(name, 0) - n
    return out
