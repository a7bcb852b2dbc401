"""The command line: ``swarmd`` runs a node, ``swarmctl`` talks to one."""

from __future__ import annotations

import base64
import dataclasses
import enum
import getpass
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from pyswarmkit import __version__, clock, display
from pyswarmkit.api import typecheck
from pyswarmkit.api.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    SwarmError,
    Unavailable,
)
from pyswarmkit.api.objects import (
    JOB_KINDS,
    Annotations,
    Cluster,
    Config,
    ConfigSpec,
    ContainerSpec,
    HealthConfig,
    Node,
    NodeSpec,
    Secret,
    SecretSpec,
    Service,
    ServiceKind,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    UpdateConfig,
    replace,
)
from pyswarmkit.api.states import NodeAvailability, NodeRole, RestartCondition
from pyswarmkit.control import eventlines, progress, units
from pyswarmkit.control import secrets as refs
from pyswarmkit.control.validate import FAILURE_ACTIONS, ORDERS
from pyswarmkit.logs import client as logclient
from pyswarmkit.logs import lines as loglines
from pyswarmkit.network import DEFAULT_REMOTE_API
from pyswarmkit.transport.control import ControlClient

LOG_LEVELS = ("debug", "info", "warning", "error")
# SwarmKit's defaults: state in the working directory, the control socket inside it.
DEFAULT_STATE_DIR = "./swarmkitstate"
DEFAULT_SOCKET = "./swarmkitstate/swarm.sock"


def _app(help_text: str, add_completion: bool = False, **kwargs: Any) -> typer.Typer:
    # Plain click help: rich's boxes cut long option names at 80 columns.
    return typer.Typer(
        add_completion=add_completion, rich_markup_mode=None, help=help_text, **kwargs
    )


def _version_option(prog: str) -> Any:
    """``--version``/``-v`` for ``prog``: print the version and exit."""

    def callback(value: bool) -> None:
        if value:
            typer.echo(f"{prog} {__version__}")
            raise typer.Exit()

    return typer.Option(
        "--version", "-v", help="Print the version and exit.", is_eager=True, callback=callback
    )


# --- swarmd -------------------------------------------------------------------

swarmd_app = _app(
    "Run a swarm node (manager and worker), or a whole topology with `swarmd up`.",
    invoke_without_command=True,
)


def _setup_logging(level: str) -> None:
    if level not in LOG_LEVELS:
        raise InvalidArgument(f"unknown log level {level!r}: choose one of {', '.join(LOG_LEVELS)}")
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# How often the main thread looks for a signal that arrived.
SIGNAL_POLL = 0.1


def wait_for_signal(until: threading.Event | None = None, parent: int | None = None) -> int:
    """Block until SIGINT or SIGTERM (returns the signal number), until
    ``until`` is set, or, given ``parent``, until that process is no longer our
    parent (it died: we were re-parented); those two return 0."""
    got: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        # Nothing that takes a lock: a second signal can arrive while the
        # first one's handler runs, and a lock held by the interrupted frame
        # would never be released (two SIGTERMs deadlocked swarmd so).
        got.append(signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not got:
        if until is not None and until.wait(SIGNAL_POLL):
            return 0
        if until is None:
            clock.sleep(SIGNAL_POLL)
        if parent is not None and os.getppid() != parent:
            return 0
    return got[0]


@swarmd_app.callback()
def swarmd(
    ctx: typer.Context,
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            "-d",
            help=f"Where the node keeps its state [default: {DEFAULT_STATE_DIR}].",
            show_default=False,
        ),
    ] = Path(DEFAULT_STATE_DIR),
    listen_control_api: Annotated[
        str | None,
        typer.Option(help="Path of the control socket [default: <state-dir>/swarm.sock]."),
    ] = None,
    hostname: Annotated[str | None, typer.Option(help="The node's name in the swarm.")] = None,
    executor: Annotated[
        str, typer.Option(help="Task executor: process, docker or sim.")
    ] = "process",
    engine_addr: Annotated[
        str | None,
        typer.Option(
            help="Docker engine (docker executor) [default: DOCKER_HOST, else the standard socket]."
        ),
    ] = None,
    heartbeat_period: Annotated[
        float, typer.Option(help="Seconds between agent heartbeats.")
    ] = 5.0,
    heartbeat_tick: Annotated[
        int, typer.Option(help="Raft: ticks between the leader's heartbeats (managers).")
    ] = 1,
    election_tick: Annotated[
        int, typer.Option(help="Raft: ticks without a leader before an election (managers).")
    ] = 10,
    force_new_cluster: Annotated[
        bool,
        typer.Option(
            help="Restart this manager as a one-manager swarm with all its state "
            "(when a majority of the managers is lost for good)."
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    cpus: Annotated[
        str | None, typer.Option(help="CPUs this node offers (default: the machine's).")
    ] = None,
    memory: Annotated[
        str | None, typer.Option(help="Memory this node offers, e.g. 4G (default: the machine's).")
    ] = None,
    generic_node_resources: Annotated[
        str, typer.Option(help="Named resources this node offers, e.g. gpu=2,fpga=1.")
    ] = "",
    engine_label: Annotated[
        list[str] | None, typer.Option(help="Engine label KEY=VALUE (repeatable).")
    ] = None,
    listen_remote_api: Annotated[
        str,
        typer.Option(help="HOST:PORT where a manager serves other nodes (CurveZMQ)."),
    ] = DEFAULT_REMOTE_API,
    advertise_remote_api: Annotated[
        str | None,
        typer.Option(help="HOST:PORT other nodes dial, if not --listen-remote-api."),
    ] = None,
    join_addr: Annotated[
        str | None, typer.Option(help="HOST:PORT of a manager of the swarm to join.")
    ] = None,
    join_token: Annotated[
        str | None,
        typer.Option(
            help="The swarm's worker or manager join token (or set SWARM_JOIN_TOKEN).",
            envvar="SWARM_JOIN_TOKEN",
            show_envvar=False,
        ),
    ] = None,
    listen_metrics: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT where Prometheus metrics are served (GET /metrics); off by default."
        ),
    ] = None,
    listen_web: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT where a read-only web page of the swarm is served; a bare PORT or "
            ":PORT means 127.0.0.1. Off by default."
        ),
    ] = None,
    unlock_key_file: Annotated[
        Path | None,
        typer.Option(
            help="A file holding the swarm's unlock key (SWMKEY-1-...): a manager under "
            "autolock starts unlocked."
        ),
    ] = None,
    cert_renewal_scale: Annotated[
        float, typer.Option(hidden=True, help="Testing only: scale certificate renewal delays.")
    ] = 1.0,
    lock_held_by_parent: Annotated[
        bool,
        typer.Option(
            hidden=True,
            help="Run under the state dir lock of the parent (swarmd up); stop when it exits.",
        ),
    ] = False,
    version: Annotated[bool, _version_option("swarmd")] = False,
) -> None:
    # Read (typer took it from SWARM_JOIN_TOKEN if set): tasks inherit this
    # process's environment and must never see the swarm's secret.
    os.environ.pop("SWARM_JOIN_TOKEN", None)
    if ctx.invoked_subcommand is not None:
        return
    from pyswarmkit.node import NodeConfig, SwarmNode, tune_gc

    parent = os.getppid() if lock_held_by_parent else None
    _setup_logging(log_level)
    units.check_heartbeat_period(heartbeat_period, "--heartbeat-period")
    units.check_raft_ticks(heartbeat_tick, election_tick)
    socket_path = listen_control_api or str(state_dir / "swarm.sock")
    config = NodeConfig(
        state_dir=state_dir,
        hostname=units.check_hostname(hostname or socket.gethostname()),
        control_socket=socket_path,
        executor=executor,
        heartbeat_period=heartbeat_period,
        nano_cpus=None if cpus is None else units.parse_cpus(cpus, "--cpus"),
        memory_bytes=None if memory is None else units.parse_memory(memory, "--memory"),
        generic_resources=units.parse_generic(generic_node_resources),
        engine_labels=dict(units.parse_label(item) for item in engine_label or ()),
        listen_remote_api=listen_remote_api,
        engine_addr=engine_addr,
        advertise_remote_api=advertise_remote_api,
        join_addr=join_addr,
        join_token=join_token,
        cert_renewal_scale=_renewal_scale(cert_renewal_scale),
        lock_held_by_parent=lock_held_by_parent,
        restart_command=[sys.executable, *sys.orig_argv[1:]],
        heartbeat_tick=heartbeat_tick,
        election_tick=election_tick,
        force_new_cluster=force_new_cluster,
        listen_metrics=None
        if listen_metrics is None
        else _hostport(listen_metrics, "--listen-metrics"),
        listen_web=None if listen_web is None else _web_address(listen_web),
        unlock_key=None if unlock_key_file is None else _read_unlock_key(unlock_key_file),
    )
    node = SwarmNode(config)
    node.start()
    tune_gc()
    if node.locked:
        logging.getLogger("swarmd").warning(
            "node %s is locked; control socket %s", node.node_id, os.path.abspath(socket_path)
        )
    elif node.is_manager:
        logging.getLogger("swarmd").info(
            "node %s is up; control socket %s", node.node_id, os.path.abspath(socket_path)
        )
    else:
        logging.getLogger("swarmd").info(
            "node %s is up, a worker of manager %s", node.node_id, node.reporting_to
        )
    try:
        wait_for_signal(node.stopped, parent)
    finally:
        node.stop()
    if node.failure:
        raise Internal(node.failure)


def _read_unlock_key(path: Path) -> str:
    from pyswarmkit.raft.crypt import UnlockKeyError, parse_unlock_key

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(
            f"--unlock-key-file: cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        parse_unlock_key(text)
    except UnlockKeyError as exc:
        raise InvalidArgument(f"--unlock-key-file {path}: {exc}") from None
    return text.strip()


def _web_address(value: str) -> str:
    from pyswarmkit.web.view import listen_address

    address = listen_address(value)
    _hostport(address, "--listen-web", "127.0.0.1:8080 or 8080", "HOST:PORT or PORT", value)
    return address


def _hostport(
    value: str,
    flag: str,
    example: str = "127.0.0.1:9323",
    what: str = "HOST:PORT",
    typed: str = "",
) -> str:
    """``value`` if it is HOST:PORT, else one line naming ``flag``."""
    from pyswarmkit.transport.zmq_bus import split_hostport

    try:
        split_hostport(value)
    except ValueError:
        shown = (typed or value)[:100]
        raise InvalidArgument(f"{flag} {shown!r} is not {what}, e.g. {example}") from None
    return value


def _renewal_scale(value: float) -> float:
    if not 1e-6 <= value <= 1:
        raise InvalidArgument("--cert-renewal-scale must be between 0.000001 and 1")
    return value


@swarmd_app.command("up")
def swarmd_up(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A TOML topology file.")],
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error, for up and every node.")
    ] = "info",
) -> None:
    """Launch every node of a topology file as its own swarmd process, create its
    services, relay the nodes' output, run until Ctrl-C."""
    from pyswarmkit import topology

    _setup_logging(log_level)
    topology.run(file, log_level)


