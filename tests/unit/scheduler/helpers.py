"""Building nodes and tasks, and driving the scheduling core over a real store."""

from __future__ import annotations

from collections.abc import Callable

from pyswarmkit.api.objects import (
    Annotations,
    EngineDescription,
    Node,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Placement,
    Platform,
    PortConfig,
    ResourceRequirements,
    Resources,
    Task,
    TaskSpec,
    TaskStatus,
    replace,
)
from pyswarmkit.api.states import NodeAvailability, NodeRole, NodeState, TaskState
from pyswarmkit.scheduler.core import Scheduler
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import LocalProposer

GIB = 1 << 30
CPU = 1_000_000_000


def node(
    node_id: str,
    *,
    labels: dict[str, str] | None = None,
    engine_labels: dict[str, str] | None = None,
    hostname: str = "",
    state: NodeState = NodeState.READY,
    availability: NodeAvailability = NodeAvailability.ACTIVE,
    role: NodeRole = NodeRole.WORKER,
    os: str = "linux",
    arch: str = "amd64",
    cpus: int = 0,
    memory: int = 0,
    generic: dict[str, int] | None = None,
    addr: str = "",
) -> Node:
    return Node(
        id=node_id,
        spec=NodeSpec(
            annotations=Annotations(name=node_id, labels=dict(labels or {})),
            availability=availability,
        ),
        description=NodeDescription(
            hostname=hostname or node_id,
            platform=Platform(os, arch),
            resources=Resources(cpus, memory, dict(generic or {})),
            engine=EngineDescription(labels=dict(engine_labels or {})),
        ),
        status=NodeStatus(state=state, addr=addr),
        role=role,
    )


def spec(
    *,
    constraints: tuple[str, ...] = (),
    preferences: tuple[str, ...] = (),
    platforms: tuple[Platform, ...] = (),
    max_replicas: int = 0,
    cpus: int = 0,
    memory: int = 0,
    generic: dict[str, int] | None = None,
    host_ports: tuple[int, ...] = (),
) -> TaskSpec:
    return TaskSpec(
        resources=ResourceRequirements(reservations=Resources(cpus, memory, dict(generic or {}))),
        placement=Placement(
            constraints=constraints,
            preferences=preferences,
            platforms=platforms,
            max_replicas=max_replicas,
        ),
        ports=tuple(PortConfig(80, p, "tcp", "host") for p in host_ports),
    )


def task(
    task_id: str,
    *,
    service: str = "svc",
    slot: int = 1,
    task_spec: TaskSpec | None = None,
    spec_version: int = 1,
    node_id: str = "",
    state: TaskState = TaskState.PENDING,
    desired: TaskState = TaskState.RUNNING,
    message: str = "pending task scheduling",
) -> Task:
    return Task(
        id=task_id,
        service_id=service,
        slot=slot,
        node_id=node_id,
        spec=task_spec if task_spec is not None else TaskSpec(),
        spec_version=spec_version,
        service_name=service,
        desired_state=desired,
        status=TaskStatus(timestamp=0.0, state=state, message=message),
    )


class Harness:
    """A store, a core and a local proposer, in virtual time."""

    def __init__(self, core: Scheduler | None = None) -> None:
        self.store = MemoryStore()
        self.proposer = LocalProposer(self.store)
        self.core = core or Scheduler()
        self.inbox: list[EventBatch] = []
        self.store.watch(self.inbox.append)
        self.now = 1000.0
        self.core.reset([], [], self.now)
        self.batches: list[list[Change]] = []

    def commit(self, changes: list[Change]) -> None:
        self.store.apply(changes, self.store.index + 1, self.now)
        self.deliver()

    def create(self, *objs: Node | Task) -> None:
        self.commit([Change("create", o) for o in objs])

    def update(self, *objs: Node | Task) -> None:
        current = []
        for o in objs:
            kind = "node" if isinstance(o, Node) else "task"
            stored = self.store.get(kind, o.id)
            assert stored is not None
            current.append(Change("update", _with_meta(o, stored)))
        self.commit(current)

    def deliver(self) -> None:
        while self.inbox:
            self.core.observe(self.inbox.pop(0), self.now)

    def step(self) -> list[Change]:
        """Advance to when the core is due, run one pass and commit it."""
        self.deliver()
        wake = self.core.wake_at()
        if wake is None:
            return []
        self.now = max(self.now, wake)
        assert self.core.due(self.now)
        changes = self.core.schedule(self.now)
        self.batches.append(changes)
        if changes:
            self.proposer.propose(changes, self.now, self._done(changes))
            self.deliver()
        return changes

    def settle(self, limit: int = 20) -> None:
        for _ in range(limit):
            if not self.step():
                return
        raise AssertionError("the scheduler did not settle")

    def _done(self, changes: list[Change]) -> Callable[[object, object], None]:
        def done(batch: object, err: object) -> None:
            if err is not None:
                self.core.rejected(changes)

        return done

    def task(self, task_id: str) -> Task:
        t = self.store.get_task(task_id)
        assert t is not None
        return t

    def tasks(self) -> list[Task]:
        return self.store.tasks()

    def nodes(self) -> dict[str, Node]:
        return {n.id: n for n in self.store.nodes()}

    def placement(self) -> dict[str, str]:
        return {t.id: t.node_id for t in self.store.tasks() if t.status.state == TaskState.ASSIGNED}


def _with_meta(obj: Node | Task, stored: Node | Task | object) -> Node | Task:
    assert isinstance(stored, Node | Task)
    return replace(obj, meta=stored.meta)
