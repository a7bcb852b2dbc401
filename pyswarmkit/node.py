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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pykka
import zmq

from pyswarmkit.actors.agent import AgentActor
from pyswarmkit.actors.control import ControlActor
from pyswarmkit.actors.dispatcher import DispatcherActor
from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.messages import Propose
from pyswarmkit.actors.orchestrator import OrchestratorActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.actors.scheduler import SchedulerActor
from pyswarmkit.actors.store import StoreActor
from pyswarmkit.api.errors import InvalidArgument, SwarmError, Unavailable
from pyswarmkit.api.ids import is_id, new_id
from pyswarmkit.api.objects import (
    Cluster,
    ManagerStatus,
    Node,
    NodeSpec,
    Resources,
)
from pyswarmkit.api.states import NodeRole, Reachability
from pyswarmkit.control.handlers import Handlers
from pyswarmkit.executor.base import Executor
from pyswarmkit.executor.process import ProcessExecutor, machine_resources
from pyswarmkit.executor.sim import SimExecutor
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import LocalProposer
from pyswarmkit.ticker import Ticker
from pyswarmkit.transport.bus import LocalBus
from pyswarmkit.transport.control import ControlServer, check_socket_path

log = logging.getLogger(__name__)

EXECUTORS = ("process", "sim")


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


# Set in a node process that `swarmd up` started: the parent holds the lock.
PARENT_HOLDS_LOCK = False


def lock_state_dir(state_dir: Path) -> IO[str]:
    """Hold ``<state-dir>/lock`` for the node's life: two nodes on one state dir
    would run each other's tasks and overwrite each other's files.

    The file names the pid a user would signal to stop the node. ``swarmd up``
    takes the lock itself before it starts a node's process (so a second ``up``
    is refused before it touches anything); that child then runs under its
    parent's lock (``PARENT_HOLDS_LOCK``)."""
    f = open(state_dir / "lock", "a+")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        owner = f.read().strip()
        if PARENT_HOLDS_LOCK and owner == str(os.getppid()):
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
        if config.control_socket:
            check_socket_path(os.path.abspath(config.control_socket))
        try:
            config.state_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise InvalidArgument(
                f"state dir {config.state_dir} exists and is not a directory: choose another -d"
            ) from None
        except OSError as exc:
            raise InvalidArgument(
                f"cannot create state dir {config.state_dir}: {exc.strerror}"
            ) from None
        self._lock = lock_state_dir(config.state_dir)
        (config.state_dir / "worker").mkdir(exist_ok=True)
        self.node_id = load_node_id(config.state_dir)
        self.executor = make_executor(config)
        self.bus = bus or LocalBus()
        self.registry = Registry(self.node_id)
        self.store = MemoryStore()
        self.handlers = Handlers()
        self.control_server: ControlServer | None = None
        self.ticker: Ticker | None = None
        self._started: list[str] = []

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

    def _start(self) -> None:
        self.bus.attach(self.registry)
        if self.is_manager:
            self._spawn("store", StoreActor.start(self.store, LocalProposer(self.store)))
            self._bootstrap()
            self._spawn("control", ControlActor.start(self.registry, self.store, self.handlers))
            self._start_leader_actors()
        description = self.executor.describe()
        manager_id = self.config.manager_id or self.node_id
        self._spawn("executor", ExecutorActor.start(self.registry, self.executor))
        self._spawn(
            "agent",
            AgentActor.start(self.registry, self.bus, manager_id, description, "127.0.0.1"),
        )
        if self.config.control_socket and self.is_manager:
            control = self.registry.get("control")
            assert control is not None
            self.control_server = ControlServer(self.config.control_socket, control.tell)
            self.control_server.start()
        self.ticker = Ticker(
            self.registry,
            [
                n
                for n in ("orchestrator", "scheduler", "dispatcher", "agent", "executor")
                if n in self._started
            ],
            self.config.tick_interval,
        )
        self.ticker.start()
        log.info("node %s (%s) started", self.node_id, self.config.hostname)

    def _start_leader_actors(self) -> None:
        # One manager is always its own leader; the Raft issue starts and stops
        # these on leadership changes.
        self._spawn("orchestrator", OrchestratorActor.start(self.registry, self.store))
        self._spawn("scheduler", SchedulerActor.start(self.registry, self.store))
        self._spawn(
            "dispatcher",
            DispatcherActor.start(
                self.registry, self.store, self.bus, self.config.heartbeat_period
            ),
        )

    def _spawn(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        self.registry.add(name, ref)
        self._started.append(name)

    def _bootstrap(self) -> None:
        """Make sure the cluster object and this manager's node object exist."""
        changes: list[Change] = []
        if not self.store.clusters():
            changes.append(Change("create", Cluster(id=new_id())))
        if self.store.get_node(self.node_id) is None:
            spec = NodeSpec(desired_role=NodeRole.MANAGER)
            status = ManagerStatus(leader=True, reachability=Reachability.REACHABLE)
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
        """Commit a batch from outside the actors (start-up, tests); blocks."""
        done = threading.Event()
        outcome: list[Any] = []

        def on_done(batch: EventBatch | None, err: SwarmError | None) -> None:
            outcome.extend((batch, err))
            done.set()

        if not self.registry.tell("store", Propose(changes, time.time(), on_done)):
            raise Unavailable("the store is not running")
        if not done.wait(timeout):
            raise Unavailable("the store did not commit in time")
        batch, err = outcome
        if err is not None:
            raise err
        return batch  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None
        if self.control_server is not None:
            self.control_server.stop()
            self.control_server = None
        # Workers first (the agent says goodbye, the executor stops every task),
        # then the managers' actors, the store last.
        order = ["agent", "executor", "dispatcher", "scheduler", "orchestrator", "control", "store"]
        for name in order:
            ref = self.registry.remove(name)
            if ref is not None:
                try:
                    ref.stop(block=True, timeout=30)
                except pykka.ActorDeadError:
                    pass
                except pykka.Timeout:
                    log.warning("actor %s did not stop in time", name)
        self.bus.detach(self.node_id)
        self._lock.close()
        log.info("node %s stopped", self.node_id)