@swarmd_app.command("bench")
def swarmd_bench(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A TOML bench file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the agents, and for each service.")
    ] = 120.0,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error, for the bench's processes.")
    ] = "warning",
) -> None:
    """Launch a manager and FILE's worker agents, run FILE's services one by one,
    and report how fast the manager placed and started their tasks."""
    from pyswarmkit.bench import command as bench

    try:
        if log_level not in LOG_LEVELS:
            raise InvalidArgument(
                f"unknown log level {log_level!r}: choose one of {', '.join(LOG_LEVELS)}"
            )
        if not 1 <= timeout <= 86_400:
            raise InvalidArgument("--timeout must be between 1 and 86400 seconds")
        spec = bench.parse(file)
    except InvalidArgument as err:
        _fail("swarmd", str(err), 2)
    _setup_logging(log_level)
    bench.run(spec, sys.stdout, as_json=as_json, timeout=timeout, log_level=log_level)


# --- swarmctl -----------------------------------------------------------------

swarmctl_app = _app("Control a swarm through a manager's socket.", add_completion=True)
service_app = _app("Manage services.")
task_app = _app("Inspect tasks.")
node_app = _app("Manage nodes.")
cluster_app = _app("Inspect and configure the cluster.")
swarmctl_app.add_typer(service_app, name="service")
swarmctl_app.add_typer(task_app, name="task")
swarmctl_app.add_typer(node_app, name="node")
swarmctl_app.add_typer(cluster_app, name="cluster")
secret_app = _app("Manage secrets: data a service's tasks get as files, never shown.")
config_app = _app("Manage configs: files a service's tasks get, shown by inspect.")
swarmctl_app.add_typer(secret_app, name="secret")
swarmctl_app.add_typer(config_app, name="config")


@dataclasses.dataclass(slots=True)
class CtlState:
    socket: str = ""
    debug: bool = False

    def client(self, timeout: float = 15.0) -> ControlClient:
        if not self.socket:
            raise InvalidArgument("no control socket: pass -s/--socket or set SWARM_SOCKET")
        if self.socket == DEFAULT_SOCKET and not os.path.exists(self.socket):
            raise Unavailable(
                f"no swarmd socket at {DEFAULT_SOCKET} (the default): "
                "pass -s/--socket or set SWARM_SOCKET"
            )
        return ControlClient(self.socket, timeout)

    def call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        client = self.client()
        try:
            return client.call(method, body)
        finally:
            client.close()


STATE = CtlState()


class Output(enum.StrEnum):
    table = "table"
    json = "json"


FormatOpt = Annotated[
    Output,
    typer.Option(
        "--format", help="table, or json: one JSON document with every field of each object."
    ),
]


def _completer(method: str, key: str, by_name: bool = True) -> Callable[..., list[str]]:
    """Shell completion of names (and IDs) from the running swarm, through
    the control socket the command line names; nothing when it does not answer."""

    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        root = ctx.find_root().params
        sock = root.get("socket_path") or os.environ.get("SWARM_SOCKET") or DEFAULT_SOCKET
        try:
            client = ControlClient(str(sock), timeout=2.0)
            try:
                items = [i for page in client.stream(method) for i in page.get(key) or ()]
            finally:
                client.close()
        except (SwarmError, OSError):
            return []
        words = {i.id for i in items}
        if by_name:
            words |= {getattr(i, "name", "") for i in items} - {""}
        return sorted(w for w in words if w.startswith(incomplete))

    return complete


complete_nodes = _completer("node.list", "nodes")
complete_tasks = _completer("task.list", "tasks", by_name=False)
complete_services = _completer("service.list", "services")


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only IDs, one per line.")]


def _json(values: list[Any]) -> None:
    _echo(display.as_json(values))


def _inspect_each(method: str, refs: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """Each object named, as ``docker inspect`` does: one that is not found
    gets its error line and the others are still shown (the exit code says
    if any failed)."""
    found: list[dict[str, Any]] = []
    failed = False
    for ref in refs:
        try:
            found.append(STATE.call(method, {"ref": ref}))
        except SwarmError as err:
            if isinstance(err, Unavailable):
                raise
            typer.echo(f"swarmctl: error: {err}", err=True)
            failed = True
    return found, failed


def _shown_then(failed: bool, text: str) -> None:
    if text:
        _echo(text)
    if failed:
        raise typer.Exit(1)


@swarmctl_app.callback()
def swarmctl(
    socket_path: Annotated[
        str,
        typer.Option("--socket", "-s", envvar="SWARM_SOCKET", help="The manager's control socket."),
    ] = DEFAULT_SOCKET,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="On an error, also print its code and the trace (for bug reports)."
        ),
    ] = False,
    version: Annotated[bool, _version_option("swarmctl")] = False,
) -> None:
    STATE.socket = socket_path
    STATE.debug = debug


def _echo(text: str) -> None:
    typer.echo(text)


def _env_list(env: list[str] | None) -> tuple[str, ...]:
    return tuple(env or ())


@dataclasses.dataclass(slots=True)
class SpecFlags:
    """Flags shared by service create and update; None leaves a field as it is."""

    constraint: list[str] | None = None
    placement_pref: list[str] | None = None
    reserve_cpu: str | None = None
    reserve_memory: str | None = None
    limit_cpu: str | None = None
    limit_memory: str | None = None
    replicas_max_per_node: int | None = None
    publish: list[str] | None = None
    restart_condition: str | None = None
    restart_delay: str | None = None
    restart_max_attempts: int | None = None
    restart_window: str | None = None
    stop_grace_period: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SpecFlags:
        """From a command's parameters, which carry these flags under the same names."""
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)})

    def apply(self, spec: ServiceSpec) -> ServiceSpec:
        task = self._restart(spec.task)
        placement = task.placement
        if self.constraint is not None:
            placement = replace(placement, constraints=tuple(self.constraint))
        if self.placement_pref is not None:
            placement = replace(placement, preferences=tuple(self.placement_pref))
        if self.replicas_max_per_node is not None:
            placement = replace(placement, max_replicas=self.replicas_max_per_node)
        res = task.resources
        resv, lim = res.reservations, res.limits
        if self.reserve_cpu is not None:
            resv = replace(resv, nano_cpus=units.parse_cpus(self.reserve_cpu))
        if self.reserve_memory is not None:
            resv = replace(resv, memory_bytes=units.parse_memory(self.reserve_memory))
        if self.limit_cpu is not None:
            lim = replace(lim, nano_cpus=units.parse_cpus(self.limit_cpu))
        if self.limit_memory is not None:
            lim = replace(lim, memory_bytes=units.parse_memory(self.limit_memory))
        ports = task.ports
        if self.publish is not None:
            ports = tuple(units.parse_port(p) for p in self.publish)
        task = replace(
            task,
            placement=placement,
            resources=replace(res, reservations=resv, limits=lim),
            ports=ports,
        )
        return replace(spec, task=task)

    def _restart(self, task: TaskSpec) -> TaskSpec:
        r = task.restart
        if self.restart_condition is not None:
            r = replace(r, condition=_restart_condition(self.restart_condition))
        if self.restart_delay is not None:
            r = replace(r, delay=units.parse_duration(self.restart_delay, "--restart-delay"))
        if self.restart_max_attempts is not None:
            r = replace(r, max_attempts=self.restart_max_attempts)
        if self.restart_window is not None:
            r = replace(r, window=units.parse_duration(self.restart_window, "--restart-window"))
        c = task.container
        if self.stop_grace_period is not None:
            grace = units.parse_duration(self.stop_grace_period, "--stop-grace-period")
            c = replace(c, stop_grace_period=grace)
        return replace(task, restart=r, container=c)


def _restart_condition(text: str) -> RestartCondition:
    try:
        return RestartCondition[text.upper().replace("-", "_")]
    except KeyError:
        raise InvalidArgument(
            f"invalid restart condition {text!r}: choose none, on-failure or any"
        ) from None


RestartConditionOpt = Annotated[
    str | None, typer.Option("--restart-condition", help="none, on-failure or any.")
]
RestartDelayOpt = Annotated[
    str | None, typer.Option("--restart-delay", help="Wait before a restart, e.g. 5s.")
]
RestartAttemptsOpt = Annotated[
    int | None, typer.Option("--restart-max-attempts", help="Restarts allowed (0: no limit).")
]
RestartWindowOpt = Annotated[
    str | None, typer.Option("--restart-window", help="Window the attempts count over.")
]
StopGraceOpt = Annotated[
    str | None, typer.Option("--stop-grace-period", help="SIGKILL this long after SIGTERM.")
]


# --- health checks (service create and update) ---------------------------------


@dataclasses.dataclass(slots=True)
class HealthFlags:
    """--health-* and --no-healthcheck, as Docker's service create and update
    take them: None keeps what the spec has."""

    health_cmd: str | None = None
    health_interval: str | None = None
    health_retries: int | None = None
    health_start_period: str | None = None
    health_timeout: str | None = None
    no_healthcheck: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> HealthFlags:
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)})

    def apply(self, spec: ServiceSpec) -> ServiceSpec:
        c = spec.task.container
        return replace(
            spec, task=replace(spec.task, container=replace(c, healthcheck=self._check(c)))
        )

    def _check(self, c: ContainerSpec) -> HealthConfig:
        tuned = [
            name
            for name in ("cmd", "interval", "retries", "start_period", "timeout")
            if getattr(self, f"health_{name}") is not None
        ]
        if self.no_healthcheck:
            if tuned:
                raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
            return HealthConfig(test=("NONE",))
        check = c.healthcheck
        if not tuned:
            return check
        if check.test[:1] == ("NONE",):
            # Tuning a disabled check turns it back on (the image's, or the command given).
            check = replace(check, test=())
        changes: dict[str, Any] = {}
        for name in ("interval", "start_period", "timeout"):
            value = getattr(self, f"health_{name}")
            if value is not None:
                flag = "--health-" + name.replace("_", "-")
                changes[name] = units.parse_duration(value, flag)
        if self.health_retries is not None:
            if self.health_retries < 0:
                raise InvalidArgument(
                    f"--health-retries must be 0 or more, not {self.health_retries}"
                )
            changes["retries"] = self.health_retries
        if self.health_cmd is not None:
            # An empty command leaves the check to the image, as in Docker.
            changes["test"] = ("CMD-SHELL", self.health_cmd) if self.health_cmd else ()
        return replace(check, **changes)


