"""Builds one node from its configuration and wires its actors together.

A node is a manager (store, control, and on the leader the orchestrator,
scheduler and dispatcher) and, by default, also a worker (agent, executor).
Several nodes can live in one process: each has its own registry.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pykka
import zmq

from pyswarmkit import clock
from pyswarmkit.actors.agent import AgentActor
from pyswarmkit.actors.control import ControlActor, answer, failed
from pyswarmkit.actors.dispatcher import DispatcherActor
from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.messages import ControlRequest, Propose, Transact
from pyswarmkit.actors.orchestrator import OrchestratorActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.actors.scheduler import SchedulerActor
from pyswarmkit.actors.store import StoreActor
from pyswarmkit.api.errors import InvalidArgument, SwarmError, Unavailable
from pyswarmkit.api.ids import is_id, new_id
from pyswarmkit.api.objects import (
    Cluster,
    ClusterSpec,
    DispatcherConfig,
    ManagerStatus,
    Node,
    NodeSpec,
    Resources,
    replace,
)
from pyswarmkit.api.states import NodeRole, Reachability
from pyswarmkit.control.handlers import Handlers
from pyswarmkit.executor.base import Executor
from pyswarmkit.executor.process import ProcessExecutor, machine_resources
from pyswarmkit.executor.sim import SimExecutor
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import LocalProposer, Proposer
from pyswarmkit.supervisor import Factory, Supervisor
from pyswarmkit.ticker import Ticker
from pyswarmkit.transport.bus import LocalBus
from pyswarmkit.transport.control import ControlServer, check_socket_path

log = logging.getLogger(__name__)

EXECUTORS = ("process", "sim")
# Started when this manager gains leadership, stopped (in reverse) when it loses it.
LEADER_ACTORS = ("orchestrator", "scheduler", "dispatcher")
# The actors that keep time, in tick order.
TICKED = ("orchestrator", "scheduler", "dispatcher", "agent", "executor")


@dataclass(slots=True)
class NodeConfig:
    state_dir: Path
    hostname: str
    control_socket: str | None = None
    executor: str = "process"
    heartbeat_period: float = 5.0
    tick_interval: float = 0.1
    # Overrides of what the executor finds on the machine; None keeps the machine's.
    nano_cpus: int | None = None
    memory_bytes: int | None = None
    generic_resources: dict[str, int] = field(default_factory=dict)
    engine_labels: dict[str, str] = field(default_factory=dict)
    # A worker-only node reports to this manager's dispatcher over the bus; by
    # default a node is its own manager. Reaching a manager over the network
    # (joining) is the secure transport's work; in process, the LocalBus does it.
    manager_id: str | None = None
    # An actor group that stops more than this many times within the window
    # (seconds) stops the node instead of being restarted again.
    max_restarts: int = 5
    restart_window: float = 60.0
    # A node process that `swarmd up` started runs under the lock up holds.
    lock_held_by_parent: bool = False


def load_node_id(state_dir: Path) -> str:
    """The node keeps its ID across restarts in ``<state-dir>/node-id``."""
    path = state_dir / "node-id"
    if path.exists():
        node_id = path.read_text().strip()
        if not is_id(node_id):
            raise InvalidArgument(f"{path} does not hold a node ID: remove it to start afresh")
        return node_id
    node_id = new_id()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node_id + "\n")
    tmp.replace(path)
    return node_id


def refuse_non_dir(state_dir: Path, flag: str) -> None:
    """A file where the state dir should be is named as such, before any path
    inside it (the default control socket) is looked at."""
    if state_dir.exists() and not state_dir.is_dir():
        raise InvalidArgument(
            f"state dir {state_dir} exists and is not a directory: choose another {flag}"
        )


def make_state_dir(state_dir: Path, flag: str) -> None:
    """Create the state dir, or say in one line why it cannot be one."""
    refuse_non_dir(state_dir, flag)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InvalidArgument(
            f"state dir {state_dir} exists and is not a directory: choose another {flag}"
        ) from None
    except OSError as exc:
        raise InvalidArgument(f"cannot create state dir {state_dir}: {exc.strerror}") from None


def lock_state_dir(state_dir: Path, held_by_parent: bool = False) -> IO[str]:
    """Hold ``<state-dir>/lock`` for the node's life: two nodes on one state dir
    would run each other's tasks and overwrite each other's files.

    The file names the pid a user would signal to stop the node. ``swarmd up``
    takes the lock itself before it starts a node's process (so a second ``up``
    is refused before it touches anything); that child then runs under its
    parent's lock (``held_by_parent``)."""
    f = open(state_dir / "lock", "a+")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        owner = f.read().strip()
        if held_by_parent and owner == str(os.getppid()):
            return f  # our parent holds it for us
        f.close()
        raise Unavailable(
            f"state dir {state_dir} is in use by swarmd pid {owner or 'unknown'}: "
            "stop it or use another -d"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def node_resources(config: NodeConfig) -> Resources:
    found = machine_resources()
    return Resources(
        nano_cpus=found.nano_cpus if config.nano_cpus is None else config.nano_cpus,
        memory_bytes=found.memory_bytes if config.memory_bytes is None else config.memory_bytes,
        generic=dict(config.generic_resources),
    )


def make_executor(config: NodeConfig) -> Executor:
    resources = node_resources(config)
    labels = dict(config.engine_labels)
    if config.executor == "process":
        return ProcessExecutor(config.state_dir, config.hostname, resources, labels)
    if config.executor == "sim":
        return SimExecutor(config.hostname, resources, labels)
    raise InvalidArgument(
        f"unknown executor {config.executor!r}: choose one of {', '.join(EXECUTORS)}"
    )


class SwarmNode:
    def __init__(self, config: NodeConfig, bus: LocalBus | None = None) -> None:
        self.config = config
        refuse_non_dir(config.state_dir, "-d")
        if config.control_socket:
            check_socket_path(os.path.abspath(config.control_socket))
        make_state_dir(config.state_dir, "-d")
        self._lock = lock_state_dir(config.state_dir, config.lock_held_by_parent)
        (config.state_dir / "worker").mkdir(exist_ok=True)
        self.node_id = load_node_id(config.state_dir)
        self.executor = make_executor(config)
        self.bus = bus or LocalBus()
        self.registry = Registry(self.node_id)
        self.store = MemoryStore()
        # One manager with no Raft behind it commits at once and always leads.
        self.proposer: Proposer = LocalProposer(self.store)
        self.handlers = Handlers()
        self.control_server: ControlServer | None = None
        self.ticker: Ticker | None = None
        self.supervisor = Supervisor(
            self.registry,
            self._fatal,
            limit=config.max_restarts,
            window=config.restart_window,
            interval=max(config.tick_interval, 0.05),
        )
        # Why the node stopped on its own (an actor that kept stopping), if it did.
        self.failure: str | None = None
        # Set once the node has stopped, whoever stopped it.
        self.stopped = threading.Event()
        self._leader = False
        self._leader_lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, OSError | zmq.ZMQError):
                raise Unavailable(f"swarmd could not start: {exc}") from exc
            raise

    @property
    def is_manager(self) -> bool:
        return self.config.manager_id is None

    @property
    def is_leader(self) -> bool:
        return self._leader

    def _start(self) -> None:
        self.bus.attach(self.registry)
        if self.is_manager:
            self.supervisor.start_group("store", [("store", self._store_actor)])
            self._bootstrap()
            self.supervisor.start_group("control", [("control", self._control_actor)])
            # Today the only manager always leads; Raft will call set_leader on
            # each leadership change instead.
            self.set_leader(True)
        self.supervisor.start_group(
            "worker", [("executor", self._executor_actor), ("agent", self._agent_actor)]
        )
        if self.config.control_socket and self.is_manager:
            self.control_server = ControlServer(self.config.control_socket, self._to_control)
            self.control_server.start()
        self.ticker = Ticker(self.registry, TICKED, self.config.tick_interval)
        self.ticker.start()
        self.supervisor.start()
        log.info("node %s (%s) started", self.node_id, self.config.hostname)

    # --- factories: how each actor is (re)built --------------------------------

    def _store_actor(self) -> pykka.ActorRef[Any]:
        return StoreActor.start(self.store, self.proposer)

    def _control_actor(self) -> pykka.ActorRef[Any]:
        return ControlActor.start(self.registry, self.store, self.handlers)

    def _executor_actor(self) -> pykka.ActorRef[Any]:
        return ExecutorActor.start(self.registry, self.executor)

    def _agent_actor(self) -> pykka.ActorRef[Any]:
        description = self.executor.describe()
        manager_id = self.config.manager_id or self.node_id
        return AgentActor.start(self.registry, self.bus, manager_id, description)

    def _leader_factories(self) -> dict[str, Factory]:
        return {
            "orchestrator": lambda: OrchestratorActor.start(self.registry, self.store),
            "scheduler": lambda: SchedulerActor.start(self.registry, self.store),
            "dispatcher": lambda: DispatcherActor.start(self.registry, self.store, self.bus),
        }

    def _to_control(self, req: ControlRequest) -> None:
        if not self.registry.tell("control", req):
            answer(req, failed(Unavailable("the control service is restarting: try again")))

    # --- leadership --------------------------------------------------------------

    def set_leader(self, leader: bool) -> None:
        """Start the leader's subsystems on gaining leadership, stop them on
        losing it; any number of times. Called from whatever decides who leads
        (today: start-up, since a lone manager always leads)."""
        if not self.is_manager:
            raise InvalidArgument("a worker-only node cannot lead the swarm")
        with self._leader_lock:
            if leader == self._leader or self._stopping:
                return
            self._leader = leader
            factories = self._leader_factories()
            if leader:
                log.info("node %s leads: starting %s", self.node_id, ", ".join(LEADER_ACTORS))
                for name in LEADER_ACTORS:
                    self.supervisor.start_group(name, [(name, factories[name])])
                self._record_leader()
            else:
                log.info("node %s is no longer the leader: stopping its subsystems", self.node_id)
                for name in reversed(LEADER_ACTORS):
                    self.supervisor.stop_group(name)

    def _record_leader(self) -> None:
        """ManagerStatus.leader follows who leads: written by the new leader."""
        me = self.node_id

        def build(store: MemoryStore) -> list[Change]:
            changes = []
            for node in store.nodes():
                status = node.manager_status
                if status is not None and status.leader != (node.id == me):
                    status = replace(status, leader=node.id == me)
                    changes.append(Change("update", replace(node, manager_status=status)))
            return changes

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            if err is not None:
                log.warning("could not record this node as the leader: %s", err)

        if not self.registry.tell("store", Transact(build, clock.wall(), done)):
            log.warning("could not record this node as the leader: the store is not running")

    # --- start-up and writes -------------------------------------------------------

    def _bootstrap(self) -> None:
        """Make sure the cluster object and this manager's node object exist."""
        changes: list[Change] = []
        if not self.store.clusters():
            # The dispatcher reads the heartbeat period from the cluster object.
            dispatcher = DispatcherConfig(heartbeat_period=self.config.heartbeat_period)
            cluster = Cluster(id=new_id(), spec=ClusterSpec(dispatcher=dispatcher))
            changes.append(Change("create", cluster))
        if self.store.get_node(self.node_id) is None:
            spec = NodeSpec(desired_role=NodeRole.MANAGER)
            # Not the leader yet: set_leader records that when it happens.
            status = ManagerStatus(leader=False, reachability=Reachability.REACHABLE)
            node = Node(
                id=self.node_id,
                spec=spec,
                description=self.executor.describe(),
                role=NodeRole.MANAGER,
                manager_status=status,
            )
            changes.append(Change("create", node))
        if changes:
            self.write(changes)

    def write(self, changes: list[Change], timeout: float = 10.0) -> EventBatch | None:
        """Commit a batch from outside the actors (start-up, tests); blocks
        at most ``timeout`` seconds (measured on the monotonic clock)."""
        done = threading.Event()
        outcome: list[Any] = []

        def on_done(batch: EventBatch | None, err: SwarmError | None) -> None:
            outcome.extend((batch, err))
            done.set()

        if not self.registry.tell("store", Propose(changes, clock.wall(), on_done)):
            raise Unavailable("the store is not running")
        if not done.wait(timeout):
            raise Unavailable("the store did not commit in time")
        batch, err = outcome
        if err is not None:
            raise err
        return batch  # type: ignore[no-any-return]

    # --- stopping ------------------------------------------------------------

    def _fatal(self, message: str) -> None:
        """An actor kept stopping: a half-dead node must not run on."""
        self.failure = message
        log.error("%s", message)
        threading.Thread(target=self.stop, name=f"stop-{self.node_id}").start()

    def stop(self) -> None:
        with self._stop_lock:
            if self._stopping:
                return
            self._stopping = True
        try:
            self._stop()
        finally:
            self.stopped.set()

    def _stop(self) -> None:
        self.supervisor.stop()
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None
        if self.control_server is not None:
            self.control_server.stop()
            self.control_server = None
        # Workers first (the agent says goodbye, the executor stops every task),
        # then the leader's actors, control, the store last.
        for group in ("worker", *reversed(LEADER_ACTORS), "control", "store"):
            self.supervisor.stop_group(group)
        self._leader = False
        self.bus.detach(self.node_id)
        self._lock.close()
        log.info("node %s stopped", self.node_id)
