"""``swarmd up FILE``: launch every node of a TOML topology, each its own
``swarmd`` process, create the file's services, and run until Ctrl-C or SIGTERM.

    [[node]]
    hostname = "node-1"
    role = "manager"                       # the first node's default
    state_dir = "state/node-1"             # relative to the file
    listen_control_api = "state/node-1/swarm.sock"
    listen_remote_api = "127.0.0.1:4242"   # default: a free port on 127.0.0.1

    [[node]]
    hostname = "node-2"
    role = "manager"                       # joins node-1 with the manager token

    [[node]]
    hostname = "node-3"                    # role "worker", the default after the first
    executor = "process"

    [[service]]
    name = "clock"
    command = ["sh", "-c", "while true; do date; sleep 5; done"]
    replicas = 2

The first manager starts the swarm; ``up`` reads the join tokens from its
control socket and starts the other managers one at a time (each a REACHABLE
member of the Raft group before the next joins), then the workers, all with
``--join-addr`` and the token in their environment. The swarm runs on while a
majority of the file's managers run. Each node's output is printed with a
``[hostname] `` prefix.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pyswarmkit.api import typecheck
from pyswarmkit.api.errors import InvalidArgument, NotFound, SwarmError, Unavailable
from pyswarmkit.api.objects import Annotations, ContainerSpec, ServiceMode, ServiceSpec, TaskSpec
from pyswarmkit.api.states import NodeRole, NodeState, Reachability
from pyswarmkit.control.units import check_heartbeat_period, check_hostname, parse_duration
from pyswarmkit.control.validate import validate_service_spec
from pyswarmkit.executor.process import stop_recorded
from pyswarmkit.network import WILDCARDS, check_can_listen, join_addr, parse_addr
from pyswarmkit.transport.control import ControlClient, check_socket_path

NODE_KEYS = {
    "hostname",
    "role",
    "state_dir",
    "listen_control_api",
    "listen_remote_api",
    "executor",
    "heartbeat_period",
}
SERVICE_KEYS = {"name", "image", "command", "args", "env", "replicas"}
ROLES = ("manager", "worker")
# Keys only a manager may have: a worker serves nothing.
MANAGER_ONLY = ("listen_control_api", "listen_remote_api")
# Bounds every wait of start-up: the first manager's socket, each other
# manager REACHABLE, every node READY.
START_TIMEOUT = 60.0
# A node stops its tasks (each within its own stop grace period, 10 s by
# default) before it exits; past this it is killed.
STOP_GRACE = 30.0


@dataclass(slots=True)
class NodeEntry:
    hostname: str
    state_dir: Path
    socket: Path
    executor: str = "process"
    heartbeat_period: float = 5.0
    role: str = "manager"
    # A manager's HOST:PORT for other nodes; None: a free 127.0.0.1 port.
    listen_remote_api: str | None = None


@dataclass(slots=True)
class Topology:
    nodes: list[NodeEntry] = field(default_factory=list)
    services: list[ServiceSpec] = field(default_factory=list)

    @property
    def managers(self) -> list[NodeEntry]:
        return [n for n in self.nodes if n.role == "manager"]

    @property
    def manager(self) -> NodeEntry:
        """The first manager in the file: it starts the swarm, the others join it."""
        return self.managers[0]

    @property
    def workers(self) -> list[NodeEntry]:
        return [n for n in self.nodes if n.role != "manager"]


# --- the file -------------------------------------------------------------------


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidArgument(f"{where}: {key} must be a string or a list of strings")


def _check_keys(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidArgument(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
        )


def load_toml(path: Path, what: str) -> dict[str, Any]:
    """The tables of a TOML file, or InvalidArgument with one line."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgument(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{what} {path} is a directory: name a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read {what} {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path} is not valid TOML: {exc}") from None
    except ValueError as exc:
        # Not a TOMLDecodeError: Python's limit on the digits of an integer.
        raise InvalidArgument(f"{path} is not valid TOML: {str(exc).split(';')[0]}") from None
    except RecursionError:
        # tomllib recurses per nested array or inline table.
        raise InvalidArgument(f"{path}: arrays or tables nested too deeply") from None