HealthCmdOpt = Annotated[
    str | None,
    typer.Option("--health-cmd", help="Command (run by sh -c) whose exit 0 means healthy."),
]
HealthIntervalOpt = Annotated[
    str | None,
    typer.Option("--health-interval", help="Time between health checks (default 30s)."),
]
HealthRetriesOpt = Annotated[
    int | None,
    typer.Option(
        "--health-retries", help="Failures in a row that make a task unhealthy (default 3)."
    ),
]
HealthStartOpt = Annotated[
    str | None,
    typer.Option(
        "--health-start-period",
        help="Time after the start in which failed checks do not count (default 0s).",
    ),
]
HealthTimeoutOpt = Annotated[
    str | None,
    typer.Option("--health-timeout", help="How long one check may run (default 30s)."),
]
NoHealthOpt = Annotated[
    bool,
    typer.Option("--no-healthcheck", help="Run no health check, not even the image's own."),
]


def _health_lines(check: HealthConfig) -> list[str]:
    """The healthcheck in service inspect, with Docker's defaults filled in."""
    if not check.test and not (
        check.interval or check.timeout or check.retries or check.start_period
    ):
        return []
    if check.test[:1] == ("NONE",):
        return [" Healthcheck", f"  {'Disabled':<16}: true"]
    from pyswarmkit.executor.health import Policy

    p = Policy.of(check)
    # CMD-SHELL's command is a shell line; CMD's an argv, shown joined.
    test = " ".join(check.test[1:]) if check.test else "(the image's own)"
    fields = [
        ("Command", test),
        ("Interval", display.duration(p.interval)),
        ("Timeout", display.duration(p.timeout)),
        ("Retries", str(p.retries)),
        ("Start Period", display.duration(p.start_period)),
    ]
    return [" Healthcheck", *(f"  {k:<16}: {v}" for k, v in fields)]


# --- rolling update and rollback settings (service create and update) ---------


@dataclasses.dataclass(slots=True)
class UpdateFlags:
    """--update-* and --rollback-* (SwarmKit's and Docker's names); None keeps
    what the service has, so a later update reuses the settings given before."""

    update_parallelism: int | None = None
    update_delay: str | None = None
    update_failure_action: str | None = None
    update_monitor: str | None = None
    update_max_failure_ratio: float | None = None
    update_order: str | None = None
    rollback_parallelism: int | None = None
    rollback_delay: str | None = None
    rollback_failure_action: str | None = None
    rollback_monitor: str | None = None
    rollback_max_failure_ratio: float | None = None
    rollback_order: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> UpdateFlags:
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)})

    def apply(self, spec: ServiceSpec) -> ServiceSpec:
        return replace(
            spec,
            update=self._config(spec.update, "update"),
            rollback=self._config(spec.rollback, "rollback"),
        )

    def _config(self, config: UpdateConfig, what: str) -> UpdateConfig:
        def flag(name: str) -> Any:
            return getattr(self, f"{what}_{name}")

        changes: dict[str, Any] = {}
        if flag("parallelism") is not None:
            if flag("parallelism") < 0:
                raise InvalidArgument(f"--{what}-parallelism must be 0 (all at once) or more")
            changes["parallelism"] = flag("parallelism")
        for name in ("delay", "monitor"):
            if flag(name) is not None:
                changes[name] = units.parse_duration(flag(name), f"--{what}-{name}")
        ratio = flag("max_failure_ratio")
        if ratio is not None:
            if not 0 <= ratio <= 1:
                raise InvalidArgument(f"--{what}-max-failure-ratio must be between 0 and 1")
            changes["max_failure_ratio"] = float(ratio)
        action = flag("failure_action")
        if action is not None:
            actions = FAILURE_ACTIONS[what]
            if action not in actions:
                raise InvalidArgument(
                    f"--{what}-failure-action must be one of {'|'.join(actions)}, not {action!r}"
                )
            changes["failure_action"] = action
        order = flag("order")
        if order is not None:
            if order not in ORDERS:
                raise InvalidArgument(
                    f"--{what}-order must be one of {'|'.join(ORDERS)}, not {order!r}"
                )
            changes["order"] = order
        return replace(config, **changes)


def _update_opts(what: str) -> dict[str, Any]:
    doing = "an update" if what == "update" else "a rollback"
    return {
        "parallelism": typer.Option(
            f"--{what}-parallelism", help=f"Tasks replaced at once in {doing} (0: all)."
        ),
        "delay": typer.Option(
            f"--{what}-delay", help=f"Wait between batches of {doing}, e.g. 10s."
        ),
        "failure_action": typer.Option(
            f"--{what}-failure-action", help="|".join(FAILURE_ACTIONS[what]) + "."
        ),
        "monitor": typer.Option(
            f"--{what}-monitor", help="How long a new task must run to count as a success."
        ),
        "max_failure_ratio": typer.Option(
            f"--{what}-max-failure-ratio", help="Failures tolerated, 0 to 1."
        ),
        "order": typer.Option(f"--{what}-order", help="stop-first or start-first."),
    }


_U = _update_opts("update")
_R = _update_opts("rollback")
UpdParOpt = Annotated[int | None, _U["parallelism"]]
UpdDelayOpt = Annotated[str | None, _U["delay"]]
UpdActionOpt = Annotated[str | None, _U["failure_action"]]
UpdMonitorOpt = Annotated[str | None, _U["monitor"]]
UpdRatioOpt = Annotated[float | None, _U["max_failure_ratio"]]
UpdOrderOpt = Annotated[str | None, _U["order"]]
RbParOpt = Annotated[int | None, _R["parallelism"]]
RbDelayOpt = Annotated[str | None, _R["delay"]]
RbActionOpt = Annotated[str | None, _R["failure_action"]]
RbMonitorOpt = Annotated[str | None, _R["monitor"]]
RbRatioOpt = Annotated[float | None, _R["max_failure_ratio"]]
RbOrderOpt = Annotated[str | None, _R["order"]]


def _update_lines(name: str, c: UpdateConfig) -> list[str]:
    """The effective settings of updates or rollbacks, for service inspect."""
    return [
        name,
        f" {'Parallelism':<17}: {c.parallelism}",
        f" {'Delay':<17}: {display.duration(c.delay)}",
        f" {'On failure':<17}: {c.failure_action}",
        f" {'Monitor':<17}: {display.duration(c.monitor)}",
        f" {'Max failure ratio':<17}: {c.max_failure_ratio:g}",
        f" {'Order':<17}: {c.order}",
    ]


def _update_status_lines(svc: Service, now: float) -> list[str]:
    """As SwarmKit's swarmctl: State, Started, Completed (once set), Message."""
    st = svc.update_status
    if st is None:
        return []
    lines = ["Update Status", f" {'State':<17}: {st.state.name}"]
    if st.started_at:
        lines.append(f" {'Started':<17}: {display.ago(st.started_at, now)}")
    if st.completed_at:
        lines.append(f" {'Completed':<17}: {display.ago(st.completed_at, now)}")
    lines.append(f" {'Message':<17}: {st.message}")
    return lines


ConstraintOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--constraint", help="Placement constraint, e.g. node.labels.zone==a (repeatable)."
    ),
]
PrefOpt = Annotated[
    list[str] | None,
    typer.Option("--placement-pref", help="Spread preference, e.g. spread=node.labels.zone."),
]
ReserveCpuOpt = Annotated[
    str | None, typer.Option("--reserve-cpu", "--cpu-reservation", help="CPUs reserved per task.")
]
ReserveMemOpt = Annotated[
    str | None,
    typer.Option("--reserve-memory", "--memory-reservation", help="Memory reserved per task."),
]
LimitCpuOpt = Annotated[str | None, typer.Option("--limit-cpu", help="CPU limit per task.")]
LimitMemOpt = Annotated[str | None, typer.Option("--limit-memory", help="Memory limit per task.")]
MaxPerNodeOpt = Annotated[
    int | None, typer.Option("--replicas-max-per-node", help="At most this many tasks per node.")
]
PublishOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--publish", help="Host-mode port PUBLISHED:TARGET, or PUBLISHED:TARGET/udp (repeatable)."
    ),
]


ModeOpt = Annotated[
    str, typer.Option("--mode", help="replicated, global, replicated-job or global-job.")
]
MaxConcurrentOpt = Annotated[
    int | None,
    typer.Option(
        "--max-concurrent",
        help="Tasks of a replicated job running at once (default: as many as --replicas).",
    ),
]
ReplicasOpt = Annotated[
    int | None,
    typer.Option(help="Number of tasks (of a replicated job: completions wanted). Default 1."),
]


_KINDS: dict[str, ServiceKind] = {
    "replicated": "replicated",
    "global": "global",
    "replicated-job": "replicated-job",
    "global-job": "global-job",
}


def _mode(text: str, replicas: int | None, max_concurrent: int | None) -> ServiceMode:
    """The mode `service create` asks for, with Docker's checks and defaults."""
    kind = _KINDS.get(text)
    if kind is None:
        raise InvalidArgument(
            f"invalid --mode {text!r}: choose replicated, global, replicated-job or global-job"
        )
    if replicas is not None and kind not in ("replicated", "replicated-job"):
        raise InvalidArgument("--replicas can only be used with replicated or replicated-job mode")
    if max_concurrent is not None and kind != "replicated-job":
        raise InvalidArgument("--max-concurrent can only be used with replicated-job mode")
    if kind == "replicated-job":
        total = 1 if replicas is None else replicas
        concurrent = total if max_concurrent is None else max_concurrent
        return ServiceMode(kind=kind, total_completions=total, max_concurrent=concurrent)
    return ServiceMode(kind=kind, replicas=1 if replicas is None else replicas)


def _edit_mode(mode: ServiceMode, replicas: int | None, max_concurrent: int | None) -> ServiceMode:
    """`service update`'s --replicas and --max-concurrent on a service's mode."""
    if replicas is not None:
        if mode.kind == "replicated":
            mode = replace(mode, replicas=replicas)
        elif mode.kind == "replicated-job":
            mode = replace(mode, total_completions=replicas)
        else:
            raise InvalidArgument(
                "--replicas can only be used with replicated or replicated-job mode"
            )
    if max_concurrent is not None:
        if mode.kind != "replicated-job":
            raise InvalidArgument("--max-concurrent can only be used with replicated-job mode")
        mode = replace(mode, max_concurrent=max_concurrent)
    return mode


