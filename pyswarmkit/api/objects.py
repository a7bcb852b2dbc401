"""The swarm's objects as immutable values.

Each class is a frozen ``msgspec.Struct`` that travels as a MessagePack array of
its fields in declaration order (``array_like``). A change makes a new object
(``replace``). ``meta.version`` is the store index of the object's last write
and is what optimistic updates compare. Times are seconds since the epoch;
durations are seconds.

The format grows only at the end: a field is appended with a default, never
removed or reordered. A reader fills missing trailing fields with their
defaults and ignores trailing fields it does not know, so WAL entries,
snapshots and peers of another version stay readable (docs/architecture.md,
"Formats").

Field types carry the checks that decoding applies to whatever a peer sent:
``Int`` fits in 64 signed bits and ``Float`` is finite and of sensible size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec

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

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# NaN and infinity compare false with everything: as a delay or a deadline they
# would mean "at once" or "never". The bounds refuse them too.
FLOAT_LIMIT = 1e15

Int = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
Float = Annotated[float, msgspec.Meta(ge=-FLOAT_LIMIT, le=FLOAT_LIMIT)]
# Strings that reach a command line, a path or an environment. NUL in them is
# refused where a spec is accepted (control/validate.py) and again by the
# executor; a pattern check here would triple the cost of decoding a task.
Text = str

T = TypeVar("T")


class Object(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The base of every swarm object.

    ``gc=False``: objects are immutable trees of values and never form cycles,
    so the cycle collector has nothing to find in them; left tracked, the
    allocations of decoding one large batch set off collection after
    collection (decoding a task took 4 us instead of 1.4)."""


if TYPE_CHECKING:

    def replace(obj: T, **changes: Any) -> T:
        """A copy of ``obj`` with ``changes``. Objects change only through this."""

else:
    replace = msgspec.structs.replace


Kind = Literal["node", "service", "task", "cluster", "secret", "config"]


class Meta(Object, frozen=True):
    version: Int = 0
    created_at: Float = 0.0
    updated_at: Float = 0.0
    # The store index of the object's creation: orders objects by age whatever
    # the wall clock said when they were made (0 until first committed).
    created_index: Int = 0


class Annotations(Object, frozen=True):
    name: Text = ""
    labels: dict[Text, Text] = {}


# --- resources and placement -------------------------------------------------


class Resources(Object, frozen=True):
    nano_cpus: Int = 0
    memory_bytes: Int = 0
    # Named generic resources counted by value, e.g. {"gpu": 2}.
    generic: dict[Text, Int] = {}


class ResourceRequirements(Object, frozen=True):
    limits: Resources = Resources()
    reservations: Resources = Resources()


class PortConfig(Object, frozen=True):
    target_port: Int = 0
    published_port: Int = 0
    protocol: Text = "tcp"
    publish_mode: Text = "host"


class Platform(Object, frozen=True):
    os: Text = ""
    architecture: Text = ""


class Placement(Object, frozen=True):
    constraints: tuple[Text, ...] = ()
    # Each preference is a label path such as "node.labels.zone" to spread over.
    preferences: tuple[Text, ...] = ()
    platforms: tuple[Platform, ...] = ()
    max_replicas: Int = 0


class RestartPolicy(Object, frozen=True):
    condition: RestartCondition = RestartCondition.ANY
    delay: Float = 5.0
    max_attempts: Int = 0
    window: Float = 0.0


class UpdateConfig(Object, frozen=True):
    parallelism: Int = 1
    delay: Float = 0.0
    failure_action: str = "pause"
    monitor: Float = 5.0
    max_failure_ratio: Float = 0.0
    order: str = "stop-first"


# --- tasks -------------------------------------------------------------------


class Mount(Object, frozen=True):
    """A bind mount of a host path or a named volume, as ``--mount`` gives it."""

    type: Literal["bind", "volume"] = "bind"
    source: Text = ""
    target: Text = ""
    readonly: bool = False


class HealthConfig(Object, frozen=True):
    """Docker's healthcheck. ``test``: () keeps the image's own check (the
    process executor has none), ("NONE",) disables it, ("CMD-SHELL", cmd)
    runs cmd through ``sh -c``, ("CMD", prog, args...) runs prog. Zero
    durations and retries mean Docker's defaults (executor/health.py)."""

    test: tuple[Text, ...] = ()
    interval: Float = 0.0
    timeout: Float = 0.0
    retries: Int = 0
    start_period: Float = 0.0


class SecretReference(Object, frozen=True):
    """A secret a task gets as a file. The manager fills ``secret_id`` from
    ``secret_name`` when the service is created or updated. ``target`` is the
    file's name (Docker: under /run/secrets; default: the secret's name)."""

    secret_id: str = ""
    secret_name: Text = ""
    target: Text = ""
    uid: Text = "0"
    gid: Text = "0"
    mode: Int = 0o444


