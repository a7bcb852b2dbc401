"""Builds one node from its configuration and wires its actors together.

A node is a manager (store, control, and on the leader the orchestrator,
scheduler and dispatcher) and, by default, also a worker (agent, executor).
Several nodes can live in one process: each has its own registry.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pykka
import zmq

from pyswarmkit import clock, network
from pyswarmkit.actors.agent import AgentActor, ManagerDown
from pyswarmkit.actors.ca import CAActor
from pyswarmkit.actors.control import ControlActor, answer, failed, ok
from pyswarmkit.actors.dispatcher import DispatcherActor
from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.logs import FORWARD_WAIT, LogBrokerActor, LogSenderActor
from pyswarmkit.actors.messages import ControlRequest, Propose, Transact
from pyswarmkit.actors.orchestrator import OrchestratorActor
from pyswarmkit.actors.raft import RaftActor, RaftMember, RaftProposer
from pyswarmkit.actors.redirect import RedirectActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.actors.renewer import RenewerActor
from pyswarmkit.actors.scheduler import SchedulerActor
from pyswarmkit.actors.store import StoreActor
from pyswarmkit.api import codec
from pyswarmkit.api.errors import FailedPrecondition, InvalidArgument, SwarmError, Unavailable
from pyswarmkit.api.ids import is_id, new_id
from pyswarmkit.api.objects import (
    Cluster,
    ClusterSpec,
    CurveKeyPair,
    DispatcherConfig,
    ManagerStatus,
    Node,
    NodeCertificate,
    NodeSpec,
    Resources,
    replace,
)
from pyswarmkit.api.protocol import LogControl, LogControlReply
from pyswarmkit.api.states import NodeRole, Reachability
from pyswarmkit.ca import authz, certs, files, signer
from pyswarmkit.ca.authz import AuthTable
from pyswarmkit.ca.files import Identity
from pyswarmkit.ca.tokens import parse_token
from pyswarmkit.control.handlers import Handlers
from pyswarmkit.executor.base import Executor
from pyswarmkit.executor.process import ProcessExecutor, machine_resources
from pyswarmkit.executor.sim import SimExecutor
from pyswarmkit.membership import raft_id_of
from pyswarmkit.metrics import Metrics, MetricsServer, NodeView
from pyswarmkit.raft import Config as RaftCoreConfig
from pyswarmkit.raft import SnapshotCorruptError, WalCorruptError, dekfile
from pyswarmkit.raft.crypt import Sealer, UnlockKeyError, parse_unlock_key
from pyswarmkit.raft.dekfile import DekKeeper
from pyswarmkit.store.entries import EntryError
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import LocalProposer, Proposer
from pyswarmkit.store.recovery import force_new_cluster
from pyswarmkit.supervisor import Factory, Supervisor
from pyswarmkit.ticker import Ticker
from pyswarmkit.transport.bus import Envelope, LocalBus
from pyswarmkit.transport.control import ControlServer, check_socket_path
from pyswarmkit.transport.zmq_bus import CurveKeys, ZmqBus

if TYPE_CHECKING:
    from pyswarmkit.web.server import WebServer

log = logging.getLogger(__name__)

EXECUTORS = ("process", "sim", "docker")
# Started when this manager gains leadership, stopped (in reverse) when it loses it.
LEADER_ACTORS = ("orchestrator", "scheduler", "dispatcher", "logbroker")
# The actors that keep time, in tick order.
TICKED = (
    "raft",
    "orchestrator",
    "scheduler",
    "dispatcher",
    "logbroker",
    "agent",
    "executor",
    "logsender",
    "renewer",
)
# How long a manager waits at start for its Raft member to lead (a lone manager
# leads at once, after replaying its log).
LEAD_TIMEOUT = 60.0
# A manager restarted with less validity left than this on its certificate gets a new one.
MIN_CERT_LEFT = 3600.0
# What a locked manager answers to every request but swarm.unlock.
LOCKED = "swarm is locked: unlock it with swarmctl swarm unlock"
# A disk that is full, over quota or failing: the state dir cannot be written.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


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
    # HOST:PORT where a manager serves other nodes over CurveZMQ; None: nodes
    # reach it only in process (a LocalBus).
    listen_remote_api: str | None = None
    # The Docker engine of ``--executor docker``; None: DOCKER_HOST, else the standard socket.
    engine_addr: str | None = None
    # The address other nodes dial, when it differs from the one listened on.
    advertise_remote_api: str | None = None
    # Join the swarm whose manager listens at join_addr, with a join token.
    join_addr: str | None = None
    join_token: str | None = None
    # Shrinks the certificate renewal delays (tests only; 1 in real use).
    cert_renewal_scale: float = 1.0
    # Raft timing, in ticks of tick_interval (SwarmKit's defaults).
    heartbeat_tick: int = 1
    election_tick: int = 10
    # Restart this manager as a one-manager swarm with all it has committed
    # (after the others' majority is lost for good).
    force_new_cluster: bool = False
    # How to start this node again (argv) when its role changes; None: stop.
    restart_command: list[str] | None = None
    # HOST:PORT where Prometheus metrics are served over HTTP; None: not served.
    listen_metrics: str | None = None
    # HOST:PORT where the read-only web view is served over HTTP; None: not served.
    listen_web: str | None = None
    # The swarm's unlock key (SWMKEY-1-...) for a manager under autolock; None:
    # a locked manager waits for ``swarmctl swarm unlock``.
    unlock_key: str | None = None


# Allocations between collections of the youngest generation (Python's default: 700).
GC_YOUNG = 100_000


def tune_gc() -> None:
    """Fit the garbage collector to a long-running node; for a process that
    runs one node (``swarmd``), not a test that starts many.

    What start-up made (modules, classes, functions: tens of thousands of
    objects that live as long as the process) is frozen out of the
    collector's sight: each full collection walked them all again. And the
    youngest generation is collected every GC_YOUNG allocations rather than
    700: a write in flight holds a dozen small objects (its closures, its
    proposal, its batch), and with thousands in flight every collection
    walked them, only for them to be freed by their reference counts
    moments later. Both together took a third of a busy manager's CPU."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, older, oldest)