DetachOpt = Annotated[
    bool,
    typer.Option(
        "--detach/--no-detach",
        "-d",
        help="Return at once rather than show the service converging.",
    ),
]
# How often a watched change is looked at, at least (seconds).
WATCH_POLL = 0.3


def _converge(ref: str, rollback: bool = False) -> None:
    """Show a service converging until it has (then its tasks stay up for the
    update monitor period: `verify`), or fail with the reason: tasks that
    keep failing, an update paused or rolled back. Ctrl-C stops the
    watching, never the change. On a terminal the lines are redrawn in
    place; otherwise a line is printed whenever a slot's state changes."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    client = STATE.client()
    console = Console(highlight=False)
    tty = console.is_terminal
    printed: dict[str, str] = {}
    since: int | None = None
    version = 0
    verify_until: float | None = None
    live = Live(console=console, auto_refresh=False, transient=False) if tty else None
    try:
        if live is not None:
            live.start()
        while True:
            started = time.monotonic()
            service: Service = client.call("service.inspect", {"ref": ref})["service"]
            if since is None:
                since, version = service.meta.version, service.spec_version
            tasks: list[Task] = []
            nodes: dict[str, str] = {}
            for page in client.stream("task.list", {"service": service.id, "all": True}):
                tasks.extend(page.get("tasks") or ())
                nodes.update(page.get("nodes") or {})
            shown = progress.view(service, tasks, nodes, since, rollback, version)
            lines = shown.render(console.width - 1)
            now = time.monotonic()
            if shown.outcome == "converged" and verify_until is None:
                verify_until = now + service.spec.update.monitor
            elif shown.outcome != "converged":
                verify_until = None
            if verify_until is not None:
                left = max(0.0, verify_until - now)
                lines.append(
                    f"verify: Waiting {left:.0f} seconds to verify that tasks are stable..."
                )
            if live is not None:
                live.update(Text("\n".join(lines)), refresh=True)
            else:
                for line in shown.lines:
                    if line.text and printed.get(line.label) != line.text:
                        printed[line.label] = line.text
                        _echo(f"{line.label}: {line.text}")
            if shown.outcome == "failed":
                raise Unavailable(f"{service.name} did not converge: {shown.reason}")
            if verify_until is not None and now >= verify_until:
                if live is not None:
                    lines[-1] = "verify: Service converged"
                    live.update(Text("\n".join(lines)), refresh=True)
                else:
                    _echo("verify: Service converged")
                return
            time.sleep(max(WATCH_POLL, 2 * (time.monotonic() - started)))
    except KeyboardInterrupt:
        typer.echo(
            f"swarmctl: stopped watching; the change goes on (swarmctl task ls --service {ref})",
            err=True,
        )
        raise typer.Exit(130) from None
    finally:
        if live is not None:
            live.stop()
        client.close()


MountOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mount",
        help="type=bind|volume,source=SRC,target=DST[,readonly] (repeatable; docker executor).",
    ),
]


SecretOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        help="A secret as a file: NAME, or source=NAME,target=FILE,uid=,gid=,mode= (repeatable).",
    ),
]
ConfigOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        help="A config as a file: NAME, or source=NAME,target=PATH,uid=,gid=,mode= (repeatable).",
    ),
]


@service_app.command("create")
def service_create(
    name: Annotated[str | None, typer.Option(help="Service name.")] = None,
    image: Annotated[str, typer.Option(help="Image (docker executor; shown for others).")] = "",
    command: Annotated[list[str] | None, typer.Option(help="Command to run (repeatable).")] = None,
    args: Annotated[list[str] | None, typer.Option(help="Arguments (repeatable).")] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    mode: ModeOpt = "replicated",
    replicas: ReplicasOpt = None,
    max_concurrent: MaxConcurrentOpt = None,
    constraint: ConstraintOpt = None,
    placement_pref: PrefOpt = None,
    reserve_cpu: ReserveCpuOpt = None,
    reserve_memory: ReserveMemOpt = None,
    limit_cpu: LimitCpuOpt = None,
    limit_memory: LimitMemOpt = None,
    replicas_max_per_node: MaxPerNodeOpt = None,
    publish: PublishOpt = None,
    restart_condition: RestartConditionOpt = None,
    restart_delay: RestartDelayOpt = None,
    restart_max_attempts: RestartAttemptsOpt = None,
    restart_window: RestartWindowOpt = None,
    stop_grace_period: StopGraceOpt = None,
    update_parallelism: UpdParOpt = None,
    update_delay: UpdDelayOpt = None,
    update_failure_action: UpdActionOpt = None,
    update_monitor: UpdMonitorOpt = None,
    update_max_failure_ratio: UpdRatioOpt = None,
    update_order: UpdOrderOpt = None,
    rollback_parallelism: RbParOpt = None,
    rollback_delay: RbDelayOpt = None,
    rollback_failure_action: RbActionOpt = None,
    rollback_monitor: RbMonitorOpt = None,
    rollback_max_failure_ratio: RbRatioOpt = None,
    rollback_order: RbOrderOpt = None,
    mount: MountOpt = None,
    workdir: Annotated[str, typer.Option("--workdir", "-w", help="Working directory.")] = "",
    user: Annotated[str, typer.Option("--user", "-u", help="User (docker executor).")] = "",
    stop_signal: Annotated[
        str, typer.Option(help="Signal that stops a task (default SIGTERM).")
    ] = "",
    health_cmd: HealthCmdOpt = None,
    health_interval: HealthIntervalOpt = None,
    health_retries: HealthRetriesOpt = None,
    health_start_period: HealthStartOpt = None,
    health_timeout: HealthTimeoutOpt = None,
    no_healthcheck: NoHealthOpt = False,
    secret: SecretOpt = None,
    config: ConfigOpt = None,
    detach: DetachOpt = False,
) -> None:
    """Create a service; prints its ID."""
    if not name:
        raise InvalidArgument("service name is required: pass --name")
    from pyswarmkit.mounts import parse_mount, parse_stop_signal

    spec = ServiceSpec(
        annotations=Annotations(name=name),
        task=TaskSpec(
            container=ContainerSpec(
                image=image,
                command=tuple(command or ()),
                args=tuple(args or ()),
                env=_env_list(env),
                dir=workdir,
                user=user,
                mounts=tuple(parse_mount(m) for m in mount or ()),
                stop_signal=parse_stop_signal(stop_signal) if stop_signal else "",
                secrets=tuple(refs.parse_secret(t) for t in secret or ()),
                configs=tuple(refs.parse_config(t) for t in config or ()),
            )
        ),
        mode=_mode(mode, replicas, max_concurrent),
    )
    params = locals()
    if spec.mode.kind in JOB_KINDS and restart_condition is None:
        # As Docker: a job's tasks are restarted only when they fail.
        restart = replace(spec.task.restart, condition=RestartCondition.ON_FAILURE)
        spec = replace(spec, task=replace(spec.task, restart=restart))
    spec = SpecFlags.from_params(params).apply(spec)
    spec = UpdateFlags.from_params(params).apply(spec)
    spec = HealthFlags.from_params(params).apply(spec)
    typecheck.check(spec, "spec")
    result = STATE.call("service.create", {"spec": spec})
    _echo(result["id"])
    if not detach:
        _converge(spec.annotations.name)


@service_app.command("ls")
def service_ls(quiet: QuietOpt = False, output: FormatOpt = Output.table) -> None:
    """List services."""
    result = STATE.call("service.list")
    if output is Output.json:
        _json(result["services"])
        return
    if quiet:
        if result["services"]:
            _echo("\n".join(s.id for s in result["services"]))
        return
    counts = result.get("counts") or {}
    _echo(display.service_table(result["services"], result["running"], counts))


def _task_rows(tasks: list[Task], nodes: dict[str, str], now: float) -> list[list[str]]:
    return [
        [
            t.id,
            t.service_name,
            str(t.slot),
            display.task_image(t),
            t.desired_state.name,
            display.last_state(t, now),
            nodes.get(t.node_id, t.node_id),
        ]
        for t in tasks
    ]


TASK_HEADERS = ["Task ID", "Service", "Slot", "Image", "Desired State", "Last State", "Node"]


ServicesArg = Annotated[
    list[str],
    typer.Argument(metavar="SERVICE...", help="Names or IDs.", autocompletion=complete_services),
]
ServiceArg = Annotated[
    str, typer.Argument(metavar="SERVICE", help="Name or ID.", autocompletion=complete_services)
]


@service_app.command("inspect")
def service_inspect(services: ServicesArg, output: FormatOpt = Output.table) -> None:
    """Show services and their tasks."""
    results, failed = _inspect_each("service.inspect", services)
    if output is Output.json:
        _shown_then(failed, display.as_json([r["service"] for r in results]))
        return
    for i, result in enumerate(results):
        if i:
            _echo("")
        _service_text(result)
    _shown_then(failed, "")


def _service_text(result: dict[str, Any]) -> None:
    svc: Service = result["service"]
    c = svc.spec.task.container
    fields = [
        ("ID", svc.id),
        ("Name", svc.name),
        ("Mode", display.mode(svc)),
        ("Replicas", display.replicas(svc, result["running"], result.get("counts"))),
    ]
    if svc.spec.mode.kind == "replicated-job":
        fields.append(("Max Concurrent", str(svc.spec.mode.max_concurrent)))
    lines = [f"{k:<18}: {v}" for k, v in fields]
    lines.extend(_update_status_lines(svc, time.time()))
    lines.append("Template")
    lines.append(" Container")
    lines.extend(_container_lines(c))
    lines.extend(_health_lines(c.healthcheck))
    lines.extend(_placement_lines(svc.spec.task))
    lines.extend(_update_lines("Update Config", svc.spec.update))
    lines.extend(_update_lines("Rollback Config", svc.spec.rollback))
    if result.get("pending"):
        lines.append("")
        lines.append(f"Pending tasks: {result['pending']}")
    errors = result.get("errors") or []
    if errors:
        now = time.time()
        failing = int(result.get("failing_slots", len(errors)))
        lines.append("")
        lines.append(f"Failing slots: {failing}")
        for e in errors:
            when = display.ago(float(e["timestamp"]), now)
            lines.append(f"  slot {e['slot']}: {e['state']} {when}: {e['error']}")
        if failing > len(errors):
            lines.append(f"  ... and {failing - len(errors)} more")
    _echo("\n".join(lines))
    _echo("")
    _print_tasks(TASK_HEADERS, {"service": svc.id}, _task_rows)


TaskRows = Callable[[list[Task], dict[str, str], float], list[list[str]]]


def _all_tasks(body: dict[str, Any]) -> list[Task]:
    client = STATE.client()
    try:
        return [t for page in client.stream("task.list", body) for t in page.get("tasks") or ()]
    finally:
        client.close()


def _print_tasks(headers: list[str], body: dict[str, Any], rows: TaskRows) -> None:
    """Print a task listing page by page, as swarmd streams it."""
    table = display.PagedTable(headers)
    nodes: dict[str, str] = {}
    printed = False
    client = STATE.client()
    try:
        for page in client.stream("task.list", body):
            nodes.update(page.get("nodes") or {})
            lines = table.page(rows(list(page.get("tasks") or ()), nodes, time.time()))
            if lines:
                _echo("\n".join(lines))
            printed = True
    finally:
        client.close()
    if not printed:
        _echo("\n".join(table.page([])))


def _container_lines(c: ContainerSpec) -> list[str]:
    fields = [
        ("Image", c.image),
        ("Command", " ".join(c.command)),
        ("Args", " ".join(c.args)),
        ("Env", ", ".join(c.env)),
        ("Dir", c.dir),
        ("User", c.user),
        ("Stop Signal", c.stop_signal),
    ]
    lines = [f"  {name:<16}: {value}" for name, value in fields if value]
    if c.mounts:
        lines.append(f"  {'Mounts':<16}:")
        for m in c.mounts:
            ro = ",readonly" if m.readonly else ""
            lines.append(f"   type={m.type},source={m.source},target={m.target}{ro}")
    for label, files in (
        ("Secrets", [(r.secret_name, r.target, r.uid, r.gid, r.mode) for r in c.secrets]),
        ("Configs", [(r.config_name, r.target, r.uid, r.gid, r.mode) for r in c.configs]),
    ):
        for i, (name, target, uid, gid, mode) in enumerate(files):
            head = label if i == 0 else ""
            lines.append(
                f"  {head:<16}: {name} as {target} (mode {mode:04o}, uid {uid}, gid {gid})"
            )
    return lines


def _placement_lines(task: TaskSpec) -> list[str]:
    lines: list[str] = []
    p = task.placement
    resv = task.resources.reservations
    lim = task.resources.limits
    if resv.nano_cpus or resv.memory_bytes or lim.nano_cpus or lim.memory_bytes:
        lines.append(" Resources")
        if resv.nano_cpus:
            lines.append(f"  {'Reserved CPUs':<16}: {resv.nano_cpus / 1e9:g}")
        if resv.memory_bytes:
            lines.append(f"  {'Reserved Memory':<16}: {display.size(resv.memory_bytes)}")
        if lim.nano_cpus:
            lines.append(f"  {'CPU Limit':<16}: {lim.nano_cpus / 1e9:g}")
        if lim.memory_bytes:
            lines.append(f"  {'Memory Limit':<16}: {display.size(lim.memory_bytes)}")
    if p.constraints or p.preferences or p.max_replicas:
        lines.append(" Placement")
        if p.constraints:
            lines.append(f"  {'Constraints':<16}: {', '.join(p.constraints)}")
        if p.preferences:
            lines.append(f"  {'Preferences':<16}: {', '.join(p.preferences)}")
        if p.max_replicas:
            lines.append(f"  {'Max per node':<16}: {p.max_replicas}")
    r = task.restart
    lines.append(" Restart Policy")
    lines.append(f"  {'Condition':<16}: {r.condition.name}")
    lines.append(f"  {'Delay':<16}: {display.duration(r.delay)}")
    if r.max_attempts:
        lines.append(f"  {'Max attempts':<16}: {r.max_attempts}")
    if r.window:
        lines.append(f"  {'Window':<16}: {display.duration(r.window)}")
    if task.ports:
        ports = ", ".join(f"{q.published_port}:{q.target_port}/{q.protocol}" for q in task.ports)
        lines.append(f" {'Ports':<17}: {ports}")
    return lines


def _edit_service(
    ref: str, edit: Callable[[ServiceSpec], ServiceSpec], rollback: bool = False
) -> None:
    result = STATE.call("service.inspect", {"ref": ref})
    svc: Service = result["service"]
    spec = edit(svc.spec)
    typecheck.check(spec, "spec")
    body = {"ref": svc.id, "version": svc.meta.version, "spec": spec}
    if rollback:
        body["rollback"] = True
    STATE.call("service.update", body)
    _echo(svc.id)


@service_app.command("update")
def service_update(
    service: ServiceArg,
    replicas: Annotated[
        int | None, typer.Option(help="Number of tasks (of a replicated job: completions).")
    ] = None,
    max_concurrent: MaxConcurrentOpt = None,
    image: Annotated[str | None, typer.Option(help="Image.")] = None,
    command: Annotated[list[str] | None, typer.Option(help="Command (repeatable).")] = None,
    args: Annotated[list[str] | None, typer.Option(help="Arguments (repeatable).")] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    constraint: ConstraintOpt = None,
    placement_pref: PrefOpt = None,
    reserve_cpu: ReserveCpuOpt = None,
    reserve_memory: ReserveMemOpt = None,
    limit_cpu: LimitCpuOpt = None,
    limit_memory: LimitMemOpt = None,
    replicas_max_per_node: MaxPerNodeOpt = None,
    publish: PublishOpt = None,
    restart_condition: RestartConditionOpt = None,
    restart_delay: RestartDelayOpt = None,
    restart_max_attempts: RestartAttemptsOpt = None,
    restart_window: RestartWindowOpt = None,
    stop_grace_period: StopGraceOpt = None,
    update_parallelism: UpdParOpt = None,
    update_delay: UpdDelayOpt = None,
    update_failure_action: UpdActionOpt = None,
    update_monitor: UpdMonitorOpt = None,
    update_max_failure_ratio: UpdRatioOpt = None,
    update_order: UpdOrderOpt = None,
    rollback_parallelism: RbParOpt = None,
    rollback_delay: RbDelayOpt = None,
    rollback_failure_action: RbActionOpt = None,
    rollback_monitor: RbMonitorOpt = None,
    rollback_max_failure_ratio: RbRatioOpt = None,
    rollback_order: RbOrderOpt = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Return to the previous spec.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace every task even if nothing changed.")
    ] = False,
    health_cmd: HealthCmdOpt = None,
    health_interval: HealthIntervalOpt = None,
    health_retries: HealthRetriesOpt = None,
    health_start_period: HealthStartOpt = None,
    health_timeout: HealthTimeoutOpt = None,
    no_healthcheck: NoHealthOpt = False,
    mount: MountOpt = None,
    mount_add: Annotated[
        list[str] | None,
        typer.Option(
            "--mount-add",
            help="Add or replace a mount, by its target (repeatable; docker executor).",
        ),
    ] = None,
    mount_rm: Annotated[
        list[str] | None,
        typer.Option("--mount-rm", help="Remove the mount at this target (repeatable)."),
    ] = None,
    workdir: Annotated[
        str | None, typer.Option("--workdir", "-w", help="Working directory.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="User (docker executor).")
    ] = None,
    stop_signal: Annotated[
        str | None, typer.Option(help="Signal that stops a task (default SIGTERM).")
    ] = None,
    secret_add: Annotated[
        list[str] | None,
        typer.Option("--secret-add", help="Add a secret, as --secret takes it (repeatable)."),
    ] = None,
    secret_rm: Annotated[
        list[str] | None,
        typer.Option("--secret-rm", help="Remove the secret of this name (repeatable)."),
    ] = None,
    config_add: Annotated[
        list[str] | None,
        typer.Option("--config-add", help="Add a config, as --config takes it (repeatable)."),
    ] = None,
    config_rm: Annotated[
        list[str] | None,
        typer.Option("--config-rm", help="Remove the config of this name (repeatable)."),
    ] = None,
    detach: DetachOpt = False,
) -> None:
    """Change a service; its tasks follow, as a rolling update."""
    params = locals()
    flags = SpecFlags.from_params(params)
    update_flags = UpdateFlags.from_params(params)
    health_flags = HealthFlags.from_params(params)
    if rollback:
        others = [
            k
            for k, v in params.items()
            if k not in ("service", "rollback", "detach", "update_flags", "flags", "health_flags")
            and k not in {f.name for f in dataclasses.fields(UpdateFlags)}
            and v not in (None, False)
        ]
        if others:
            flag = "--" + others[0].replace("_", "-")
            raise InvalidArgument(f"{flag} may not be combined with --rollback")
        _edit_service(service, update_flags.apply, rollback=True)
        if not detach:
            _converge(service, rollback=True)
        return

    def edit(spec: ServiceSpec) -> ServiceSpec:
        c = spec.task.container
        if image is not None:
            c = replace(c, image=image)
        if command is not None:
            c = replace(c, command=tuple(command))
        if args is not None:
            c = replace(c, args=tuple(args))
        if env is not None:
            c = replace(c, env=_env_list(env))
        c = _edit_container(c, mount, mount_add, mount_rm, workdir, user, stop_signal)
        c = _edit_files(c, secret_add, secret_rm, config_add, config_rm)
        spec = replace(spec, task=replace(spec.task, container=c))
        spec = replace(spec, mode=_edit_mode(spec.mode, replicas, max_concurrent))
        if force:
            task = spec.task
            spec = replace(spec, task=replace(task, force_update=task.force_update + 1))
        return health_flags.apply(update_flags.apply(flags.apply(spec)))

    _edit_service(service, edit)
    if not detach:
        _converge(service)


def _edit_container(
    c: ContainerSpec,
    mount: list[str] | None,
    mount_add: list[str] | None,
    mount_rm: list[str] | None,
    workdir: str | None,
    user: str | None,
    stop_signal: str | None,
) -> ContainerSpec:
    """`service update`'s container flags: --mount replaces every mount, then
    --mount-rm drops mounts by target and --mount-add adds or replaces by
    target (as Docker); the others replace their field ('' clears it)."""
    from pyswarmkit.mounts import parse_mount, parse_stop_signal

    mounts = list(c.mounts) if mount is None else [parse_mount(m) for m in mount]
    gone = set(mount_rm or ())
    missing = sorted(gone - {m.target for m in mounts})
    if missing:
        raise InvalidArgument(f"--mount-rm {missing[0]}: the service has no mount at that target")
    mounts = [m for m in mounts if m.target not in gone]
    for text in mount_add or ():
        new = parse_mount(text)
        mounts = [m for m in mounts if m.target != new.target] + [new]
    c = replace(c, mounts=tuple(mounts))
    if workdir is not None:
        c = replace(c, dir=workdir)
    if user is not None:
        c = replace(c, user=user)
    if stop_signal is not None:
        c = replace(c, stop_signal=parse_stop_signal(stop_signal) if stop_signal else "")
    return c


# --- logs -----------------------------------------------------------------------

FollowOpt = Annotated[bool, typer.Option("--follow", "-f", help="Follow log output.")]
TailOpt = Annotated[
    str, typer.Option(help="Number of lines to show from the end of the logs, or all.")
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        help="Show logs since a time (2026-11-29T10:00:00Z, a Unix timestamp) or for a "
        "duration back (42m, 1h30m)."
    ),
]
TimestampsOpt = Annotated[bool, typer.Option("--timestamps", "-t", help="Show timestamps.")]
NoTaskIdsOpt = Annotated[bool, typer.Option("--no-task-ids", help="Do not include task IDs.")]
NoTruncOpt = Annotated[bool, typer.Option("--no-trunc", help="Do not truncate output.")]
RawOpt = Annotated[
    bool, typer.Option("--raw", help="Do not neatly format logs: only each line's text.")
]


def _logs(
    target: dict[str, Any],
    follow: bool,
    tail: str,
    since: str | None,
    style: logclient.Style,
) -> None:
    """Print a log stream; exit 1 (after the rest) if some task's log could not be read."""
    try:
        lines_ = loglines.parse_tail(tail)
        start = None if since is None else loglines.parse_since(since, time.time())
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    body = {**target, "follow": follow, "tail": lines_, "since": start}
    # A long poll answers within a second; a stopped swarmd is noticed by then.
    client = STATE.client(timeout=10.0)

    def out(stream: int, texts: list[str]) -> None:
        f = sys.stderr if stream == loglines.STDERR else sys.stdout
        f.write("\n".join(texts) + "\n")
        f.flush()

    def error(message: str) -> None:
        print(f"swarmctl: error: {message}", file=sys.stderr, flush=True)

    try:
        failures = logclient.stream(client, body, style, out, error)
    except KeyboardInterrupt:
        # Ctrl-C ends the following, and only that.
        return
    finally:
        client.close()
    if failures:
        raise typer.Exit(1)