def stop_in_order(
    groups: Sequence[Sequence[tuple[str, subprocess.Popen[bytes]]]], say: Callable[[str], None]
) -> None:
    """Each group in turn: SIGTERM to all of it, then SIGKILL to those still
    running past the grace."""
    for group in groups:
        for _, proc in group:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for name, proc in group:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within {STOP_GRACE:g} s: killed")
                proc.kill()
                proc.wait(5)


def parse(path: Path) -> Topology:
    """The topology a file describes, or InvalidArgument with one line naming
    the file, the table and what is wrong."""
    data = load_toml(path, "topology file")
    base = path.resolve().parent
    _check_keys(str(path), data, {"node", "service"})
    topo = Topology()
    nodes = _tables(path, data, "node")
    if not nodes:
        raise InvalidArgument(f"{path}: a topology needs at least one [[node]]")
    for i, n in enumerate(nodes, 1):
        topo.nodes.append(_node(f"{path}: node {i}", n, i, base))
    _check_nodes(path, topo.nodes)
    names: set[str] = set()
    for i, s in enumerate(_tables(path, data, "service"), 1):
        where = f"{path}: service {i}"
        spec = _service(where, s)
        if spec.annotations.name in names:
            raise InvalidArgument(f"{where}: a service named {spec.annotations.name!r} comes twice")
        names.add(spec.annotations.name)
        topo.services.append(spec)
    return topo


