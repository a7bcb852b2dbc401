"""The swarm's objects as immutable values.

A change makes a new object (``dataclasses.replace``). ``meta.version`` is the
store index of the object's last write and is what optimistic updates compare.
Times are seconds since the epoch; durations are seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pyswarmkit.api.states import (
    Membership,
    NodeAvailability,
    NodeRole,
    NodeState,
    Reachability,
    RestartCondition,
    TaskState,
    UpdateState,
)

T = TypeVar("T")


def replace(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes``. Objects change only through this
    (never ``dataclasses.replace``), so their representation can change
    without touching every caller."""
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]

Kind = Literal["node", "service", "task", "cluster"]


@dataclass(frozen=True, slots=True)
class Meta:
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Annotations:
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)


# --- resources and placement -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resources:
    nano_cpus: int = 0
    memory_bytes: int = 0
    # Named generic resources counted by value, e.g. {"gpu": 2}.
    generic: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResourceRequirements:
    limits: Resources = Resources()
    reservations: Resources = Resources()


@dataclass(frozen=True, slots=True)
class PortConfig:
    target_port: int = 0
    published_port: int = 0
    protocol: str = "tcp"
    publish_mode: str = "host"


@dataclass(frozen=True, slots=True)
class Platform:
    os: str = ""
    architecture: str = ""


@dataclass(frozen=True, slots=True)
class Placement:
    constraints: tuple[str, ...] = ()
    # Each preference is a label path such as "node.labels.zone" to spread over.
    preferences: tuple[str, ...] = ()
    platforms: tuple[Platform, ...] = ()
    max_replicas: int = 0


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    condition: RestartCondition = RestartCondition.ANY
    delay: float = 5.0
    max_attempts: int = 0
    window: float = 0.0


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    parallelism: int = 1
    delay: float = 0.0
    failure_action: str = "pause"
    monitor: float = 5.0
    max_failure_ratio: float = 0.0
    order: str = "stop-first"


# --- tasks -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    dir: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_grace_period: float = 10.0


@dataclass(frozen=True, slots=True)
class TaskSpec:
    container: ContainerSpec = ContainerSpec()
    resources: ResourceRequirements = ResourceRequirements()
    restart: RestartPolicy = RestartPolicy()
    placement: Placement = Placement()
    ports: tuple[PortConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    pid: int = 0
    exit_code: int = 0


@dataclass(frozen=True, slots=True)
class TaskStatus:
    timestamp: float = 0.0
    state: TaskState = TaskState.NEW
    message: str = ""
    err: str = ""
    container: ContainerStatus = ContainerStatus()


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    service_id: str = ""
    slot: int = 0
    node_id: str = ""
    spec: TaskSpec = TaskSpec()
    spec_version: int = 0
    service_name: str = ""
    desired_state: TaskState = TaskState.RUNNING
    status: TaskStatus = TaskStatus()
    meta: Meta = Meta()


# --- services ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceMode:
    """Replicated with `replicas` tasks, or global (one task per eligible node)."""

    kind: Literal["replicated", "global"] = "replicated"
    replicas: int = 1


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    annotations: Annotations = Annotations()
    task: TaskSpec = TaskSpec()
    mode: ServiceMode = ServiceMode()
    update: UpdateConfig = UpdateConfig()
    rollback: UpdateConfig = UpdateConfig()


@dataclass(frozen=True, slots=True)
class UpdateStatus:
    state: UpdateState = UpdateState.UNKNOWN
    started_at: float = 0.0
    completed_at: float = 0.0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    spec: ServiceSpec = ServiceSpec()
    # Bumped on every spec change; tasks record the version they were made from.
    spec_version: int = 1
    previous_spec: ServiceSpec | None = None
    update_status: UpdateStatus | None = None
    meta: Meta = Meta()

    @property
    def name(self) -> str:
        return self.spec.annotations.name


# --- nodes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeSpec:
    annotations: Annotations = Annotations()
    desired_role: NodeRole = NodeRole.WORKER
    membership: Membership = Membership.ACCEPTED
    availability: NodeAvailability = NodeAvailability.ACTIVE


@dataclass(frozen=True, slots=True)
class EngineDescription:
    engine_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeDescription:
    hostname: str = ""
    platform: Platform = Platform()
    resources: Resources = Resources()
    engine: EngineDescription = EngineDescription()


@dataclass(frozen=True, slots=True)
class NodeStatus:
    state: NodeState = NodeState.UNKNOWN
    message: str = ""
    addr: str = ""


@dataclass(frozen=True, slots=True)
class ManagerStatus:
    raft_id: int = 0
    addr: str = ""
    leader: bool = False
    reachability: Reachability = Reachability.UNKNOWN


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    spec: NodeSpec = NodeSpec()
    description: NodeDescription = NodeDescription()
    status: NodeStatus = NodeStatus()
    role: NodeRole = NodeRole.WORKER
    manager_status: ManagerStatus | None = None
    meta: Meta = Meta()

    @property
    def name(self) -> str:
        """What users call the node: its spec name if an operator set one, else its hostname."""
        return self.spec.annotations.name or self.description.hostname


# --- cluster -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrchestrationConfig:
    task_history_retention_limit: int = 5


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    heartbeat_period: float = 5.0


@dataclass(frozen=True, slots=True)
class CAConfig:
    node_cert_expiry: float = 90 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RaftConfig:
    snapshot_interval: int = 10_000
    log_entries_for_slow_followers: int = 500
    heartbeat_tick: int = 1
    election_tick: int = 10


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    annotations: Annotations = Annotations(name="default")
    orchestration: OrchestrationConfig = OrchestrationConfig()
    dispatcher: DispatcherConfig = DispatcherConfig()
    ca: CAConfig = CAConfig()
    raft: RaftConfig = RaftConfig()


@dataclass(frozen=True, slots=True)
class JoinTokens:
    worker: str = ""
    manager: str = ""


@dataclass(frozen=True, slots=True)
class Cluster:
    id: str
    spec: ClusterSpec = ClusterSpec()
    join_tokens: JoinTokens = JoinTokens()
    meta: Meta = Meta()

    @property
    def name(self) -> str:
        return self.spec.annotations.name


StoreObject = Node | Service | Task | Cluster

KIND_OF: dict[type, Kind] = {Node: "node", Service: "service", Task: "task", Cluster: "cluster"}