def _edit_files(
    c: ContainerSpec,
    secret_add: list[str] | None,
    secret_rm: list[str] | None,
    config_add: list[str] | None,
    config_rm: list[str] | None,
) -> ContainerSpec:
    """--secret-rm and --config-rm drop references by name, then --secret-add
    and --config-add add theirs (as Docker). Removing a name the service does
    not use is refused."""
    gone = set(secret_rm or ())
    missing = sorted(gone - {r.secret_name for r in c.secrets})
    if missing:
        raise InvalidArgument(f"--secret-rm {missing[0]}: the service uses no secret of that name")
    secrets = [r for r in c.secrets if r.secret_name not in gone]
    secrets.extend(refs.parse_secret(t) for t in secret_add or ())
    dropped = set(config_rm or ())
    missing = sorted(dropped - {r.config_name for r in c.configs})
    if missing:
        raise InvalidArgument(f"--config-rm {missing[0]}: the service uses no config of that name")
    configs = [r for r in c.configs if r.config_name not in dropped]
    configs.extend(refs.parse_config(t) for t in config_add or ())
    return replace(c, secrets=tuple(secrets), configs=tuple(configs))


@service_app.command("rm")
def service_rm(services: ServicesArg) -> None:
    """Remove services; their tasks are shut down, then removed."""
    failed = False
    for ref in dict.fromkeys(services):
        try:
            result = STATE.call("service.remove", {"ref": ref})
        except SwarmError as err:
            if isinstance(err, Unavailable):
                raise
            typer.echo(f"swarmctl: error: {err}", err=True)
            failed = True
            continue
        _echo(result["id"])
    if failed:
        raise typer.Exit(1)