def save_node_id(state_dir: Path, node_id: str) -> None:
    path = state_dir / "node-id"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node_id + "\n")
    tmp.replace(path)


def replace_upstream(upstream: network.Upstream, addr: str) -> network.Upstream:
    """The upstream a restart with ``--join-addr`` reports to. Another address
    is another manager, whose ID is not known yet: it is learnt from its first
    answer (any manager takes a message for "" as its own)."""
    if addr == upstream.addr:
        return upstream
    return network.Upstream("", addr, upstream.server_key)


def load_node_id(state_dir: Path) -> str:
    """The node keeps its ID across restarts in ``<state-dir>/node-id``."""
    path = state_dir / "node-id"
    if path.exists():
        node_id = path.read_text().strip()
        if not is_id(node_id):
            raise InvalidArgument(f"{path} does not hold a node ID: remove it to start afresh")
        return node_id
    node_id = new_id()
    save_node_id(state_dir, node_id)
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
    if config.executor == "docker":
        from pyswarmkit.executor.docker import DockerExecutor

        overrides = Resources(
            nano_cpus=config.nano_cpus or 0,
            memory_bytes=config.memory_bytes or 0,
            generic=dict(config.generic_resources),
        )
        return DockerExecutor(
            config.hostname, config.engine_addr, overrides, labels, state_dir=config.state_dir
        )
    raise InvalidArgument(
        f"unknown executor {config.executor!r}: choose one of {', '.join(EXECUTORS)}"
    )