class ConfigReference(Object, frozen=True):
    """A config a task gets as a file, as ``SecretReference`` says."""

    config_id: str = ""
    config_name: Text = ""
    target: Text = ""
    uid: Text = "0"
    gid: Text = "0"
    mode: Int = 0o444


class ContainerSpec(Object, frozen=True):
    image: Text = ""
    command: tuple[Text, ...] = ()
    args: tuple[Text, ...] = ()
    env: tuple[Text, ...] = ()
    dir: Text = ""
    user: Text = ""
    labels: dict[Text, Text] = {}
    stop_grace_period: Float = 10.0
    mounts: tuple[Mount, ...] = ()
    # The signal that asks the task to stop; empty: the image's, else SIGTERM.
    stop_signal: Text = ""
    healthcheck: HealthConfig = HealthConfig()
    secrets: tuple[SecretReference, ...] = ()
    configs: tuple[ConfigReference, ...] = ()


class TaskSpec(Object, frozen=True):
    container: ContainerSpec = ContainerSpec()
    resources: ResourceRequirements = ResourceRequirements()
    restart: RestartPolicy = RestartPolicy()
    placement: Placement = Placement()
    ports: tuple[PortConfig, ...] = ()
    # Bumped by `service update --force`: a task spec that differs in this
    # alone still replaces every task (SwarmKit's ForceUpdate).
    force_update: Int = 0


class ContainerStatus(Object, frozen=True):
    pid: Int = 0
    exit_code: Int = 0


class TaskStatus(Object, frozen=True):
    timestamp: Float = 0.0
    state: TaskState = TaskState.NEW
    message: str = ""
    err: str = ""
    container: ContainerStatus = ContainerStatus()


class Task(Object, frozen=True):
    id: str
    service_id: str = ""
    slot: Int = 0
    node_id: str = ""
    spec: TaskSpec = TaskSpec()
    spec_version: Int = 0
    service_name: str = ""
    desired_state: TaskState = TaskState.RUNNING
    status: TaskStatus = TaskStatus()
    meta: Meta = Meta()
    # The job iteration the task was made for (jobs only).
    job_iteration: Int = 0


# --- services ----------------------------------------------------------------


ServiceKind = Literal["replicated", "global", "replicated-job", "global-job"]
JOB_KINDS: tuple[str, ...] = ("replicated-job", "global-job")


class ServiceMode(Object, frozen=True):
    """Replicated with `replicas` tasks, global (one task per eligible node), or
    a job: tasks that run to completion, ``total_completions`` of them at most
    ``max_concurrent`` at a time (replicated-job), or one per node (global-job).
    ``max_concurrent`` 0 means as many as ``total_completions``."""

    kind: ServiceKind = "replicated"
    replicas: Int = 1
    max_concurrent: Int = 0
    total_completions: Int = 0


class ServiceSpec(Object, frozen=True):
    annotations: Annotations = Annotations()
    task: TaskSpec = TaskSpec()
    mode: ServiceMode = ServiceMode()
    update: UpdateConfig = UpdateConfig()
    rollback: UpdateConfig = UpdateConfig()


class UpdateStatus(Object, frozen=True):
    state: UpdateState = UpdateState.UNKNOWN
    started_at: Float = 0.0
    completed_at: Float = 0.0
    message: str = ""


class Service(Object, frozen=True):
    id: str
    spec: ServiceSpec = ServiceSpec()
    # Bumped on every spec change; tasks record the version they were made from.
    spec_version: Int = 1
    previous_spec: ServiceSpec | None = None
    update_status: UpdateStatus | None = None
    meta: Meta = Meta()
    # Jobs only: which run of the job is current; every update of a job starts
    # the next one (its tasks carry the iteration they belong to).
    job_iteration: Int = 0

    @property
    def name(self) -> str:
        return self.spec.annotations.name


# --- nodes -------------------------------------------------------------------


class NodeSpec(Object, frozen=True):
    annotations: Annotations = Annotations()
    desired_role: NodeRole = NodeRole.WORKER
    membership: Membership = Membership.ACCEPTED
    availability: NodeAvailability = NodeAvailability.ACTIVE


class EngineDescription(Object, frozen=True):
    engine_version: Text = ""
    labels: dict[Text, Text] = {}


class NodeDescription(Object, frozen=True):
    hostname: Text = ""
    platform: Platform = Platform()
    resources: Resources = Resources()
    engine: EngineDescription = EngineDescription()


class NodeStatus(Object, frozen=True):
    state: NodeState = NodeState.UNKNOWN
    message: str = ""
    addr: str = ""


class ManagerStatus(Object, frozen=True):
    raft_id: Int = 0
    addr: str = ""
    leader: bool = False
    reachability: Reachability = Reachability.UNKNOWN