@service_app.command("logs")
def service_logs(
    service: ServiceArg,
    follow: FollowOpt = False,
    tail: TailOpt = "all",
    since: SinceOpt = None,
    timestamps: TimestampsOpt = False,
    no_task_ids: NoTaskIdsOpt = False,
    no_trunc: NoTruncOpt = False,
    raw: RawOpt = False,
) -> None:
    """Fetch the logs of a service's tasks, from whichever nodes run them."""
    style = logclient.Style(timestamps, no_task_ids, no_trunc, raw)
    _logs({"service": service}, follow, tail, since, style)


@task_app.command("ls")
def task_ls(
    service: Annotated[str | None, typer.Option(help="Only this service's tasks.")] = None,
    node: Annotated[str | None, typer.Option(help="Only tasks on this node.")] = None,
    all_tasks: Annotated[bool, typer.Option("--all", "-a", help="Include finished tasks.")] = False,
    quiet: QuietOpt = False,
    output: FormatOpt = Output.table,
) -> None:
    """List tasks."""
    body = {"service": service or "", "node": node or "", "all": all_tasks}
    if quiet or output is Output.json:
        tasks = _all_tasks(body)
        if output is Output.json:
            _json(tasks)
        elif tasks:
            _echo("\n".join(t.id for t in tasks))
        return
    headers = ["ID", "Name", "Image", "Desired State", "Last State", "Node"]
    _print_tasks(headers, body, _task_ls_rows)


@task_app.command("logs")
def task_logs(
    task: Annotated[
        str,
        typer.Argument(
            metavar="TASK", help="ID or unique ID prefix.", autocompletion=complete_tasks
        ),
    ],
    follow: FollowOpt = False,
    tail: TailOpt = "all",
    since: SinceOpt = None,
    timestamps: TimestampsOpt = False,
    no_task_ids: NoTaskIdsOpt = False,
    no_trunc: NoTruncOpt = False,
    raw: RawOpt = False,
) -> None:
    """Fetch the log of one task, from the node that runs it."""
    style = logclient.Style(timestamps, no_task_ids, no_trunc, raw)
    _logs({"task": task}, follow, tail, since, style)


def _task_ls_rows(tasks: list[Task], nodes: dict[str, str], now: float) -> list[list[str]]:
    return [
        [
            t.id,
            display.task_name(t),
            display.task_image(t),
            t.desired_state.name,
            display.last_state(t, now),
            nodes.get(t.node_id, t.node_id),
        ]
        for t in tasks
    ]


@task_app.command("inspect")
def task_inspect(
    tasks: Annotated[
        list[str],
        typer.Argument(
            metavar="TASK...", help="IDs or unique ID prefixes.", autocompletion=complete_tasks
        ),
    ],
    output: FormatOpt = Output.table,
) -> None:
    """Show tasks."""
    results, failed = _inspect_each("task.inspect", tasks)
    if output is Output.json:
        _shown_then(failed, display.as_json([r["task"] for r in results]))
    else:
        _shown_then(failed, "\n\n".join(_task_text(r) for r in results))


def _task_text(result: dict[str, Any]) -> str:
    t: Task = result["task"]
    now = time.time()
    c = t.spec.container
    fields = [
        ("ID", t.id),
        ("Slot", str(t.slot)),
        ("Service", t.service_name),
        ("Desired State", t.desired_state.name),
        ("Last State", display.last_state(t, now)),
        ("Message", t.status.message),
        ("Error", t.status.err),
        ("Node", result["nodes"].get(t.node_id, t.node_id)),
        ("PID", str(t.status.container.pid) if t.status.container.pid else ""),
        ("Exit Code", display.exit_code(t)),
    ]
    lines = [f"{k:<18}: {v}" for k, v in fields if v]
    lines.append("Spec")
    lines.append(" Container")
    lines.extend(_container_lines(c))
    return "\n".join(lines)


NODE_HEADERS = ["ID", "Name", "Membership", "Status", "Availability", "Manager Status"]


def _node_row(n: Node) -> list[str]:
    return [
        n.id,
        n.name,
        n.spec.membership.name,
        n.status.state.name,
        n.spec.availability.name,
        display.manager_status(n),
    ]


EVENTS_POLL = 0.2


@swarmctl_app.command("events")
def events(
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            "-f",
            help="type=service, node, task, cluster, secret or config (repeatable).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Show what the manager still holds from then on: 10m, or a UTC time."),
    ] = None,
    output: Annotated[
        Output, typer.Option("--format", help="table (one line each), or json (one object each).")
    ] = Output.table,
) -> None:
    """Stream store changes as they commit, one line each, until Ctrl-C."""
    kinds = eventlines.parse_filters(filters or [])
    start = None if since is None else eventlines.parse_since(since, time.time())
    show = eventlines.json_line if output is Output.json else eventlines.line
    body: dict[str, Any] = {} if kinds is None else {"kinds": sorted(kinds)}
    # A manager that stops mid-request is noticed within this many seconds.
    client = STATE.client(timeout=5.0)
    names: dict[str, str] = {}

    def learn() -> None:
        names.update((s.id, s.name) for s in client.call("service.list")["services"])
        names.update((n.id, n.name) for n in client.call("node.list")["nodes"])
        names.update((c.id, c.name) for c in client.call("cluster.list")["clusters"])

    idle = 0
    try:
        learn()
        first = client.call("events.since", body)
        # With --since: everything the manager's event ring still holds.
        index = first["oldest"] if start is not None else first["next"]
        while True:
            try:
                page = client.call("events.since", {**body, "index": index})
            except DeadlineExceeded:
                if client.alive():
                    raise
                raise Unavailable(f"swarmd at {client.path} stopped") from None
            rows = page["events"]
            if any(r[3] in ("service", "node", "cluster") and r[4] not in names for r in rows):
                learn()
            for r in rows:
                if start is None or r[1] >= start:
                    typer.echo(show(r, names))
            index = page["next"]
            if rows:
                idle = 0
                continue
            time.sleep(EVENTS_POLL)
            idle += 1
            # A swarmd that stopped answers nothing, quickly: look now and then.
            if idle % 5 == 0 and not client.alive():
                raise Unavailable(f"swarmd at {client.path} stopped")
    except KeyboardInterrupt:
        # Ctrl-C stops the watching, and only that.
        return
    finally:
        client.close()


@node_app.command("ls")
def node_ls(quiet: QuietOpt = False, output: FormatOpt = Output.table) -> None:
    """List nodes."""
    result = STATE.call("node.list")
    if quiet and output is not Output.json:
        if result["nodes"]:
            _echo("\n".join(n.id for n in result["nodes"]))
        return
    if output is Output.json:
        _echo(display.as_json(result["nodes"]))
        return
    _echo(display.table(NODE_HEADERS, [_node_row(n) for n in result["nodes"]]))


