"""A store and every orchestrator core, driven the way the orchestrator actor
drives them (one core's batch at a time, each committed batch fed to all), with
a hand standing in for the scheduler and the agents. Time is an argument."""

from __future__ import annotations

import itertools
from typing import Any

from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    EngineDescription,
    Node,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Placement,
    Platform,
    Resources,
    RestartPolicy,
    Service,
    ServiceKind,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
    replace,
)
from pyswarmkit.api.states import NodeAvailability, NodeState, RestartCondition, TaskState
from pyswarmkit.orchestrator.constraint_enforcer import ConstraintEnforcer
from pyswarmkit.orchestrator.global_ import GlobalOrchestrator
from pyswarmkit.orchestrator.jobs import JobsOrchestrator
from pyswarmkit.orchestrator.replicated import ReplicatedOrchestrator
from pyswarmkit.store import Change, EventBatch, MemoryStore

WALL = 1_700_000_000.0
NO_DELAY = RestartPolicy(delay=0.0)


def spec(
    name: str,
    kind: ServiceKind = "replicated",
    replicas: int = 1,
    total: int = 0,
    concurrent: int = 0,
    command: str = "serve",
    constraints: tuple[str, ...] = (),
    restart: RestartPolicy = NO_DELAY,
    cpus: int = 0,
    platforms: tuple[Platform, ...] = (),
) -> ServiceSpec:
    task = TaskSpec(
        container=ContainerSpec(command=("sh", "-c", command)),
        restart=restart,
        placement=Placement(constraints=constraints, platforms=platforms),
    )
    if cpus:
        task = replace(
            task,
            resources=replace(task.resources, reservations=Resources(nano_cpus=cpus)),
        )
    mode = ServiceMode(
        kind=kind, replicas=replicas, max_concurrent=concurrent, total_completions=total
    )
    return ServiceSpec(annotations=Annotations(name=name), task=task, mode=mode)


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        counter = itertools.count(1)

        def ids() -> str:
            return f"t{next(counter):024d}"

        self.replicated = ReplicatedOrchestrator(id_gen=ids)
        self.global_ = GlobalOrchestrator(id_gen=ids)
        self.jobs = JobsOrchestrator(id_gen=ids)
        self.enforcer = ConstraintEnforcer()
        self.batches = 0

    # --- driving ----------------------------------------------------------

    def write(self, changes: list[Change], now: float) -> EventBatch:
        batch = self.store.apply(changes, self.store.index + 1, WALL + now)
        self.batches += 1
        for core in (self.replicated, self.global_, self.jobs, self.enforcer):
            core.observe(batch)
        return batch

    def steps(self, now: float) -> list[list[Change]]:
        """One turn of every core that is due, each batch committed before the next."""
        out = []
        wall = WALL + now
        for name in ("replicated", "global", "jobs", "enforcer"):
            if name == "enforcer":
                if not self.enforcer.due():
                    continue
                changes = self.enforcer.step(self.store, wall)
            else:
                core: Any = {
                    "replicated": self.replicated,
                    "global": self.global_,
                    "jobs": self.jobs,
                }[name]
                if not core.due(now):
                    continue
                changes = core.step(self.store, now, wall)
            if changes:
                self.write(changes, now)
                out.append(changes)
        return out

    def settle(self, now: float = 0.0, rounds: int = 30) -> None:
        for _ in range(rounds):
            if not self.steps(now):
                return
        raise AssertionError("the orchestrators keep changing things")

    # --- nodes ------------------------------------------------------------

    def add_node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        state: NodeState = NodeState.READY,
        cpus: int = 0,
        os: str = "linux",
        now: float = 0.0,
    ) -> None:
        node = Node(
            id=name,
            spec=NodeSpec(annotations=Annotations(name=name, labels=labels or {})),
            description=NodeDescription(
                hostname=name,
                platform=Platform(os=os, architecture="amd64"),
                resources=Resources(nano_cpus=cpus),
                engine=EngineDescription(),
            ),
            status=NodeStatus(state=state),
        )
        self.write([Change("create", node)], now)

    def node(self, name: str) -> Node:
        n = self.store.get_node(name)
        assert n is not None
        return n

    def set_availability(self, name: str, availability: NodeAvailability, now: float = 0.0) -> None:
        n = self.node(name)
        self.write(
            [Change("update", replace(n, spec=replace(n.spec, availability=availability)))], now
        )

    def set_state(self, name: str, state: NodeState, now: float = 0.0) -> None:
        n = self.node(name)
        self.write([Change("update", replace(n, status=replace(n.status, state=state)))], now)

    def set_labels(self, name: str, labels: dict[str, str], now: float = 0.0) -> None:
        n = self.node(name)
        ann = replace(n.spec.annotations, labels=labels)
        self.write([Change("update", replace(n, spec=replace(n.spec, annotations=ann)))], now)

    def set_cpus(self, name: str, cpus: int, now: float = 0.0) -> None:
        n = self.node(name)
        desc = replace(n.description, resources=Resources(nano_cpus=cpus))
        self.write([Change("update", replace(n, description=desc))], now)

    def remove_node(self, name: str, now: float = 0.0) -> None:
        self.write([Change("delete", self.node(name))], now)

    # --- services ---------------------------------------------------------

    def create(self, s: ServiceSpec, now: float = 0.0) -> str:
        sid = f"s{s.annotations.name:0>24}"[:25]
        self.write([Change("create", Service(id=sid, spec=s))], now)
        return sid

    def service(self, sid: str) -> Service:
        s = self.store.get_service(sid)
        assert s is not None
        return s

    def update(self, sid: str, s: ServiceSpec, now: float = 0.0) -> None:
        """As the control API's service update: a job runs again."""
        cur = self.service(sid)
        bump = 1 if s.task != cur.spec.task else 0
        new = replace(cur, spec=s, previous_spec=cur.spec, spec_version=cur.spec_version + bump)
        new = replace(new, update_status=None)  # a new update
        if s.mode.kind.endswith("-job"):
            new = replace(new, job_iteration=cur.job_iteration + 1)
        self.write([Change("update", new)], now)

    def remove(self, sid: str, now: float = 0.0) -> None:
        self.write([Change("delete", self.service(sid))], now)

    # --- tasks ------------------------------------------------------------

    def tasks(self, sid: str | None = None) -> list[Task]:
        ts = self.store.tasks() if sid is None else self.store.tasks_by_service(sid)
        return sorted(ts, key=lambda t: (t.meta.created_index, t.id))

    def wanted(self, sid: str) -> list[Task]:
        """Tasks desired RUNNING."""
        return [t for t in self.tasks(sid) if t.desired_state == TaskState.RUNNING]

    def live(self, sid: str) -> list[Task]:
        """Tasks desired RUNNING, or READY: prepared and to run once the task
        they replace stopped (a rolling update) or their restart delay ended."""
        return [t for t in self.tasks(sid) if t.desired_state <= TaskState.RUNNING]

    def wanted_nodes(self, sid: str) -> list[str]:
        return sorted(t.node_id for t in self.wanted(sid))

    def report(self, task_id: str, state: TaskState, now: float = 0.0, node: str = "") -> None:
        t = self.store.get_task(task_id)
        assert t is not None
        status = TaskStatus(timestamp=WALL + now, state=state)
        self.write([Change("update", replace(t, node_id=node or t.node_id, status=status))], now)

    def run_pending(self, now: float = 0.0, node: str = "") -> list[str]:
        """The scheduler and agents: every task desired RUNNING and not yet
        running starts (placed on ``node`` if it has none); returns their ids."""
        started = []
        changes = []
        for t in self.tasks():
            if t.desired_state != TaskState.RUNNING or t.status.state >= TaskState.RUNNING:
                continue
            where = t.node_id or node
            if not where:
                continue
            status = TaskStatus(timestamp=WALL + now, state=TaskState.RUNNING)
            changes.append(Change("update", replace(t, node_id=where, status=status)))
            started.append(t.id)
        if changes:
            self.write(changes, now)
        return started

    def stop_unwanted(self, now: float = 0.0) -> None:
        """Agents: tasks told to stop report SHUTDOWN."""
        changes = []
        for t in self.tasks():
            if t.desired_state > TaskState.RUNNING and t.status.state <= TaskState.RUNNING:
                status = TaskStatus(timestamp=WALL + now, state=TaskState.SHUTDOWN)
                changes.append(Change("update", replace(t, status=status)))
        if changes:
            self.write(changes, now)


ON_FAILURE = RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=0.0)