def _tables(path: Path, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise InvalidArgument(f"{path}: {key} must be written as [[{key}]] tables")
    return items


def _string(where: str, table: dict[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{where}: {key} must be a non-empty string")
    return value


def _node(where: str, n: dict[str, Any], i: int, base: Path) -> NodeEntry:
    from pyswarmkit.node import EXECUTORS

    _check_keys(where, n, NODE_KEYS)
    hostname = _string(where, n, "hostname", f"node-{i}")
    try:
        check_hostname(hostname)
    except InvalidArgument:
        raise InvalidArgument(
            f"{where}: invalid hostname {hostname[:40]!r}: use printable characters without spaces"
        ) from None
    role = _string(where, n, "role", "manager" if i == 1 else "worker")
    if role not in ROLES:
        raise InvalidArgument(f"{where}: role must be manager or worker, not {role!r}")
    if role == "worker":
        for key in MANAGER_ONLY:
            if key in n:
                raise InvalidArgument(
                    f"{where}: {key} is for the manager: a worker serves no socket or port"
                )
    raw_period = n.get("heartbeat_period", 5.0)
    if isinstance(raw_period, str):
        # As swarmctl takes it: "5s", "500ms".
        raw_period = parse_duration(raw_period, f"{where}: heartbeat_period")
    period = check_heartbeat_period(raw_period, f"{where}: heartbeat_period")
    executor = _string(where, n, "executor", "process")
    if executor not in EXECUTORS:
        raise InvalidArgument(
            f"{where}: unknown executor {executor!r}: choose one of {', '.join(EXECUTORS)}"
        )
    state_dir = base / _string(where, n, "state_dir", f"state/{hostname}")
    sock = base / _string(where, n, "listen_control_api", str(state_dir / "swarm.sock"))
    remote = None
    if "listen_remote_api" in n:
        remote = _string(where, n, "listen_remote_api", "")
        try:
            _, port = parse_addr(remote, "listen_remote_api")
        except InvalidArgument:
            raise InvalidArgument(
                f"{where}: listen_remote_api {remote[:100]!r} is not HOST:PORT, e.g. 127.0.0.1:4242"
            ) from None
        if port == 0:
            raise InvalidArgument(
                f"{where}: listen_remote_api needs a real port for the workers to dial: "
                "leave it out and up picks a free one"
            )
    return NodeEntry(hostname, state_dir, sock, executor, float(period), role, remote)


# Each node is a whole swarmd process: more than this on one machine is a mistake.
MAX_NODES = 64


def _check_nodes(path: Path, nodes: list[NodeEntry]) -> None:
    managers = [i for i, n in enumerate(nodes, 1) if n.role == "manager"]
    if not managers:
        raise InvalidArgument(
            f'{path}: no node has role = "manager": one manager must start the swarm'
        )
    if len(nodes) > MAX_NODES:
        raise InvalidArgument(
            f"{path}: {len(nodes)} nodes: swarmd up runs each node as its own process, at most "
            f"{MAX_NODES} on one machine; for a large topology use swarmd bench"
        )
    seen_names: dict[str, int] = {}
    seen_dirs: dict[Path, int] = {}
    for i, n in enumerate(nodes, 1):
        if n.hostname in seen_names:
            raise InvalidArgument(
                f"{path}: node {i}: hostname {n.hostname!r} is node {seen_names[n.hostname]}'s too"
            )
        seen_names[n.hostname] = i
        if n.state_dir in seen_dirs:
            raise InvalidArgument(
                f"{path}: node {i}: state_dir {n.state_dir} is node {seen_dirs[n.state_dir]}'s "
                "too: each node needs its own"
            )
        seen_dirs[n.state_dir] = i
    _check_managers(path, [(i, n) for i, n in enumerate(nodes, 1) if n.role == "manager"])


def _check_managers(path: Path, managers: list[tuple[int, NodeEntry]]) -> None:
    """Two managers on one control socket or one port: the second to start
    would fail, after the first had started a swarm."""
    # Resolved once per manager, in file order, so a name that does not
    # resolve is reported for its own node before any pair is compared.
    takes = {
        j: _listen_ips(f"{path}: node {j}", m.listen_remote_api)
        for j, m in managers
        if m.listen_remote_api is not None
    }
    for k, (j, m) in enumerate(managers):
        for i, other in managers[:k]:
            both = f"node {i} ({other.hostname}) and node {j} ({m.hostname})"
            if m.socket == other.socket:
                raise InvalidArgument(
                    f"{path}: {both} share the control socket {m.socket}: "
                    "each manager needs its own listen_control_api"
                )
            if m.listen_remote_api is None or other.listen_remote_api is None:
                continue
            shared = _shared_port(other.listen_remote_api, takes[i], m.listen_remote_api, takes[j])
            if shared is None:
                continue
            if m.listen_remote_api == other.listen_remote_api:
                same = m.listen_remote_api
            else:
                same = f"{other.listen_remote_api} and {m.listen_remote_api}"
                if shared:
                    # Two names for one address: say which, or the refusal
                    # reads as two different addresses.
                    same += f" (both {shared})"
            raise InvalidArgument(
                f"{path}: {both} both listen on {same}: "
                "each manager needs its own listen_remote_api port"
            )


# The host part of a listen address that takes its port on every address.
_WILD_HOSTS = (*WILDCARDS, "")
# What a wildcard host resolves to ("0" is 0.0.0.0 to the resolver).
_WILD_ADDRS = ("0.0.0.0", "::")


def _listen_ips(where: str, addr: str) -> frozenset[str] | None:
    """The addresses a listener on ``addr`` takes its port on, as the resolver
    gives them (so "localhost" and "127.0.0.1" meet at 127.0.0.1); None for a
    wildcard host, which takes the port on every address. A host that does not
    resolve is refused here: the node would only fail once started."""
    host, _ = parse_addr(addr, "listen_remote_api")
    if host in _WILD_HOSTS:
        return None
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, ValueError) as exc:  # gaierror; UnicodeError for a bad IDNA label
        raise InvalidArgument(
            f"{where}: listen_remote_api host {host[:100]!r} does not resolve: {exc}"
        ) from None
    ips = frozenset(str(info[4][0]) for info in infos)
    return None if ips & set(_WILD_ADDRS) else ips


def _shared_port(
    a: str, ips_a: frozenset[str] | None, b: str, ips_b: frozenset[str] | None
) -> str | None:
    """Whether listeners on ``a`` and ``b`` (taking their port on ``ips_a`` and
    ``ips_b``, None for every address) would take the same port: None if not,
    else an address both take it on, or "" when one takes every address."""
    if parse_addr(a, "listen_remote_api")[1] != parse_addr(b, "listen_remote_api")[1]:
        return None
    if ips_a is None or ips_b is None:
        return ""
    common = ips_a & ips_b
    return min(common) if common else None


def _service(where: str, s: dict[str, Any]) -> ServiceSpec:
    _check_keys(where, s, SERVICE_KEYS)
    if "name" not in s:
        raise InvalidArgument(f'{where}: name is required, e.g. name = "web"')
    replicas = s.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise InvalidArgument(f"{where}: replicas must be a whole number")
    container = ContainerSpec(
        image=str(s.get("image", "")),
        command=_strings(where, "command", s.get("command", [])),
        args=_strings(where, "args", s.get("args", [])),
        env=_strings(where, "env", s.get("env", [])),
    )
    spec = ServiceSpec(
        annotations=Annotations(name=str(s.get("name", ""))),
        task=TaskSpec(container=container),
        mode=ServiceMode(replicas=replicas),
    )
    return checked_service(spec, where)


def checked_service(spec: ServiceSpec, where: str) -> ServiceSpec:
    """``spec`` as the control API would take it, or one line naming ``where``."""
    try:
        typecheck.check(spec, "service")
        validate_service_spec(spec)
    except InvalidArgument as err:
        raise InvalidArgument(f"{where}: {err}") from None
    return spec


def dial_addr(listen: str) -> str:
    """Where the other nodes (all on this machine) reach a manager listening
    on ``listen``: a wildcard host becomes the loopback address."""
    host, port = parse_addr(listen, "listen_remote_api")
    if host in ("0.0.0.0", "*", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return join_addr(host, port)


def node_argv(
    swarmd: list[str], entry: NodeEntry, log_level: str, remote: str, join: str | None = None
) -> list[str]:
    """The ``swarmd`` command line of one node: for a manager ``remote`` is
    the address it listens on and ``join`` the first manager's address, if it
    joins one; for a worker ``remote`` is the manager's address it joins.
    A joining node's token goes in its environment, never here (``ps`` shows
    argv)."""
    argv = [
        *swarmd,
        "-d",
        str(entry.state_dir),
        "--hostname",
        entry.hostname,
        "--executor",
        entry.executor,
        "--heartbeat-period",
        f"{entry.heartbeat_period:g}",
        "--log-level",
        log_level,
        "--lock-held-by-parent",
    ]
    if entry.role == "manager":
        argv += ["--listen-control-api", str(entry.socket), "--listen-remote-api", remote]
        return argv if join is None else [*argv, "--join-addr", join]
    return [*argv, "--join-addr", remote]


# --- running it -------------------------------------------------------------------


def swarmd_command() -> list[str]:
    """How to run ``swarmd``: the script ``up`` itself runs from, else this
    interpreter on the same entry point."""
    script = Path(sys.argv[0]) if sys.argv else Path()
    if script.name == "swarmd" and script.is_file():
        return [str(script.resolve())]
    return [sys.executable, "-c", "from pyswarmkit.cli import swarmd_main; swarmd_main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PR_SET_PDEATHSIG = 1


def die_with_parent(up_pid: int) -> Callable[[], None] | None:
    """What a child process (a node ``up`` or ``bench`` starts) runs between
    fork and exec: SIGTERM when its parent dies, even by SIGKILL (a node then
    stops its tasks), and no start at all if the parent is already gone. The
    libc function is looked up before the fork so the child makes only
    system calls."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    term = int(signal.SIGTERM)

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != up_pid:
            os._exit(1)

    return arm


def claim(entry: NodeEntry) -> IO[str]:
    """Refuse a node whose state dir or socket is in use, before starting
    anything; hold its state dir's lock for as long as ``up`` runs."""
    from pyswarmkit.node import lock_state_dir, make_state_dir

    if entry.role == "manager":
        check_socket_path(str(entry.socket))
    make_state_dir(entry.state_dir, "state_dir")
    return lock_state_dir(entry.state_dir)


def control_answers(sock: Path) -> bool:
    """Whether a manager answers on its control socket yet."""
    client = ControlClient(str(sock), timeout=2.0)
    try:
        client.call("cluster.list")
        return True
    except SwarmError:
        return False
    finally:
        client.close()


def join_tokens(sock: Path) -> tuple[str, str]:
    """The manager and worker join tokens, read from a manager's control socket."""
    client = ControlClient(str(sock))
    try:
        clusters = client.call("cluster.list")["clusters"]
    finally:
        client.close()
    if not clusters or not clusters[0].join_tokens.manager or not clusters[0].join_tokens.worker:
        raise Unavailable(f"the manager at {sock} has no join tokens")
    tokens = clusters[0].join_tokens
    return str(tokens.manager), str(tokens.worker)


def reachable_managers(sock: Path, hostname: str) -> set[str]:
    """The IDs of the nodes named ``hostname`` that the manager at ``sock``
    sees as managers REACHABLE in the Raft group."""
    return {
        n.id
        for n in listed_nodes(sock)
        if n.description.hostname == hostname
        and n.role == NodeRole.MANAGER
        and n.manager_status is not None
        and n.manager_status.reachability == Reachability.REACHABLE
    }


def was_member(entry: NodeEntry) -> bool:
    """Whether a manager's state dir holds a Raft log of a swarm it started or
    joined: run again, it comes back as that member."""
    return (entry.state_dir / "raft" / "wal").is_dir()


# In the state dir of a manager the file gives no listen_remote_api: the port
# up chose for it. The other managers know a member by the address it last
# recorded, so a swarm of several is run again on the same ports.
ADDR_FILE = "up-listen-remote-api"


def _recorded_addr(entry: NodeEntry) -> str | None:
    try:
        text = (entry.state_dir / ADDR_FILE).read_text(encoding="utf-8").strip()
        parse_addr(text, "listen_remote_api")
    except (OSError, UnicodeDecodeError, InvalidArgument):
        return None
    return text


def listen_addrs(managers: list[NodeEntry]) -> dict[str, str]:
    """Each manager's HOST:PORT: the file's, else (for a member of a swarm of
    several managers, run again) the one of its last run, else a free
    127.0.0.1 port that no other manager of the file takes."""
    several = len(managers) > 1
    again = {
        m.hostname: addr
        for m in managers
        if m.listen_remote_api is None
        and several
        and was_member(m)
        and (addr := _recorded_addr(m)) is not None
    }
    named = [m.listen_remote_api for m in managers if m.listen_remote_api is not None]
    taken = {parse_addr(a, "listen_remote_api")[1] for a in [*named, *again.values()]}
    addrs: dict[str, str] = {}
    for m in managers:
        if m.listen_remote_api is not None:
            addrs[m.hostname] = m.listen_remote_api
            continue
        if m.hostname in again:
            addr = again[m.hostname]
            try:
                check_can_listen(addr, "listen_remote_api")
            except SwarmError:
                raise Unavailable(
                    f"node {m.hostname}: {addr}, where it listened in its last run and the "
                    "other managers know it, is in use: free the port and run again"
                ) from None
            addrs[m.hostname] = addr
            continue
        port = free_port()
        # A port just released may come back from the next free_port().
        while port in taken:
            port = free_port()
        taken.add(port)
        addrs[m.hostname] = addr = f"127.0.0.1:{port}"
        if several:
            (m.state_dir / ADDR_FILE).write_text(addr + "\n", encoding="utf-8")
    return addrs


def ready_hostnames(sock: Path) -> set[str]:
    """The hostnames of the nodes the manager sees READY."""
    return {n.description.hostname for n in listed_nodes(sock) if n.status.state == NodeState.READY}


def listed_nodes(sock: Path) -> list[Any]:
    """The nodes the manager at ``sock`` lists; none while it does not answer."""
    client = ControlClient(str(sock), timeout=2.0)
    try:
        return list(client.call("node.list")["nodes"])
    except SwarmError:
        return []
    finally:
        client.close()


def run(path: Path, log_level: str = "info") -> None:
    topo = parse(path)
    locks: list[IO[str]] = []
    try:
        for entry in topo.nodes:
            locks.append(claim(entry))
        Launcher(topo, log_level).run()
    finally:
        for lock in locks:
            lock.close()


def quorum_note(managers: int) -> str:
    """What ``managers`` Raft members tolerate; an even count no more than one fewer."""
    lose = (managers - 1) // 2
    note = f"{managers} managers: the swarm keeps working with up to {lose} of them down"
    if managers % 2 == 0:
        note += f", as {managers - 1} would"
    return note + "."


class _Stopped(Exception):
    """Ctrl-C or SIGTERM came while the swarm was starting."""


@dataclass(slots=True)
class _Running:
    entry: NodeEntry
    proc: subprocess.Popen[bytes]
    reader: threading.Thread


def _apply_service(client: ControlClient, spec: ServiceSpec) -> str:
    """Create the file's service, or bring the one a previous run left (the
    swarm outlives `up` in its state dirs) to the file's spec."""
    name = spec.annotations.name
    try:
        current = client.call("service.inspect", {"ref": name})["service"]
    except NotFound:
        result = client.call("service.create", {"spec": spec})
        return f"service {name} created: {result['id']}"
    if current.spec == spec:
        return f"service {name} is as the file says: {current.id}"
    client.call(
        "service.update", {"ref": current.id, "version": current.meta.version, "spec": spec}
    )
    return f"service {name} updated to the file's spec: {current.id}"


class Lines:
    """Lines to one stream from several threads (each child's relay), whole
    lines only; a stream that is gone is ignored: the children run on."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._lock = threading.Lock()

    def say(self, line: str) -> None:
        with self._lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass

    def relay(self, name: str, stream: IO[bytes]) -> None:
        """Each line a child writes, prefixed with ``[name]``, until it closes."""
        prefix = f"[{name}] "
        with stream:
            for raw in stream:
                self.say(prefix + raw.decode("utf-8", "replace").rstrip("\r\n"))


class Launcher:
    """Starts the nodes of a topology as ``swarmd`` processes, relays their
    output, and stops them all when told to or when one of them exits."""

    def __init__(self, topo: Topology, log_level: str, out: IO[str] | None = None) -> None:
        self.topo = topo
        self.log_level = log_level
        self.out = out or sys.stdout
        self._lines = Lines(self.out)
        self.running: list[_Running] = []
        # Set from a signal handler: a plain flag, polled (an Event's lock
        # could be held by the very code the handler interrupts).
        self._stop_asked = False

    def run(self) -> None:
        def on_signal(signum: int, frame: Any) -> None:
            self._stop_asked = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            try:
                self._start()
            except _Stopped:
                return
            self._serve()
        finally:
            self._stop_all()

    # --- start-up ---

    def _start(self) -> None:
        first, *others = self.topo.managers
        listen = listen_addrs(self.topo.managers)
        join = dial_addr(listen[first.hostname])
        self._spawn(first, listen[first.hostname], None)
        # Run again on its state dirs, the swarm's first manager serves its
        # control socket only once a majority of its Raft group has elected a
        # leader: the managers that were members come back together (as
        # themselves, no token needed), the new ones join one by one after.
        back = [m for m in others if was_member(m)] if was_member(first) else []
        for entry in back:
            self._spawn(entry, listen[entry.hostname], None, join)
        socket_of_first = f"manager {first.hostname}'s control socket"
        if back:
            socket_of_first += " (it answers once a majority of the managers elect a leader)"
        self._wait(socket_of_first, lambda: control_answers(first.socket))
        manager_token, worker_token = join_tokens(first.socket)
        for entry in others:
            if entry in back:
                continue
            self._check_stop()
            # A node of that name left REACHABLE by a run before is not this one.
            before = reachable_managers(first.socket, entry.hostname)
            self._spawn(entry, listen[entry.hostname], manager_token, join)
            # One Raft membership change at a time: the next manager joins once
            # this one is a member the leader hears from.
            self._wait(f"manager {entry.hostname} REACHABLE", self._joined(first, entry, before))
        for entry in self.topo.workers:
            self._check_stop()
            self._spawn(entry, join, worker_token)
        names = {n.hostname for n in self.topo.nodes}
        self._wait(
            f"{len(names)} node{'s' if len(names) != 1 else ''} READY",
            lambda: names <= ready_hostnames(first.socket),
        )
        client = ControlClient(str(first.socket))
        try:
            for spec in self.topo.services:
                self._say(_apply_service(client, spec))
        finally:
            client.close()
        count = len(self.running)
        self._say(f"swarm is up ({count} node{'s' if count != 1 else ''}). In another shell:")
        self._say(f"  export SWARM_SOCKET={first.socket}")
        self._say("  swarmctl node ls")
        self._say("  swarmctl service ls")
        if others:
            self._say("Any manager's control socket serves swarmctl:")
            for m in self.topo.managers:
                self._say(f"  {m.hostname}: {m.socket}")
            self._say(quorum_note(len(self.topo.managers)))
        self._say("Press Ctrl-C to stop.")

    @staticmethod
    def _joined(first: NodeEntry, entry: NodeEntry, before: set[str]) -> Callable[[], bool]:
        """Whether ``first`` sees a new REACHABLE manager named as ``entry``."""
        return lambda: bool(reachable_managers(first.socket, entry.hostname) - before)

    def _check_stop(self) -> None:
        # Ctrl-C while nodes are still starting: start no more.
        if self._stop_asked:
            raise _Stopped()

    def _spawn(
        self, entry: NodeEntry, remote: str, token: str | None, join: str | None = None
    ) -> None:
        env = dict(os.environ)
        # A node given no token must not mistake one in up's environment for its own.
        env.pop("SWARM_JOIN_TOKEN", None)
        if token is not None:
            env["SWARM_JOIN_TOKEN"] = token
        proc = subprocess.Popen(
            node_argv(swarmd_command(), entry, self.log_level, remote, join),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            # Ctrl-C in a terminal reaches up alone, which stops the nodes in order.
            process_group=0,
            preexec_fn=die_with_parent(os.getpid()),
        )
        assert proc.stdout is not None
        reader = threading.Thread(
            target=self._relay,
            args=(entry.hostname, proc.stdout),
            name=f"up-relay-{entry.hostname}",
            daemon=True,
        )
        reader.start()
        self.running.append(_Running(entry, proc, reader))

    def _relay(self, name: str, stream: IO[bytes]) -> None:
        self._lines.relay(name, stream)

    def _say(self, line: str) -> None:
        self._lines.say(line)

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._stop_asked:
                raise _Stopped
            dead = self._exited()
            if dead:
                raise Unavailable(f"{self._describe_exit(dead)} while waiting for {what}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"timed out after {START_TIMEOUT:g} s waiting for {what}")
            time.sleep(0.1)

    # --- running and stopping ---

    def _serve(self) -> None:
        """Run until told to stop or the managers still running are no
        majority of the file's. A node that exits (killed, or removed from the
        swarm) is reported and the swarm runs on, as it would without that
        host: its tasks are replaced elsewhere."""
        managers = len(self.topo.managers)
        told: set[str] = set()
        while not self._stop_asked:
            dead = self._exited()
            fresh = [r for r in dead if r.entry.hostname not in told]
            left = managers - sum(1 for r in dead if r.entry.role == "manager")
            if any(r.entry.role == "manager" for r in fresh) and 2 * left <= managers:
                raise Unavailable(
                    f"{self._describe_exit(fresh)}: the swarm lost its quorum ({left} of "
                    f"{managers} managers run): stopped the other nodes"
                )
            for r in fresh:
                told.add(r.entry.hostname)
                count = f" ({left} of {managers} managers run)" if r.entry.role == "manager" else ""
                self._say(f"{self._describe_exit([r])}; the other nodes run on{count}")
                # Its host is gone as far as the swarm knows, and nothing will
                # restart it here to take its tasks back: they must not run on
                # beside their replacements.
                threading.Thread(
                    target=self._stop_tasks_of, args=(r,), name="stop-tasks", daemon=True
                ).start()
            time.sleep(0.2)

    def _stop_tasks_of(self, r: _Running) -> None:
        stopped = stop_recorded(r.entry.state_dir / "worker" / "tasks")
        if stopped:
            self._say(f"stopped the {len(stopped)} task(s) node {r.entry.hostname} left running")

    def _exited(self) -> list[_Running]:
        return [r for r in self.running if r.proc.poll() is not None]

    @staticmethod
    def _describe_exit(dead: list[_Running]) -> str:
        return ", ".join(
            f"node {r.entry.hostname} exited with code {r.proc.returncode}" for r in dead
        )

    def _stop_all(self) -> None:
        """Workers first, then the managers together (so no worker logs a lost
        manager while it stops): SIGTERM, then SIGKILL past the grace."""
        workers = [
            (f"node {r.entry.hostname}", r.proc) for r in self.running if r.entry.role != "manager"
        ]
        managers = [
            (f"node {r.entry.hostname}", r.proc) for r in self.running if r.entry.role == "manager"
        ]
        stop_in_order((workers, managers), self._say)
        for r in self.running:
            r.reader.join(2)
        # A node killed while up ran left its tasks running (a restarted node
        # would take them back; this one will not be restarted): stop them.
        for r in self.running:
            if r.proc.returncode not in (0, None):
                self._stop_tasks_of(r)