@node_app.command("inspect")
def node_inspect(
    nodes: NodesArg,
    output: FormatOpt = Output.table,
) -> None:
    """Show nodes."""
    results, failed = _inspect_each("node.inspect", nodes)
    if output is Output.json:
        _shown_then(failed, display.as_json([r["node"] for r in results]))
    else:
        now = time.time()
        text = "\n\n".join(display.node_summary(r["node"], r["tasks"], now) for r in results)
        _shown_then(failed, text)


def _edit_node(ref: str, edit: Callable[[NodeSpec], NodeSpec]) -> None:
    node: Node = STATE.call("node.inspect", {"ref": ref})["node"]
    STATE.call(
        "node.update", {"ref": node.id, "version": node.meta.version, "spec": edit(node.spec)}
    )
    _echo(node.id)


def _remove_nodes(nodes: list[str], force: bool) -> None:
    """Each node in turn, as ``docker node rm``: one that cannot be removed
    gets its line and the others are still removed; the exit code says if any
    failed. A node named twice is removed once."""
    failed = False
    for ref in dict.fromkeys(nodes):
        try:
            result = STATE.call("node.remove", {"ref": ref, "force": force})
        except SwarmError as err:
            typer.echo(f"swarmctl: error: {err}", err=True)
            failed = True
            continue
        _echo(result["id"])
    if failed:
        raise typer.Exit(1)


NodeArg = Annotated[
    str, typer.Argument(metavar="NODE", help="Name or ID.", autocompletion=complete_nodes)
]
NodesArg = Annotated[
    list[str],
    typer.Argument(metavar="NODE...", help="Names or IDs.", autocompletion=complete_nodes),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", "-f", help="Remove the node even if it is not down.")
]


@node_app.command("promote")
def node_promote(nodes: NodesArg) -> None:
    """Make workers managers (they restart as managers and join Raft)."""
    for ref in dict.fromkeys(nodes):
        _edit_node(ref, lambda spec: replace(spec, desired_role=NodeRole.MANAGER))


@node_app.command("demote")
def node_demote(nodes: NodesArg) -> None:
    """Make managers workers (a leader hands leadership over first)."""
    for ref in dict.fromkeys(nodes):
        _edit_node(ref, lambda spec: replace(spec, desired_role=NodeRole.WORKER))


@node_app.command("rm")
def node_rm(nodes: NodesArg, force: ForceOpt = False) -> None:
    """Remove nodes from the swarm (a node must be DOWN, or use --force)."""
    _remove_nodes(nodes, force)


@node_app.command("remove", hidden=True)
def node_remove(nodes: NodesArg, force: ForceOpt = False) -> None:
    """Remove nodes from the swarm (the same as rm)."""
    _remove_nodes(nodes, force)


def _availability(text: str) -> NodeAvailability:
    try:
        return NodeAvailability[text.upper()]
    except KeyError:
        raise InvalidArgument(
            f"invalid availability {text!r}: choose active, pause or drain"
        ) from None


@node_app.command("update")
def node_update(
    node: NodeArg,
    label_add: Annotated[
        list[str] | None, typer.Option("--label-add", help="Add or change a label k=v.")
    ] = None,
    label_rm: Annotated[
        list[str] | None, typer.Option("--label-rm", help="Remove a label.")
    ] = None,
    availability: Annotated[str | None, typer.Option(help="active, pause or drain.")] = None,
) -> None:
    """Change a node's labels or availability."""
    adds = [units.parse_label(item) for item in label_add or ()]
    new_availability = None if availability is None else _availability(availability)

    def edit(spec: NodeSpec) -> NodeSpec:
        labels = dict(spec.annotations.labels)
        for key in label_rm or ():
            if key not in labels:
                raise InvalidArgument(f"node has no label {key!r} to remove")
            del labels[key]
        labels.update(adds)
        spec = replace(spec, annotations=replace(spec.annotations, labels=labels))
        if new_availability is not None:
            spec = replace(spec, availability=new_availability)
        return spec

    _edit_node(node, edit)


def _set_availability(node: str, availability: NodeAvailability) -> None:
    _edit_node(node, lambda spec: replace(spec, availability=availability))


@node_app.command("drain")
def node_drain(node: NodeArg, detach: DetachOpt = False) -> None:
    """Move every task off the node and place no new ones there."""
    _set_availability(node, NodeAvailability.DRAIN)
    if not detach:
        _drained(node)


def _drained(ref: str) -> None:
    """Watch the node's tasks go until none is left (a line whenever their
    number changes); Ctrl-C stops the watching, never the drain."""
    client = STATE.client()
    left: int | None = None
    try:
        while True:
            node: Node = client.call("node.inspect", {"ref": ref})["node"]
            name = node.name
            # Tasks not finished yet: running, or still stopping.
            tasks = [
                t
                for page in client.stream("task.list", {"node": node.id, "all": True})
                for t in page.get("tasks") or ()
                if not t.status.state.terminal
            ]
            now = len(tasks)
            if now != left:
                left = now
                _echo(f"{name}: {now} task{'s' if now != 1 else ''} still on the node")
            if now == 0:
                _echo(f"verify: {name} drained")
                return
            time.sleep(WATCH_POLL)
    except KeyboardInterrupt:
        typer.echo("swarmctl: stopped watching; the drain goes on", err=True)
        raise typer.Exit(130) from None
    finally:
        client.close()


@node_app.command("pause")
def node_pause(node: NodeArg) -> None:
    """Place no new tasks on the node; its tasks keep running."""
    _set_availability(node, NodeAvailability.PAUSE)


@node_app.command("activate")
def node_activate(node: NodeArg) -> None:
    """Let the scheduler use the node again."""
    _set_availability(node, NodeAvailability.ACTIVE)


@cluster_app.command("ls")
def cluster_ls(quiet: QuietOpt = False, output: FormatOpt = Output.table) -> None:
    """List clusters."""
    result = STATE.call("cluster.list")
    if output is Output.json:
        _json(result["clusters"])
        return
    if quiet:
        _echo("\n".join(c.id for c in result["clusters"]))
        return
    _echo(display.table(["ID", "Name"], [[c.id, c.name] for c in result["clusters"]]))


@cluster_app.command("inspect")
def cluster_inspect(
    clusters: Annotated[list[str], typer.Argument(metavar="CLUSTER...", help="Names or IDs.")],
    output: FormatOpt = Output.table,
) -> None:
    """Show the cluster's settings and join tokens."""
    results, failed = _inspect_each("cluster.inspect", clusters)
    found: list[Cluster] = [r["cluster"] for r in results]
    if output is Output.json:
        _shown_then(failed, display.as_json(list(found)))
    else:
        _shown_then(failed, "\n\n".join(_cluster_text(c) for c in found))


def _cluster_text(c: Cluster) -> str:
    lines = [
        f"ID          : {c.id}",
        f"Name        : {c.name}",
        "Orchestration settings:",
        f"  Task history entries: {c.spec.orchestration.task_history_retention_limit}",
        "Dispatcher settings:",
        f"  Dispatcher heartbeat period: {display.duration(c.spec.dispatcher.heartbeat_period)}",
        "Certificate Authority settings:",
        f"  Certificate Validity Duration: {display.duration(c.spec.ca.node_cert_expiry)}",
    ]
    if c.join_tokens.worker or c.join_tokens.manager:
        lines.append("  Join Tokens:")
        lines.append(f"    Worker: {c.join_tokens.worker}")
        lines.append(f"    Manager: {c.join_tokens.manager}")
    lines += [
        "Raft settings:",
        f"  Snapshot interval: {c.spec.raft.snapshot_interval}",
        f"  Log entries kept for slow followers: {c.spec.raft.log_entries_for_slow_followers}",
        "Encryption settings:",
        f"  Autolock managers: {str(c.spec.autolock_managers).lower()}",
    ]
    return "\n".join(lines)


@cluster_app.command("update")
def cluster_update(
    cluster: Annotated[str, typer.Argument(help="Name or ID.")],
    cert_expiry: Annotated[
        str | None,
        typer.Option(
            help="Validity of node certificates issued from now on, e.g. 2160h (at least 30m)."
        ),
    ] = None,
    heartbeat_period: Annotated[
        str | None, typer.Option(help="How often agents beat, e.g. 5s.")
    ] = None,
    task_history_limit: Annotated[
        int | None, typer.Option(help="Finished tasks kept per slot.")
    ] = None,
    rotate_join_token: Annotated[
        list[str] | None,
        typer.Option(help="worker or manager: replace that join token (repeatable)."),
    ] = None,
    snapshot_interval: Annotated[
        int | None, typer.Option(help="Raft log entries between snapshots of the store.")
    ] = None,
    autolock: Annotated[
        str | None,
        typer.Option(
            metavar="BOOL",
            help="true: managers keep their Raft key locked under an unlock key (printed), "
            "so a restarted manager needs swarmctl swarm unlock; false: turn it off.",
        ),
    ] = None,
) -> None:
    """Change the cluster's settings or rotate a join token."""
    body: dict[str, Any] = {"ref": cluster}
    if autolock is not None:
        body["autolock"] = _autolock_flag(autolock)
    if cert_expiry is not None:
        body["cert_expiry"] = units.parse_duration(cert_expiry, "--cert-expiry")
    if heartbeat_period is not None:
        body["heartbeat_period"] = units.parse_duration(heartbeat_period, "--heartbeat-period")
    if task_history_limit is not None:
        body["task_history"] = task_history_limit
    if snapshot_interval is not None:
        body["snapshot_interval"] = snapshot_interval
    for which in rotate_join_token or ():
        if which not in ("worker", "manager"):
            raise InvalidArgument(
                f"invalid --rotate-join-token {which!r}: choose worker or manager"
            )
    body["rotate"] = list(rotate_join_token or ())
    if len(body) == 2 and not body["rotate"]:
        raise InvalidArgument(
            "nothing to change: give --cert-expiry, --heartbeat-period, "
            "--task-history-limit, --snapshot-interval, --autolock or --rotate-join-token"
        )
    result = STATE.call("cluster.update", body)
    if autolock is None:
        _echo(cluster)
        return
    _echo("Swarm updated.")
    if result.get("unlock_key"):
        _echo(_unlock_command(result["unlock_key"]))


# --- secrets and configs --------------------------------------------------------

complete_secrets = _completer("secret.list", "secrets")
complete_configs = _completer("config.list", "configs")
LabelOpt = Annotated[
    list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE label (repeatable).")
]


