"""``swarmd up FILE``: launch every node of a TOML topology, one OS process per
node, create the file's services, and run until Ctrl-C or SIGTERM.

    [[node]]
    hostname = "node-1"
    state_dir = "state/node-1"             # relative to the file
    listen_control_api = "state/node-1/swarm.sock"
    executor = "process"

    [[service]]
    name = "clock"
    command = ["sh", "-c", "while true; do date; sleep 5; done"]
    replicas = 2
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pyswarmkit.api import typecheck
from pyswarmkit.api.errors import InvalidArgument, SwarmError, Unavailable
from pyswarmkit.api.objects import Annotations, ContainerSpec, ServiceMode, ServiceSpec, TaskSpec
from pyswarmkit.control.units import check_heartbeat_period
from pyswarmkit.control.validate import validate_service_spec
from pyswarmkit.transport.control import ControlClient, check_socket_path

NODE_KEYS = {"hostname", "state_dir", "listen_control_api", "executor", "heartbeat_period"}
SERVICE_KEYS = {"name", "image", "command", "args", "env", "replicas"}
START_TIMEOUT = 30.0


@dataclass(slots=True)
class NodeEntry:
    hostname: str
    state_dir: Path
    socket: Path
    executor: str = "process"
    heartbeat_period: float = 5.0


@dataclass(slots=True)
class Topology:
    nodes: list[NodeEntry] = field(default_factory=list)
    services: list[ServiceSpec] = field(default_factory=list)


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


def parse(path: Path) -> Topology:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgument(f"topology file {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidArgument(f"topology file {path} is a directory: name a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read topology file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path} is not valid TOML: {exc}") from None
    base = path.resolve().parent
    _check_keys(str(path), data, {"node", "service"})
    topo = Topology()
    nodes = _tables(path, data, "node")
    if not nodes:
        raise InvalidArgument(f"{path}: a topology needs at least one [[node]]")
    if len(nodes) > 1:
        raise InvalidArgument(
            f"{path}: {len(nodes)} nodes given, but nodes cannot join a swarm yet: use one [[node]]"
        )
    for i, n in enumerate(nodes, 1):
        topo.nodes.append(_node(f"{path}: node {i}", n, i, base))
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
    period = check_heartbeat_period(n.get("heartbeat_period", 5.0), f"{where}: heartbeat_period")
    executor = _string(where, n, "executor", "process")
    if executor not in EXECUTORS:
        raise InvalidArgument(
            f"{where}: unknown executor {executor!r}: choose one of {', '.join(EXECUTORS)}"
        )
    state_dir = base / _string(where, n, "state_dir", f"state/{hostname}")
    sock = base / _string(where, n, "listen_control_api", str(state_dir / "swarm.sock"))
    return NodeEntry(hostname, state_dir, sock, executor, float(period))


def _service(where: str, s: dict[str, Any]) -> ServiceSpec:
    _check_keys(where, s, SERVICE_KEYS)
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
    try:
        typecheck.check(spec, "service")
        validate_service_spec(spec)
    except InvalidArgument as err:
        raise InvalidArgument(f"{where}: {err}") from None
    return spec


def _node_main(entry: NodeEntry, parent: int) -> None:
    import logging
    import os

    from pyswarmkit import node as node_module
    from pyswarmkit.cli import wait_for_signal
    from pyswarmkit.executor.process import set_parent_death_signal

    # If `swarmd up` dies, even by SIGKILL, this node stops its tasks and exits
    # rather than running on headless. The signal follows the thread that
    # started us: up's main thread, which lives as long as up does.
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:
        return  # up died before the signal was armed
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s {entry.hostname} %(levelname)s %(message)s"
    )
    try:
        node = node_module.SwarmNode(
            node_module.NodeConfig(
                state_dir=entry.state_dir,
                hostname=entry.hostname,
                control_socket=str(entry.socket),
                executor=entry.executor,
                heartbeat_period=entry.heartbeat_period,
                lock_held_by_parent=True,
            )
        )
        node.start()
    except SwarmError as err:
        print(f"swarmd: error: {entry.hostname}: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    try:
        wait_for_signal(node.stopped, parent)
    finally:
        node.stop()
    if node.failure:
        raise SystemExit(f"{entry.hostname}: {node.failure}")


def _claim(entry: NodeEntry) -> IO[str]:
    """Refuse a node whose state dir or socket is in use, before starting
    anything; hold its state dir's lock for as long as ``up`` runs."""
    from pyswarmkit.node import lock_state_dir, make_state_dir

    check_socket_path(str(entry.socket))
    make_state_dir(entry.state_dir, "state_dir")
    return lock_state_dir(entry.state_dir)


def _wait_ready(sock: Path, proc: multiprocessing.process.BaseProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise Unavailable(f"the node serving {sock} exited during start-up (see its log above)")
        client = ControlClient(str(sock), timeout=2.0)
        try:
            client.call("cluster.list")
            return
        except SwarmError:
            time.sleep(0.1)
        finally:
            client.close()
    raise Unavailable(f"the node serving {sock} did not start within {START_TIMEOUT:g} s")


def run(path: Path) -> None:
    topo = parse(path)
    locks: list[IO[str]] = []
    try:
        for entry in topo.nodes:
            locks.append(_claim(entry))
        _launch(topo)
    finally:
        for lock in locks:
            lock.close()


def _launch(topo: Topology) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = []
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for entry in topo.nodes:
            proc = ctx.Process(target=_node_main, args=(entry, os.getpid()), name=entry.hostname)
            proc.start()
            procs.append(proc)
            _wait_ready(entry.socket, proc)
        manager = topo.nodes[0].socket
        client = ControlClient(str(manager))
        try:
            for spec in topo.services:
                result = client.call("service.create", {"spec": spec})
                print(f"service {spec.annotations.name} created: {result['id']}")
        finally:
            client.close()
        print(f"swarm is up ({len(procs)} node{'s' if len(procs) != 1 else ''}). In another shell:")
        print(f"  export SWARM_SOCKET={manager}")
        print("  swarmctl service ls")
        print("Press Ctrl-C to stop.", flush=True)
        while not stop["now"] and all(p.is_alive() for p in procs):
            time.sleep(0.2)
        if not stop["now"]:
            dead = [p.name for p in procs if not p.is_alive()]
            print(f"node {', '.join(str(d) for d in dead)} exited; stopping", file=sys.stderr)
    finally:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join(5)