class SwarmNode:
    def __init__(self, config: NodeConfig, bus: LocalBus | None = None) -> None:
        self.config = config
        refuse_non_dir(config.state_dir, "-d")
        if config.control_socket:
            check_socket_path(os.path.abspath(config.control_socket))
        if config.listen_remote_api:
            network.parse_addr(config.listen_remote_api, "--listen-remote-api")
        if config.advertise_remote_api:
            network.parse_addr(config.advertise_remote_api, "--advertise-remote-api")
        if config.join_addr is not None:
            network.check_dial_addr(config.join_addr, "--join-addr")
        if config.join_token is not None:
            parse_token(config.join_token)
        make_state_dir(config.state_dir, "-d")
        self._lock = lock_state_dir(config.state_dir, config.lock_held_by_parent)
        try:
            joined = (config.state_dir / network.UPSTREAM_FILE).exists()
            if config.listen_remote_api and config.join_addr is None and not joined:
                # A manager: nothing (a new swarm's keys) is written if it cannot listen.
                network.check_can_listen(config.listen_remote_api, "--listen-remote-api")
            (config.state_dir / "worker").mkdir(exist_ok=True)
            self.executor = make_executor(config)
            # A worker that joined over the network: its identity (and ID)
            # come from the swarm's CA, and it reports to a remote manager.
            self.identity: Identity | None = None
            self.upstream: network.Upstream | None = None
            self._join_or_resume()
            self.node_id: str
            if self.identity is not None and self.upstream is not None:
                self.node_id = self.identity.node_id
                save_node_id(config.state_dir, self.node_id)
            else:
                self.node_id = load_node_id(config.state_dir)
            # Executors that label what they start (containers) name the node.
            if hasattr(self.executor, "node_id"):
                self.executor.node_id = self.node_id
        except BaseException:
            self._lock.close()
            raise
        self.bus: LocalBus | ZmqBus = bus or LocalBus()
        self.registry = Registry(self.node_id)
        self.store = MemoryStore()
        # A manager commits through its Raft member (set up as it starts); an
        # in-process worker's store is never written.
        self.proposer: Proposer = LocalProposer(self.store)
        self.raft: RaftMember | None = None
        # Other managers this node keeps a connection to: node ID -> address.
        self._dialed_managers: dict[str, str] = {}
        self.advertised = ""
        # The manager this node's agent reports to now.
        self._current_manager = ""
        # Leadership changes start and stop the leader's actors only once the
        # node has started (before that, start-up does it).
        self._follow_raft = False
        self.handlers = Handlers(leader=self._live_leader, reachability=self._live_reachability)
        self.auth = AuthTable()
        self.metrics = Metrics(
            NodeView(
                store=lambda: self.store if self.raft is not None else None,
                raft=lambda: self.raft,
                transport=lambda: self.bus.stats() if isinstance(self.bus, ZmqBus) else None,
                leading=lambda: self.is_leader,
            )
        )
        self._metrics_server: MetricsServer | None = None
        self._web_server: WebServer | None = None
        # Nodes whose old key is being retired (a write in flight).
        self._forgetting: set[str] = set()
        self._forget_lock = threading.Lock()
        self._unwatch: Any = None
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
        # Encryption at rest (a manager): its Raft key, kept on disk as autolock says.
        self.locked = False
        self._dek: bytes | None = None
        # A new key the Raft log moves to as it opens (drawn when autolock turned on).
        self._pending_dek: bytes | None = None
        self._dek_wrapped_under: bytes | None = None
        self.dek_keeper: DekKeeper | None = None
        self._unwatch_cluster: Any = None
        self._unlock_lock = threading.Lock()
        self._unlocking = False

    def _join_or_resume(self) -> None:
        """A worker that joined before resumes with its saved identity; one
        given --join-addr and --join-token with none joins now."""
        config = self.config
        if config.manager_id is not None:
            return  # an in-process worker: its manager is in this process
        joining = config.join_addr is not None or config.join_token is not None
        joined_before = (config.state_dir / network.UPSTREAM_FILE).exists()
        if not joining and not joined_before:
            return  # a manager: it makes (or remakes) its own identity as it starts
        identity = files.load_identity(config.state_dir, clock.wall())
        if identity is not None and joined_before:
            upstream = network.load_upstream(config.state_dir)
            assert upstream is not None
            if config.join_token is not None:
                pinned = parse_token(config.join_token).server_key
                if pinned != upstream.server_key:
                    log.info(
                        "the join token names another swarm than the one this node "
                        "joined as %s: joining it as a new node",
                        identity.node_id,
                    )
                    identity = None
            if identity is not None:
                if config.join_addr is not None:
                    upstream = replace_upstream(upstream, config.join_addr)
                self.identity, self.upstream = identity, upstream
                if joining:
                    log.info(
                        "this node joined before as %s: reusing its identity", identity.node_id
                    )
                return
        elif identity is None and joined_before and not joining:
            raise InvalidArgument(
                f"{config.state_dir / 'certificates'} is missing: this node joined a swarm "
                "before; join again with --join-addr and --join-token"
            )
        elif identity is not None and not joining:
            raise InvalidArgument(
                f"{config.state_dir} holds a manager's certificate and a worker's manager "
                f"address: remove {config.state_dir / network.UPSTREAM_FILE} to run it as a "
                "manager, or use another -d"
            )
        elif identity is not None and not joined_before:
            raise InvalidArgument(
                f"{config.state_dir} belongs to a manager: use another -d to join a swarm"
            )
        if config.join_addr is None or config.join_token is None:
            raise InvalidArgument("--join-addr and --join-token go together: give both to join")
        self.identity, self.upstream = network.join_swarm(
            config.state_dir, config.join_addr, config.join_token, self.executor.describe()
        )

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
                where = exc.filename or f"under {self.config.state_dir}"
                raise Unavailable(
                    f"swarmd could not start: cannot write {where}: {exc.strerror}: "
                    "make room on that disk and start swarmd again"
                ) from exc
            if isinstance(exc, OSError | zmq.ZMQError):
                raise Unavailable(f"swarmd could not start: {exc}") from exc
            raise

    @property
    def is_manager(self) -> bool:
        if self.config.manager_id is not None:
            return False
        # A node that joined is a manager when its certificate says so.
        return self.upstream is None or (
            self.identity is not None and self.identity.role == NodeRole.MANAGER
        )

    @property
    def joined(self) -> bool:
        """Whether this node joined a swarm (rather than starting one)."""
        return self.upstream is not None

    @property
    def manager_id(self) -> str:
        if self.upstream is not None:
            return self.upstream.manager_id
        return self.config.manager_id or self.node_id

    @property
    def is_leader(self) -> bool:
        return self._leader

    def _start(self) -> None:
        if self.config.listen_metrics:
            self._metrics_server = MetricsServer(self.config.listen_metrics, self.metrics)
        if self.config.listen_web:
            # Imported here: a node without a web view never loads the HTTP stack.
            from pyswarmkit.web.server import WebServer

            self._web_server = WebServer(
                self.config.listen_web, lambda: self.store if self.raft is not None else None
            )
            log.info("web view on http://%s/", self._web_server.address)
        if self.is_manager and not self._load_raft_key():
            self._serve_locked()
            return
        self._start_node()

    def _start_node(self) -> None:
        """Everything but the metrics and web servers; a locked manager does
        this once it is unlocked."""
        if self.is_manager:
            self._open_raft()
            assert self.raft is not None
            self.supervisor.start_group(
                "store", [("raft", self._raft_actor), ("store", self._store_actor)]
            )
            if self.raft.is_only_voter() and (not self.joined or self.config.force_new_cluster):
                # A lone manager (a new swarm, or one restarted): it leads alone.
                self._wait_to_lead()
                self._bootstrap()
            if self.config.listen_remote_api:
                self._serve_remote()
            elif self.joined:
                raise InvalidArgument("a manager needs --listen-remote-api to serve other nodes")
        elif self.upstream is not None:
            self._dial_manager(self.upstream)
        self.bus.attach(self.registry)
        if self.is_manager:
            self.supervisor.start_group("control", [("control", self._control_actor)])
            assert self.raft is not None
            if self.config.listen_remote_api:
                # Every manager signs: joins and renewals through any manager.
                self.supervisor.start_group("ca", [("ca", self._ca_actor)])
            self._follow_raft = True
            self.set_leader(self.raft.leading)
            if not self.is_leader:
                self._redirect_agents()
        self.supervisor.start_group(
            "worker", [("executor", self._executor_actor), ("agent", self._agent_actor)]
        )
        # Its own group: restarting it must not restart the executor (and stop every task).
        self.supervisor.start_group("logsender", [("logsender", self._logsender_actor)])
        if self.identity is not None and isinstance(self.bus, ZmqBus):
            self.supervisor.start_group("renewer", [("renewer", self._renewer_actor)])
        if self.config.control_socket and self.is_manager and self.control_server is None:
            self.control_server = ControlServer(self.config.control_socket, self._to_control)
            self.control_server.start()
        self.ticker = Ticker(self.registry, TICKED, self.config.tick_interval)
        self.ticker.start()
        self.supervisor.start()
        log.info("node %s (%s) started", self.node_id, self.config.hostname)

    # --- raft -------------------------------------------------------------------

    def _open_raft(self) -> None:
        """Open this manager's Raft log (restoring the store from its newest
        snapshot); every write from now on commits through it."""
        config = self.config
        raft_config = RaftCoreConfig(
            election_tick=config.election_tick, heartbeat_tick=config.heartbeat_tick
        )
        raft_dir = config.state_dir / "raft"
        if config.force_new_cluster:
            if not (raft_dir / "wal").is_dir():
                raise InvalidArgument(
                    f"--force-new-cluster: {raft_dir} holds no raft log: this node has no "
                    "swarm state to start a new cluster from"
                )
            try:
                force_new_cluster(raft_dir, raft_id_of(self.node_id), self._sealer())
            except (WalCorruptError, SnapshotCorruptError, EntryError) as exc:
                raise FailedPrecondition(str(exc)) from None
        try:
            self.raft = RaftMember(
                self.node_id,
                raft_dir,
                self.store,
                # A manager that joined learns the members from the leader.
                founder=not self.joined,
                config=raft_config,
                on_leading=self._leadership_changed,
                sealer=self._sealer(),
                rewrite_log=self._pending_dek is not None,
                on_fatal=self._fatal,
            )
        except (WalCorruptError, SnapshotCorruptError) as exc:
            # Starting would lose committed state: stop, saying where the damage is.
            raise FailedPrecondition(str(exc)) from None
        except EntryError as exc:
            raise FailedPrecondition(f"{raft_dir}: {exc}; refusing to start") from None
        self.proposer = RaftProposer(self.registry)
        if self._pending_dek is not None:
            # The log is under the new key now: it becomes the only one.
            dekfile.write(config.state_dir, self._pending_dek, self._dek_wrapped_under)
            self._dek, self._pending_dek = self._pending_dek, None
            log.info("raft log moved to a new key")
        self._keep_raft_key()

    # --- encryption at rest and autolock ----------------------------------------

    def _sealer(self) -> Sealer:
        assert self._dek is not None
        if self._pending_dek is not None:
            return Sealer(self._pending_dek, also_opens=(self._dek,))
        return Sealer(self._dek)

    def _load_raft_key(self) -> bool:
        """Read this manager's Raft key (made if it has none); False when
        autolock wraps it and no unlock key was given: the node is locked."""
        state_dir = self.config.state_dir
        try:
            found = dekfile.load_or_create(state_dir)
        except dekfile.DekFileError as exc:
            raise FailedPrecondition(str(exc)) from None
        if not found.locked:
            self._dek, self._pending_dek = found.keys(None)
            return True
        if self.config.unlock_key is None:
            return False
        try:
            key = parse_unlock_key(self.config.unlock_key)
            self._dek, self._pending_dek = found.keys(key)
        except UnlockKeyError as exc:
            raise InvalidArgument(f"--unlock-key-file: {exc}") from None
        self._dek_wrapped_under = key
        return True

    def _serve_locked(self) -> None:
        """Autolock: without the key, serve only ``swarm.unlock``."""
        self.locked = True
        log.warning("%s; this manager waits for its unlock key", LOCKED)
        if self.config.control_socket:
            self.control_server = ControlServer(self.config.control_socket, self._to_control)
            self.control_server.start()

    def _unlock(self, req: ControlRequest) -> None:
        """``swarm.unlock``: check the key against the wrapped Raft key, then
        start the rest of the node (on a thread of its own: this is the control
        socket's I/O thread) and answer once it runs."""
        with self._unlock_lock:
            if not self.locked or self._unlocking:
                answer(req, failed(FailedPrecondition("swarm is not locked")))
                return
            try:
                text = req.body.get("unlock_key") if isinstance(req.body, dict) else None
                if not isinstance(text, str):
                    raise UnlockKeyError("request field 'unlock_key' must be a str")
                key = parse_unlock_key(text)
                found = dekfile.read(self.config.state_dir)
                if found is None:
                    raise UnlockKeyError(f"{dekfile.dek_path(self.config.state_dir)} is missing")
                self._dek, self._pending_dek = found.keys(key)
            except (UnlockKeyError, dekfile.DekFileError) as exc:
                answer(req, failed(InvalidArgument(str(exc))))
                return
            self._dek_wrapped_under = key
            self._unlocking = True
        threading.Thread(
            target=self._finish_unlock, args=(req,), name="unlock", daemon=True
        ).start()

    def _finish_unlock(self, req: ControlRequest) -> None:
        try:
            self._start_node()
        except Exception as exc:
            message = f"unlocked, but the manager could not start: {exc}"
            answer(req, failed(FailedPrecondition(message)))
            self._fatal(message)
            return
        self.locked = False
        log.info("swarm unlocked: node %s started", self.node_id)
        answer(req, ok({}))

    def _keep_raft_key(self) -> None:
        """Follow the cluster object: autolock on wraps the Raft key under the
        unlock key, off keeps it in clear; a rotated key re-wraps it."""
        assert self._dek is not None and self.raft is not None
        self.dek_keeper = dekfile.DekKeeper(
            self.config.state_dir, self._dek, self._dek_wrapped_under
        )
        keeper = self.dek_keeper
        clusters = self.store.clusters()

        def wish(cluster: Cluster) -> bytes | None:
            on = cluster.spec.autolock_managers and cluster.unlock_key
            return cluster.unlock_key if on else None

        # Runs before the Raft actor applies anything: the store is the snapshot's.
        replay = dekfile.ReplayFilter(
            self.raft.core.commit_index,
            self.raft.core.applied_index,
            (wish(clusters[0]),) if clusters else None,
        )

        def changed(batch: EventBatch) -> None:
            wishes = [
                wish(ev.obj)  # type: ignore[arg-type]
                for ev in batch.events
                if ev.kind == "cluster" and ev.op != "delete"
            ]
            act = replay.batch(batch.index, wishes)
            if act is not None:
                keeper.want(act[0])

        self._unwatch_cluster = self.store.watch(changed)
        first = replay.start()
        if first is not None:
            keeper.want(first[0])

    def _wait_to_lead(self) -> None:
        assert self.raft is not None
        if not self.raft.leading_event.wait(LEAD_TIMEOUT):
            raise Unavailable(f"this manager did not become the leader within {LEAD_TIMEOUT:g} s")

    def _wait_for_leader(self) -> None:
        """Writes at start-up need a leader: a manager restarted among others
        waits for one to be elected (or to make itself heard)."""
        assert self.raft is not None
        deadline = clock.monotonic() + LEAD_TIMEOUT
        while not self.raft.core.leader:
            if clock.monotonic() > deadline or self._stopping:
                raise Unavailable(
                    f"no leader among the managers within {LEAD_TIMEOUT:g} s: "
                    "is a majority of them running?"
                )
            threading.Event().wait(0.05)

    def _wait_for_cluster(self) -> list[Cluster]:
        """The swarm's first manager, restarted among others, serves with the
        CA its store holds; until the Raft actor has replayed the log past its
        last snapshot (none yet, in a young swarm) the store may hold none."""
        deadline = clock.monotonic() + LEAD_TIMEOUT
        while not (clusters := self.store.clusters()):
            if clock.monotonic() > deadline or self._stopping:
                raise Unavailable(
                    f"this manager's Raft log gave no cluster within {LEAD_TIMEOUT:g} s: "
                    "is a majority of the managers running?"
                )
            threading.Event().wait(0.05)
        return clusters

    def _leadership_changed(self, leading: bool) -> None:
        if self._follow_raft:
            self.set_leader(leading)

    # --- the network -------------------------------------------------------------

    def _serve_remote(self) -> None:
        """A manager: hold a certificate of this swarm's CA and serve other
        nodes over CurveZMQ, authorizing every message by its sender's key."""
        assert self.config.listen_remote_api is not None and self.raft is not None
        clusters = self.store.clusters()
        if self.joined:
            # Its identity came with the join; the server key too, until the
            # store (replicated from the leader) holds the cluster.
            assert self.identity is not None
            keypair = self.identity.keypair
            server = (
                clusters[0].server_key if clusters else files.load_server_key(self.config.state_dir)
            )
            if server is None or not server.secret:
                raise FailedPrecondition(
                    f"{self.config.state_dir} holds no server key for this manager: "
                    "remove it and join the swarm again with the manager token"
                )
            cert = None
        else:
            clusters = clusters or self._wait_for_cluster()
            keypair, cert = self._own_certificate(clusters[0])
            server = clusters[0].server_key
        self.auth.rebuild(self.store.nodes())
        self._unwatch = self.store.watch(self._nodes_changed)
        bus = ZmqBus(
            self.node_id,
            CurveKeys(keypair.public, keypair.secret),
            listen=self.config.listen_remote_api,
            server=CurveKeys(server.public, server.secret),
            authorize=self._authorize,
        )
        bus.on_down = self._manager_down
        bus.start()
        self.bus = bus
        self.raft.bus = bus
        # Before anything waits on the other managers: their answers need somewhere to go.
        bus.attach(self.registry)
        host, _ = network.parse_addr(self.config.listen_remote_api, "--listen-remote-api")
        listening = network.join_addr(host, bus.port or 0)
        advertised = self.config.advertise_remote_api or network.join_addr(
            network.dialable_host(host), bus.port or 0
        )
        self.advertised = advertised
        if self.upstream is not None:
            up = self.upstream
            self._dialed_managers[up.manager_id] = up.addr
            bus.dial(up.manager_id, up.addr, up.server_key)
            self.raft.join_via = (up.manager_id, advertised)
        self._dial_managers()
        if not self.joined:
            self._wait_for_leader()
            node = self.store.get_node(self.node_id)
            assert node is not None
            if cert is not None:
                self.write([Change("update", replace(node, certificate=cert))])
            self._record_manager_addr(advertised)
        log.info("serving other nodes on %s (advertised as %s)", listening, advertised)

    def _own_certificate(self, cluster: Cluster) -> tuple[CurveKeyPair, NodeCertificate | None]:
        """The manager that started the swarm issues its own certificate from
        the CA in its store, keeping its key when the certificate is of this CA."""
        wall = clock.wall()
        try:
            identity = files.load_identity(self.config.state_dir, wall)
        except SwarmError:
            identity = None  # expired or damaged: this manager gets a new one anyway
        ours = identity is not None and identity.root_pem == cluster.root_ca.cert_pem
        node = self.store.get_node(self.node_id)
        if (
            ours
            and identity is not None
            and node is not None
            and node.certificate is not None
            and node.certificate.pem == identity.cert_pem
            and wall < node.certificate.not_after - MIN_CERT_LEFT
        ):
            # The swarm knows this certificate and it has time left: nothing to write.
            self.identity = identity
            return identity.keypair, None
        keypair = identity.keypair if ours and identity is not None else certs.new_curve_keypair()
        cert = signer.issue_node(cluster, self.node_id, keypair.public, NodeRole.MANAGER, wall)
        files.save_identity(self.config.state_dir, keypair, cert.pem, cluster.root_ca.cert_pem)
        self.identity = files.load_identity(self.config.state_dir, wall)
        return keypair, cert

    def _dial_managers(self) -> None:
        """Keep a connection to every other manager the store knows the address of."""
        bus = self.bus
        if not isinstance(bus, ZmqBus):
            return
        clusters = self.store.clusters()
        if not clusters:
            return
        server_public = clusters[0].server_key.public
        nodes = self.store.nodes()
        for node in nodes:
            status = node.manager_status
            if node.id == self.node_id or node.role != NodeRole.MANAGER or status is None:
                continue
            if status.addr and self._dialed_managers.get(node.id) != status.addr:
                self._dialed_managers[node.id] = status.addr
                bus.dial(node.id, status.addr, server_public)
        # A demoted manager no longer listens where it did: dialing it on would
        # only log, every ten seconds, that it is still down. One the store does
        # not name yet stays (a leader dialed before this member caught up).
        gone = {n.id for n in nodes if n.role != NodeRole.MANAGER}
        for node_id in [i for i in self._dialed_managers if i in gone]:
            del self._dialed_managers[node_id]
            bus.undial(node_id)

    def _dial_manager(self, upstream: network.Upstream) -> None:
        assert self.identity is not None
        keypair = self.identity.keypair
        bus = ZmqBus(self.node_id, CurveKeys(keypair.public, keypair.secret))
        bus.on_down = self._manager_down
        bus.start()
        bus.dial(upstream.manager_id, upstream.addr, upstream.server_key)
        bus.set_default_route(upstream.manager_id)
        self.bus = bus
        log.info("reporting to manager %s at %s", upstream.manager_id, upstream.addr)

    def _manager_down(self, node_id: str) -> None:
        """On the transport's I/O thread: the connection to manager ``node_id``
        dropped. The agent turns away from it if it reports there."""
        self.registry.tell("agent", ManagerDown(node_id))

    def _authorize(self, key: bytes, env: Envelope) -> str:
        """The transport's hook, on its I/O thread, for every message that
        arrives from another node."""
        peer = self.auth.lookup(key)
        removed = peer is None and key in self.auth.removed_keys
        sender = authz.authorize(
            peer, key, env.dest_actor, env.kind, env.source, clock.wall(), removed
        )
        if peer is not None and not peer.previous and peer.node_id in self.auth.renewing:
            self._forget_previous_key(peer.node_id)
        return sender

    def _forget_previous_key(self, node_id: str) -> None:
        """The node spoke with its new key: the one of before is refused from now."""
        with self._forget_lock:
            if node_id in self._forgetting:
                return
            self._forgetting.add(node_id)

        def build(store: MemoryStore) -> list[Change]:
            node = store.get_node(node_id)
            updated = None if node is None else signer.forget_previous_key(node)
            return [] if updated is None else [Change("update", updated)]

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            with self._forget_lock:
                self._forgetting.discard(node_id)
            if err is not None:
                log.warning("could not retire the old key of node %s: %s", node_id, err)

        if not self.registry.tell("store", Transact(build, clock.wall(), done)):
            done(None, None)

    def _nodes_changed(self, batch: EventBatch) -> None:
        self.auth.follow(batch.events)
        if any(e.kind == "node" or e.kind == "cluster" for e in batch.events):
            self._dial_managers()

    def _record_manager_addr(self, addr: str) -> None:
        node = self.store.get_node(self.node_id)
        if node is None or node.manager_status is None:
            return
        rid = raft_id_of(self.node_id)
        status = node.manager_status
        if status.addr == addr and status.raft_id == rid:
            return
        fresh = replace(status, addr=addr, raft_id=rid)
        self.write([Change("update", replace(node, manager_status=fresh))])

    # --- factories: how each actor is (re)built --------------------------------

    def _ca_actor(self) -> pykka.ActorRef[Any]:
        return CAActor.start(self.registry, self.store, self.bus)

    def _raft_actor(self) -> pykka.ActorRef[Any]:
        assert self.raft is not None
        return RaftActor.start(self.raft)

    def _store_actor(self) -> pykka.ActorRef[Any]:
        return StoreActor.start(self.store, self.proposer, self.metrics)

    def _control_actor(self) -> pykka.ActorRef[Any]:
        return ControlActor.start(self.registry, self.store, self.handlers, metrics=self.metrics)

    def _executor_actor(self) -> pykka.ActorRef[Any]:
        return ExecutorActor.start(self.registry, self.executor)

    def _logsender_actor(self) -> pykka.ActorRef[Any]:
        return LogSenderActor.start(self.registry, self.bus, self.executor)

    def _agent_actor(self) -> pykka.ActorRef[Any]:
        description = self.executor.describe()
        return AgentActor.start(
            self.registry,
            self.bus,
            self._agent_manager,
            description,
            self._fatal,
            self._connect_manager,
        )

    @property
    def reporting_to(self) -> str:
        """The manager this node's agent reports to, as far as it knows."""
        return self._current_manager or self._agent_manager

    @property
    def _agent_manager(self) -> str:
        """The manager a (re)started agent turns to first: the one it used last."""
        if self.upstream is not None:
            return self.upstream.manager_id
        return self.manager_id

    def _connect_manager(self, node_id: str, addr: str) -> None:
        """The agent turns to another manager: a worker dials it, and remembers
        it for its next start; a manager keeps connections to all of them."""
        self._current_manager = node_id
        up = self.upstream
        if up is None or (up.manager_id == node_id and addr in ("", up.addr)):
            return
        if not up.manager_id and not addr:
            # The manager dialed by its address alone answered: now it has a name.
            addr = up.addr
        if not addr:
            if self.is_manager:
                return  # a manager keeps a connection to every manager it knows
            raise Unavailable(f"no address known for manager {node_id}")
        network.check_dial_addr(addr, "a manager's address")
        if self.is_manager:
            self.upstream = network.Upstream(node_id, addr, up.server_key)
            self._reach_manager(node_id, addr, up.server_key)
        else:
            bus = self.bus
            if isinstance(bus, ZmqBus):
                bus.dial(node_id, addr, up.server_key)
                bus.set_default_route(node_id)
            self.upstream = network.Upstream(node_id, addr, up.server_key)
        network.save_upstream(self.config.state_dir, self.upstream)

    def _reach_manager(self, node_id: str, addr: str, server_public: bytes) -> None:
        """A manager whose agent turns to ``node_id`` (the leader, as a
        redirect names it) dials it if its store does not know that manager
        yet, and while it is not a Raft member yet asks it to join: a worker
        promoted while the manager it joined through no longer leads knows no
        other manager until it is a member, and the one it knows refuses to
        add it (only the leader adds members)."""
        bus = self.bus
        if isinstance(bus, ZmqBus) and self._dialed_managers.get(node_id) != addr:
            self._dialed_managers[node_id] = addr
            bus.dial(node_id, addr, server_public)
        raft = self.raft
        if raft is not None and raft.join_via is not None and self.advertised:
            raft.join_via = (node_id, self.advertised)

    def _renewer_actor(self) -> pykka.ActorRef[Any]:
        assert self.identity is not None and isinstance(self.bus, ZmqBus)
        return RenewerActor.start(
            self.node_id,
            # The manager the agent turned to last: the leader, as far as it knows.
            lambda: self._current_manager or self.manager_id,
            self.config.state_dir,
            self.identity,
            self.bus,
            self.config.cert_renewal_scale,
            self._renewed,
        )

    def _renewed(self, identity: Identity) -> None:
        was = self.identity.role if self.identity is not None else None
        self.identity = identity
        if was is not None and identity.role != was:
            self._role_changed(identity.role)

    def _role_changed(self, role: NodeRole) -> None:
        """Promoted or demoted: the certificate says the new role. The node
        starts again as what it now is; its tasks run on and are taken back,
        as after any restart."""
        what = role.name.lower()
        if role == NodeRole.WORKER:
            self._prepare_worker_start()
        if self.config.restart_command is None:
            self._fatal(f"this node is a {what} now: start swarmd again to serve as one")
            return
        log.warning("this node is a %s now: restarting swarmd as one", what)
        for handler in logging.getLogger().handlers:
            handler.flush()
        # Exec rather than stop: stopping would stop the node's tasks.
        os.execv(self.config.restart_command[0], self.config.restart_command)

    def _prepare_worker_start(self) -> None:
        """A demoted manager reports to the leader from now on, and its Raft
        state (no longer a member's) is set aside."""
        # The manager the agent turned to last leads, or knows who does. (This
        # node's own Raft member is out of the cluster: it may not know.)
        leader = self._current_manager or self._leader_node()[0]
        node = self.store.get_node(leader) if leader else None
        status = node.manager_status if node is not None else None
        addr = status.addr if status is not None else ""
        clusters = self.store.clusters()
        if leader and addr and clusters:
            up = network.Upstream(leader, addr, clusters[0].server_key.public)
            network.save_upstream(self.config.state_dir, up)
        raft_dir = self.config.state_dir / "raft"
        if raft_dir.exists():
            os.rename(raft_dir, raft_dir.with_name(f"raft.demoted-{int(clock.wall())}"))

    def _leader_factories(self) -> dict[str, Factory]:
        return {
            "orchestrator": lambda: OrchestratorActor.start(self.registry, self.store),
            "scheduler": lambda: SchedulerActor.start(
                self.registry, self.store, metrics=self.metrics
            ),
            "dispatcher": lambda: DispatcherActor.start(
                self.registry, self.store, self.bus, self.metrics
            ),
            "logbroker": lambda: LogBrokerActor.start(self.registry, self.store, self.bus),
        }

    def _to_control(self, req: ControlRequest) -> None:
        if req.method == "swarm.unlock":
            self._unlock(req)
            return
        if self.locked:
            answer(req, failed(FailedPrecondition(LOCKED)))
            return
        if req.method.startswith("logs."):
            # Logs are brokered by the leader, whose dispatcher every node
            # reaches: a manager that does not lead forwards the request.
            if not self.registry.tell("logbroker", req):
                self._forward_logs(req)
            return
        if not self.registry.tell("control", req):
            answer(req, failed(Unavailable("the control service is restarting: try again")))

    def _forward_logs(self, req: ControlRequest) -> None:
        leaders = [n for n in self.store.nodes() if n.manager_status and n.manager_status.leader]
        request = getattr(self.bus, "request", None)
        if self.is_leader or not leaders or leaders[0].id == self.node_id or request is None:
            if self.is_leader:
                why = "the log broker is restarting: try again"
            elif request is None:
                why = "logs are served by the leader: ask the leader's control socket"
            else:
                why = "the swarm has no leader: try again"
            answer(req, failed(Unavailable(why)))
            return
        leader = leaders[0].id
        try:
            body = LogControl(req.method, codec.packb(req.body))
        except codec.CodecError as exc:
            answer(req, failed(InvalidArgument(f"malformed logs request: {exc}")))
            return
        env = Envelope(self.node_id, leader, "logbroker", body)
        future = request(env, FORWARD_WAIT)

        def done(f: Any) -> None:
            try:
                got = f.result()
                reply = codec.unpackb(got.reply) if isinstance(got, LogControlReply) else None
                if not isinstance(reply, dict):
                    raise Unavailable("the leader sent a malformed answer")
            except SwarmError as err:
                reply = failed(Unavailable(f"the leader ({leader}) did not answer: {err}"))
            except Exception as exc:
                reply = failed(Unavailable(f"the leader ({leader}) did not answer: {exc}"))
            answer(req, reply)

        future.add_done_callback(done)

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
                self.supervisor.stop_group("redirect")
                for name in LEADER_ACTORS:
                    self.supervisor.start_group(name, [(name, factories[name])])
                self._record_leader()
            else:
                log.info("node %s is no longer the leader: stopping its subsystems", self.node_id)
                for name in reversed(LEADER_ACTORS):
                    self.supervisor.stop_group(name)
                self._redirect_agents()

    def _live_leader(self) -> str | None:
        """The node this manager's Raft member knows to lead now: "" for none
        (an election, or no quorum), None without a Raft member."""
        raft = self.raft
        if raft is None:
            return None
        lead = raft.core.leader
        if not lead:
            return ""
        for node in self.store.nodes():
            if node.role == NodeRole.MANAGER and raft_id_of(node.id) == lead:
                return node.id
        return ""

    def _live_reachability(self) -> dict[str, Reachability] | None:
        """Without a leader, the managers whose reachability as this member
        hears them differs from the store's: the leader that kept the store's
        current is gone. None while a leader keeps it."""
        raft = self.raft
        if raft is None or raft.core.leader:
            return None
        return raft.heard_reachability()

    def _redirect_agents(self) -> None:
        """Agents that reach a manager which does not lead are told who does."""
        if "redirect" not in self.supervisor.running():
            self.supervisor.start_group("redirect", [("dispatcher", self._redirect_actor)])

    def _redirect_actor(self) -> pykka.ActorRef[Any]:
        return RedirectActor.start(self.node_id, self.bus, self._leader_node)

    def _leader_node(self) -> tuple[str, str]:
        """The leading manager's node ID and address, as far as this one knows."""
        raft = self.raft
        leader = raft.core.leader if raft is not None else 0
        nodes = self.store.nodes()
        for node in nodes:
            if leader and node.role == NodeRole.MANAGER and raft_id_of(node.id) == leader:
                status = node.manager_status
                return node.id, status.addr if status is not None else ""
        if not leader:
            # Out of the managers' Raft (demoted, say): the last leader the
            # store recorded is the best guess.
            for node in nodes:
                status = node.manager_status
                if node.id != self.node_id and status is not None and status.leader:
                    return node.id, status.addr
        return "", ""

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
            # A new swarm: its root CA, the managers' server key, the join tokens.
            changes.append(Change("create", signer.bootstrap(cluster, clock.wall())))
            log.info("starting a new swarm %s", cluster.id)
        if self.store.get_node(self.node_id) is None:
            spec = NodeSpec(desired_role=NodeRole.MANAGER)
            # Not the leader yet: set_leader records that when it happens.
            status = ManagerStatus(
                raft_id=raft_id_of(self.node_id), reachability=Reachability.REACHABLE
            )
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
        """The node cannot go on: an actor kept stopping (a half-dead node must
        not run on), or the swarm removed it (the agent says so)."""
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
        if self._metrics_server is not None:
            self._metrics_server.stop()
            self._metrics_server = None
        if self._web_server is not None:
            self._web_server.stop()
            self._web_server = None
        self.supervisor.stop()
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None
        if self.control_server is not None:
            self.control_server.stop()
            self.control_server = None
        # Workers first (the agent says goodbye, the executor stops every task),
        # then the leader's actors, control, the store last.
        for group in (
            "renewer",
            "logsender",
            "worker",
            "redirect",
            *reversed(LEADER_ACTORS),
            "ca",
            "control",
            "store",
        ):
            self.supervisor.stop_group(group)
        self._leader = False
        if self.raft is not None:
            self.raft.close()
        if self._unwatch is not None:
            self._unwatch()
        if self._unwatch_cluster is not None:
            self._unwatch_cluster()
        if self.dek_keeper is not None:
            self.dek_keeper.stop()
        self.bus.detach(self.node_id)
        if isinstance(self.bus, ZmqBus):
            self.bus.stop()
        self._lock.close()
        log.info("node %s stopped", self.node_id)