def _read_data(which: refs.Which, file: str) -> bytes:
    """The data of FILE, or of stdin for '-', read no further than the limit."""
    limit = refs.MAX_SIZE[which]
    try:
        if file == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(file, "rb") as f:
                data = f.read(limit + 1)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {file}: {exc.strerror or exc}") from None
    # The manager checks again; checked here, a file too large is not sent.
    refs.validate_data(which, data, read_to=limit + 1)
    return data


def _labels(items: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {item!r}: use KEY=VALUE")
        labels[key] = value
    return labels


def _create_file(which: refs.Which, name: str, file: str, label: list[str] | None) -> None:
    refs.validate_name(name)
    annotations = Annotations(name=name, labels=_labels(label))
    data = _read_data(which, file)
    spec: SecretSpec | ConfigSpec = (
        SecretSpec(annotations=annotations, data=data)
        if which == "secret"
        else ConfigSpec(annotations=annotations, data=data)
    )
    _echo(STATE.call(f"{which}.create", {"spec": spec})["id"])


def _list_files(which: refs.Which, quiet: bool, output: Output) -> None:
    found: list[Secret | Config] = STATE.call(f"{which}.list")[f"{which}s"]
    if output is Output.json:
        # A list carries no data: say nothing of it rather than show it empty.
        _echo(json.dumps([_secret_json(o) for o in found], indent=2))
        return
    if quiet:
        if found:
            _echo("\n".join(o.id for o in found))
        return
    now = time.time()
    rows = [
        [o.id, o.name, display.ago(o.meta.created_at, now), display.ago(o.meta.updated_at, now)]
        for o in found
    ]
    _echo(display.table(["ID", "NAME", "CREATED", "UPDATED"], rows))


def _file_text(o: Secret | Config, now: float) -> str:
    lines = [f"ID:              {o.id}", f"Name:            {o.name}"]
    if o.spec.annotations.labels:
        lines.append("Labels:")
        lines.extend(f" - {k}={v}" for k, v in sorted(o.spec.annotations.labels.items()))
    for label, at in (("Created at", o.meta.created_at), ("Updated at", o.meta.updated_at)):
        lines.append(f"{label + ':':<17}{display.timestamp(at)} ({display.ago(at, now)})")
    if isinstance(o, Config):
        lines.append("Data:")
        lines.append(o.spec.data.decode("utf-8", "replace").rstrip("\n"))
    return "\n".join(lines)


def _config_json(c: Config) -> Any:
    # As Docker's API gives a config's data: base64.
    value = display.plain(c)
    value["spec"]["data"] = base64.b64encode(c.spec.data).decode("ascii")
    return value


def _remove_files(which: refs.Which, names: list[str]) -> None:
    failed = False
    for ref in dict.fromkeys(names):
        try:
            STATE.call(f"{which}.remove", {"ref": ref})
        except SwarmError as err:
            if isinstance(err, Unavailable):
                raise
            typer.echo(f"swarmctl: error: {err}", err=True)
            failed = True
            continue
        _echo(ref)
    if failed:
        raise typer.Exit(1)


FileArg = Annotated[str, typer.Argument(metavar="FILE|-", help="A file, or - for stdin.")]
SecretsArg = Annotated[
    list[str],
    typer.Argument(metavar="SECRET...", help="Names or IDs.", autocompletion=complete_secrets),
]
ConfigsArg = Annotated[
    list[str],
    typer.Argument(metavar="CONFIG...", help="Names or IDs.", autocompletion=complete_configs),
]


@secret_app.command("create")
def secret_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The secret's name.")],
    file: FileArg,
    label: LabelOpt = None,
) -> None:
    """Create a secret from a file or stdin (less than 500 KiB); prints its ID."""
    _create_file("secret", name, file, label)


@secret_app.command("ls")
def secret_ls(quiet: QuietOpt = False, output: FormatOpt = Output.table) -> None:
    """List secrets."""
    _list_files("secret", quiet, output)


@secret_app.command("inspect")
def secret_inspect(secrets: SecretsArg, output: FormatOpt = Output.table) -> None:
    """Show secrets (never their data)."""
    results, failed = _inspect_each("secret.inspect", secrets)
    found: list[Secret] = [r["secret"] for r in results]
    if output is Output.json:
        _shown_then(failed, json.dumps([_secret_json(s) for s in found], indent=2))
    else:
        now = time.time()
        _shown_then(failed, "\n\n".join(_file_text(s, now) for s in found))


def _secret_json(s: Secret | Config) -> Any:
    # As Docker's API gives a secret: no data field at all (an empty one
    # would read as an empty secret).
    value = display.plain(s)
    value["spec"].pop("data", None)
    return value


@secret_app.command("rm")
def secret_rm(secrets: SecretsArg) -> None:
    """Remove secrets no service uses."""
    _remove_files("secret", secrets)


@config_app.command("create")
def config_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The config's name.")],
    file: FileArg,
    label: LabelOpt = None,
) -> None:
    """Create a config from a file or stdin (less than 1000 KiB); prints its ID."""
    _create_file("config", name, file, label)


@config_app.command("ls")
def config_ls(quiet: QuietOpt = False, output: FormatOpt = Output.table) -> None:
    """List configs."""
    _list_files("config", quiet, output)


@config_app.command("inspect")
def config_inspect(configs: ConfigsArg, output: FormatOpt = Output.table) -> None:
    """Show configs and their data."""
    results, failed = _inspect_each("config.inspect", configs)
    found: list[Config] = [r["config"] for r in results]
    if output is Output.json:
        _shown_then(failed, json.dumps([_config_json(c) for c in found], indent=2))
    else:
        now = time.time()
        _shown_then(failed, "\n\n".join(_file_text(c, now) for c in found))


@config_app.command("rm")
def config_rm(configs: ConfigsArg) -> None:
    """Remove configs no service uses."""
    _remove_files("config", configs)


# --- swarm: autolock ------------------------------------------------------------

swarm_app = _app("Unlock a locked manager; show or rotate the unlock key.")
swarmctl_app.add_typer(swarm_app, name="swarm")


def _autolock_flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid --autolock {text!r}: choose true or false")
    return value in ("true", "1")


def _unlock_command(key: str) -> str:
    return (
        "To unlock a swarm manager after it restarts, run the `swarmctl swarm unlock`\n"
        f"command and provide the following key:\n\n    {key}\n\n"
        "Please remember to store this key in a password manager, since without it you\n"
        "will not be able to restart the manager."
    )


@swarm_app.command("unlock")
def swarm_unlock() -> None:
    """Unlock a manager restarted under autolock.

    Reads the unlock key: typed without echo on a terminal, else from stdin."""
    from pyswarmkit.raft.crypt import UnlockKeyError, parse_unlock_key

    # As docker swarm unlock: a swarm that is not locked is said so before any
    # key is asked for (a manager still starting is left to the unlock call).
    try:
        STATE.call("cluster.list")
    except SwarmError:
        pass
    else:
        raise FailedPrecondition("swarm is not locked")
    if sys.stdin.isatty():
        text = getpass.getpass("Please enter unlock key: ")
    else:
        text = sys.stdin.readline()
    if not text.strip():
        raise InvalidArgument("no unlock key given: type it, or pipe it on stdin")
    try:
        parse_unlock_key(text)
    except UnlockKeyError as exc:
        raise InvalidArgument(str(exc)) from None
    # The manager answers once it has loaded its state and runs: allow for an election.
    client = STATE.client(timeout=90.0)
    try:
        client.call("swarm.unlock", {"unlock_key": text.strip()})
    finally:
        client.close()


@swarm_app.command("unlock-key")
def swarm_unlock_key(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Replace the key; the old one stops working.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key.")] = False,
) -> None:
    """Show the managers' unlock key (autolock on), or rotate it."""
    key = STATE.call("swarm.unlock_key", {"rotate": rotate})["unlock_key"]
    if quiet:
        _echo(key)
        return
    if rotate:
        _echo("Successfully rotated manager unlock key.\n")
    _echo(_unlock_command(key))


# `swarmctl stack` lives in its own module, which registers itself on swarmctl_app.
import pyswarmkit.stack.cli  # noqa: E402, F401

# --- entry points -------------------------------------------------------------


def _fail(prog: str, message: str, code: int) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


# Value names in --help, as click spells them; typer's own are Python types (<str>).
_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH"}


def command(app: typer.Typer) -> Any:
    """The click command of an app (typer's click, vendored or not), with plain
    value names in its help."""
    root = typer.main.get_command(app)

    def tidy(cmd: Any) -> None:
        for param in cmd.params:
            if param.param_type_name == "argument":
                # The name says it all (FILE, SERVICE); no type beside it.
                param.display_type_rich = lambda ctx: None
                if param.metavar is None and param.name:
                    param.metavar = param.name.upper()
            elif param.metavar is None and not getattr(param, "is_flag", False):
                bare = getattr(param, "bare_type", None)
                name = bare() if callable(bare) else ""
                name = name.removeprefix("list[").removesuffix("]")
                param.metavar = _METAVARS.get(name, "VALUE")
        for sub in getattr(cmd, "commands", {}).values():
            tidy(sub)

    tidy(root)
    return root


def _run(app: typer.Typer, prog: str) -> NoReturn:
    command_ = command(app)
    try:
        code = command_.main(args=sys.argv[1:], prog_name=prog, standalone_mode=False)
    except SwarmError as err:
        if STATE.debug:
            traceback.print_exc()
            _fail(prog, f"{err} (code: {err.code})", 1)
        _fail(prog, str(err), 1)
    except (KeyboardInterrupt, typer.Abort):
        _fail(prog, "interrupted", 130)
    except Exception as exc:
        # Usage errors from the argument parser: one line, like every other error.
        fmt, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
        if callable(fmt) and isinstance(code, int):
            ctx = getattr(exc, "ctx", None)
            path = getattr(ctx, "command_path", "") or prog
            _fail(prog, f"{fmt()} (see {path} --help)", code)
        # Anything else is our bug; still one line, and the details in debug
        # logs (a daemon's log keeps them always: it may not happen twice).
        level = logging.ERROR if prog == "swarmd" else logging.DEBUG
        logging.getLogger(prog).log(
            level, "unexpected error: a bug, please report it", exc_info=True
        )
        if STATE.debug:
            traceback.print_exc()
        _fail(prog, f"internal error: {type(exc).__name__}: {exc}", 1)
    sys.exit(code if isinstance(code, int) else 0)


def swarmd_main() -> NoReturn:
    _run(swarmd_app, "swarmd")


def swarmctl_main() -> NoReturn:
    _run(swarmctl_app, "swarmctl")