class NodeCertificate(Object, frozen=True):
    """What the swarm CA issued to a node, as the transport needs it: the key a
    message's sender must hold (its CurveZMQ public key, raw 32 bytes), the
    role and the end of validity (wall seconds), and the PEM itself."""

    curve_key: bytes = b""
    role: NodeRole = NodeRole.WORKER
    not_after: Float = 0.0
    pem: bytes = b""
    # The key of before the last renewal, still accepted (until its own
    # certificate's end) until the node first speaks with the new one: the
    # answer to a renewal can be lost, and the node must be able to ask again.
    previous_key: bytes = b""
    previous_not_after: Float = 0.0


class Node(Object, frozen=True):
    id: str
    spec: NodeSpec = NodeSpec()
    description: NodeDescription = NodeDescription()
    status: NodeStatus = NodeStatus()
    role: NodeRole = NodeRole.WORKER
    manager_status: ManagerStatus | None = None
    meta: Meta = Meta()
    # None until the CA issues one (nodes of an in-process swarm have none).
    certificate: NodeCertificate | None = None

    @property
    def name(self) -> str:
        """What users call the node: its spec name if an operator set one, else its hostname."""
        return self.spec.annotations.name or self.description.hostname


# --- cluster -----------------------------------------------------------------


class OrchestrationConfig(Object, frozen=True):
    task_history_retention_limit: Int = 5


class DispatcherConfig(Object, frozen=True):
    heartbeat_period: Float = 5.0


class CAConfig(Object, frozen=True):
    node_cert_expiry: Float = 90 * 24 * 3600.0


class RaftConfig(Object, frozen=True):
    snapshot_interval: Int = 10_000
    log_entries_for_slow_followers: Int = 500
    heartbeat_tick: Int = 1
    election_tick: Int = 10


class ClusterSpec(Object, frozen=True):
    annotations: Annotations = Annotations(name="default")
    orchestration: OrchestrationConfig = OrchestrationConfig()
    dispatcher: DispatcherConfig = DispatcherConfig()
    ca: CAConfig = CAConfig()
    raft: RaftConfig = RaftConfig()
    # Autolock: every manager keeps its Raft key wrapped under the cluster's
    # unlock key, so a restarted manager starts locked until given the key.
    autolock_managers: bool = False


class JoinTokens(Object, frozen=True):
    worker: str = ""
    manager: str = ""


class RootCA(Object, frozen=True):
    """The swarm's root CA: its certificate and signing key (PEM). The key is
    a secret: it never leaves the managers (control replies redact it)."""

    cert_pem: bytes = b""
    key_pem: bytes = b""


class CurveKeyPair(Object, frozen=True):
    """The CurveZMQ server keypair all managers share (raw 32-byte keys); join
    tokens pin its public half. The secret half never leaves the managers."""

    public: bytes = b""
    secret: bytes = b""


class Cluster(Object, frozen=True):
    id: str
    spec: ClusterSpec = ClusterSpec()
    join_tokens: JoinTokens = JoinTokens()
    meta: Meta = Meta()
    root_ca: RootCA = RootCA()
    server_key: CurveKeyPair = CurveKeyPair()
    # The managers' unlock key (32 bytes) while autolock is on; empty otherwise.
    # A secret: control replies redact it (swarm.unlock_key shows it).
    unlock_key: bytes = b""

    @property
    def name(self) -> str:
        return self.spec.annotations.name


# --- raft membership -----------------------------------------------------------


class RaftMember(Object, frozen=True):
    """What a membership change says about the member beyond its Raft ID (the
    context of a Raft ConfChange): which node it is and where it listens."""

    raft_id: Int = 0
    node_id: str = ""
    addr: str = ""


# --- secrets and configs ---------------------------------------------------------


class SecretSpec(Object, frozen=True):
    annotations: Annotations = Annotations()
    # Never in a control reply: readers get the secret with this emptied.
    data: bytes = b""

    def __repr__(self) -> str:
        # Whatever logs a secret (a failure report) must not log its data.
        return f"SecretSpec(annotations={self.annotations!r}, data=<{len(self.data)} bytes>)"


class Secret(Object, frozen=True):
    """Data a service's tasks get as a file; only the workers running such a
    task receive it, and no command reads it back."""

    id: str
    spec: SecretSpec = SecretSpec()
    meta: Meta = Meta()

    @property
    def name(self) -> str:
        return self.spec.annotations.name


class ConfigSpec(Object, frozen=True):
    annotations: Annotations = Annotations()
    data: bytes = b""


class Config(Object, frozen=True):
    """A file's contents for a service's tasks, not secret: inspect shows it."""

    id: str
    spec: ConfigSpec = ConfigSpec()
    meta: Meta = Meta()

    @property
    def name(self) -> str:
        return self.spec.annotations.name


StoreObject = Node | Service | Task | Cluster | Secret | Config

KIND_OF: dict[type, Kind] = {
    Node: "node",
    Service: "service",
    Task: "task",
    Cluster: "cluster",
    Secret: "secret",
    Config: "config",
}
