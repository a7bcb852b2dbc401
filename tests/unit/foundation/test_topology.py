"""Parsing a `swarmd up` topology file."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from pyswarmkit.api.errors import InvalidArgument, Unavailable
from pyswarmkit.api.objects import ServiceSpec
from pyswarmkit.topology import (
    ADDR_FILE,
    Launcher,
    NodeEntry,
    _Running,
    dial_addr,
    listen_addrs,
    node_argv,
    parse,
    quorum_note,
)

pytestmark = pytest.mark.unit

NODE = """
[[node]]
hostname = "node-1"
state_dir = "state/node-1"
listen_control_api = "state/node-1/swarm.sock"
executor = "sim"
heartbeat_period = 2.5
"""


def write(tmp_path: Path, text: str, name: str = "swarm.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_file_gives_its_nodes_and_services(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        NODE
        + """
[[service]]
name = "clock"
command = ["sh", "-c", "date"]
env = ["TZ=UTC"]
replicas = 2

[[service]]
name = "web"
image = "nginx"
command = "serve"
args = ["--port", "80"]
""",
    )
    topo = parse(path)
    (node,) = topo.nodes
    assert node.hostname == "node-1"
    assert node.state_dir == tmp_path.resolve() / "state/node-1"
    assert node.socket == tmp_path.resolve() / "state/node-1/swarm.sock"
    assert (node.executor, node.heartbeat_period) == ("sim", 2.5)
    clock, web = topo.services
    assert isinstance(clock, ServiceSpec)
    assert clock.annotations.name == "clock"
    assert clock.task.container.command == ("sh", "-c", "date")
    assert clock.task.container.env == ("TZ=UTC",)
    assert clock.mode.replicas == 2
    assert web.annotations.name == "web"
    assert web.task.container.image == "nginx"
    assert web.task.container.command == ("serve",)
    assert web.task.container.args == ("--port", "80")
    assert web.mode.replicas == 1


def test_node_defaults(tmp_path: Path) -> None:
    topo = parse(write(tmp_path, "[[node]]\n"))
    (node,) = topo.nodes
    assert node.hostname == "node-1"
    assert node.state_dir == tmp_path.resolve() / "state/node-1"
    assert node.socket == tmp_path.resolve() / "state/node-1/swarm.sock"
    assert (node.executor, node.heartbeat_period) == ("process", 5.0)
    assert topo.services == []


def test_the_shipped_example_parses() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "one-node.toml"
    topo = parse(example)
    assert [n.hostname for n in topo.nodes] == ["node-1"]
    assert [s.annotations.name for s in topo.services] == ["clock"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (NODE + "\n[extra]\nx = 1\n", "unknown key 'extra'"),
        (NODE.replace("executor", "exekutor"), "node 1: unknown key 'exekutor'"),
        (
            NODE + '\n[[service]]\nname = "a"\ncommand = "x"\nreplica = 2\n',
            "service 1: unknown key 'replica'",
        ),
        ('[[service]]\nname = "a"\ncommand = "x"\n', "needs at least one [[node]]"),
        ("", "needs at least one [[node]]"),
        ('node = "node-1"\n', "node must be written as [[node]] tables"),
        ("node = [1]\n", "node must be written as [[node]] tables"),
        (
            '[[node]]\n[[service]]\nname = "a"\ncommand = "x"\n'
            '[[service]]\nname = "a"\ncommand = "y"\n',
            "comes twice",
        ),
        ('[[node]]\nexecutor = "bogus"\n', "unknown executor 'bogus'"),
        ('[[node]]\n[[service]]\nname = "bad name!"\ncommand = "x"\n', "invalid service name"),
        (
            NODE + NODE.replace("node-1", "node-2"),
            "node 2: listen_control_api is for the manager",
        ),
        (
            '[[node]]\nlisten_control_api = "m.sock"\n'
            '[[node]]\nrole = "manager"\nlisten_control_api = "m.sock"\n',
            "node 1 (node-1) and node 2 (node-2) share the control socket",
        ),
        (
            '[[node]]\n[[node]]\nrole = "worker"\n'
            '[[node]]\nrole = "manager"\nlisten_control_api = "state/node-1/swarm.sock"\n',
            "node 1 (node-1) and node 3 (node-3) share the control socket",
        ),
        (
            '[[node]]\nlisten_remote_api = "127.0.0.1:4242"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "127.0.0.1:4242"\n',
            "node 1 (node-1) and node 2 (node-2) both listen on 127.0.0.1:4242: "
            "each manager needs its own listen_remote_api port",
        ),
        (
            '[[node]]\nlisten_remote_api = "127.0.0.1:4242"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "0.0.0.0:4242"\n',
            "node 1 (node-1) and node 2 (node-2) both listen on 127.0.0.1:4242 and 0.0.0.0:4242",
        ),
        (
            '[[node]]\nlisten_remote_api = "localhost:4242"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "127.0.0.1:4242"\n',
            "node 1 (node-1) and node 2 (node-2) both listen on localhost:4242 and "
            "127.0.0.1:4242 (both 127.0.0.1): each manager needs its own listen_remote_api port",
        ),
        (
            # "0" is 0.0.0.0 to the resolver: a wildcard by another name.
            '[[node]]\nlisten_remote_api = "127.0.0.1:4242"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "0:4242"\n',
            "node 1 (node-1) and node 2 (node-2) both listen on 127.0.0.1:4242 and 0:4242: ",
        ),
        (
            '[[node]]\nlisten_remote_api = "nohost.invalid:4242"\n',
            "node 1: listen_remote_api host 'nohost.invalid' does not resolve: ",
        ),
        (
            # Reported for its own node, before the pairs are compared.
            '[[node]]\nlisten_remote_api = "127.0.0.1:4242"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "nohost.invalid:4242"\n',
            "node 2: listen_remote_api host 'nohost.invalid' does not resolve: ",
        ),
        (
            "".join(f'[[node]]\nhostname = "n{i}"\nstate_dir = "s/n{i}"\n' for i in range(65)),
            "65 nodes: swarmd up runs each node as its own process, at most 64",
        ),
        ('[[node]]\nrole = "worker"\n[[node]]\n', 'no node has role = "manager"'),
        ('[[node]]\nrole = "leader"\n', "node 1: role must be manager or worker, not 'leader'"),
        ('[[node]]\nrole = ""\n', "node 1: role must be a non-empty string"),
        (
            '[[node]]\n[[node]]\nlisten_remote_api = "127.0.0.1:4243"\n',
            "node 2: listen_remote_api is for the manager",
        ),
        (
            '[[node]]\nlisten_remote_api = "nowhere"\n',
            "node 1: listen_remote_api 'nowhere' is not HOST:PORT",
        ),
        ('[[node]]\nlisten_remote_api = "127.0.0.1:0"\n', "listen_remote_api needs a real port"),
        ('[[node]]\n[[node]]\nhostname = "node-1"\n', "node 2: hostname 'node-1' is node 1's too"),
        (
            '[[node]]\nstate_dir = "s"\n[[node]]\nstate_dir = "s"\n',
            "node 2: state_dir",
        ),
        ('[[node]]\nhostname = "a b"\n', "node 1: invalid hostname 'a b'"),
        ('[[node]]\n[[service]]\ncommand = "x"\n', "service 1: name is required"),
        (
            NODE + '\n[[service]]\nname = "a"\ncommand = "x"\nreplicas = "2"\n',
            "service 1: replicas must be a whole number",
        ),
        (
            NODE + '\n[[service]]\nname = "a"\ncommand = "x"\nreplicas = 2.5\n',
            "replicas must be a whole number",
        ),
        (
            NODE + '\n[[service]]\nname = "a"\ncommand = [1, 2]\n',
            "service 1: command must be a string or a list of strings",
        ),
        (
            NODE + '\n[[service]]\nname = "a"\ncommand = "x"\nenv = {A = "1"}\n',
            "env must be a string or a list of strings",
        ),
        ("[[node]\n", "is not valid TOML"),
        ('[[node]]\nhostname = "a\n', "is not valid TOML"),
    ],
)
def test_bad_files_are_invalid_argument_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidArgument) as err:
        parse(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_invalid_argument(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(InvalidArgument, match="does not exist"):
        parse(missing)


@pytest.mark.parametrize("case", ["heartbeat-text", "directory"])
def test_other_bad_input_is_invalid_argument(tmp_path: Path, case: str) -> None:
    if case == "heartbeat-text":
        path = write(tmp_path, '[[node]]\nheartbeat_period = "fast"\n')
    else:
        path = tmp_path / "dir.toml"
        path.mkdir()
    with pytest.raises(InvalidArgument):
        parse(path)


def test_a_boolean_replica_count_is_invalid_argument(tmp_path: Path) -> None:
    path = write(tmp_path, NODE + '\n[[service]]\nname = "a"\ncommand = "x"\nreplicas = true\n')
    with pytest.raises(InvalidArgument, match="replicas must be a whole number"):
        parse(path)


def test_roles_default_to_a_first_manager_and_workers_after_it(tmp_path: Path) -> None:
    topo = parse(write(tmp_path, '[[node]]\n[[node]]\n[[node]]\nhostname = "w"\n'))
    assert [(n.hostname, n.role) for n in topo.nodes] == [
        ("node-1", "manager"),
        ("node-2", "worker"),
        ("w", "worker"),
    ]
    assert topo.manager.hostname == "node-1"
    assert [n.state_dir for n in topo.workers] == [
        tmp_path.resolve() / "state/node-2",
        tmp_path.resolve() / "state/w",
    ]
    assert topo.manager.listen_remote_api is None


def test_the_manager_may_come_later_and_name_its_port(tmp_path: Path) -> None:
    topo = parse(
        write(
            tmp_path,
            '[[node]]\nrole = "worker"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "0.0.0.0:4243"\n',
        )
    )
    assert topo.manager.hostname == "node-2"
    assert topo.manager.listen_remote_api == "0.0.0.0:4243"
    assert [n.hostname for n in topo.workers] == ["node-1"]


def test_several_managers_parse_in_file_order(tmp_path: Path) -> None:
    topo = parse(
        write(
            tmp_path,
            '[[node]]\n[[node]]\nrole = "manager"\nlisten_remote_api = "127.0.0.1:4243"\n'
            '[[node]]\n[[node]]\nrole = "manager"\nlisten_control_api = "m4.sock"\n',
        )
    )
    assert [n.hostname for n in topo.managers] == ["node-1", "node-2", "node-4"]
    assert topo.manager.hostname == "node-1"  # the first starts the swarm
    assert [n.hostname for n in topo.workers] == ["node-3"]
    assert [n.socket for n in topo.managers] == [
        tmp_path.resolve() / "state/node-1/swarm.sock",
        tmp_path.resolve() / "state/node-2/swarm.sock",
        tmp_path.resolve() / "m4.sock",
    ]
    assert [n.listen_remote_api for n in topo.managers] == [None, "127.0.0.1:4243", None]


def test_managers_on_other_hosts_or_ports_may_share_a_port_number(tmp_path: Path) -> None:
    topo = parse(
        write(
            tmp_path,
            '[[node]]\nlisten_remote_api = "127.0.0.1:4242"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "127.0.0.2:4242"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "0.0.0.0:4243"\n',
        )
    )
    assert len(topo.managers) == 3


def test_names_for_one_address_on_other_ports_are_accepted(tmp_path: Path) -> None:
    topo = parse(
        write(
            tmp_path,
            '[[node]]\nlisten_remote_api = "localhost:4242"\n'
            '[[node]]\nrole = "manager"\nlisten_remote_api = "127.0.0.1:4243"\n',
        )
    )
    assert [n.listen_remote_api for n in topo.managers] == ["localhost:4242", "127.0.0.1:4243"]


def test_the_three_manager_example_parses() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "three-managers.toml"
    topo = parse(example)
    assert [(n.hostname, n.role) for n in topo.nodes] == [
        ("manager-1", "manager"),
        ("manager-2", "manager"),
        ("manager-3", "manager"),
        ("worker-1", "worker"),
        ("worker-2", "worker"),
    ]
    assert len({n.socket for n in topo.managers}) == 3
    assert all(n.state_dir.is_relative_to(example.parent.resolve()) for n in topo.nodes)
    (sleeper,) = topo.services
    assert sleeper.mode.replicas == 6


def test_the_three_node_example_parses() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "three-nodes.toml"
    topo = parse(example)
    assert [(n.hostname, n.role) for n in topo.nodes] == [
        ("node-1", "manager"),
        ("node-2", "worker"),
        ("node-3", "worker"),
    ]
    assert all(n.state_dir.is_relative_to(example.parent.resolve()) for n in topo.nodes)
    (sleeper,) = topo.services
    assert sleeper.task.container.command[0] == "sleep"
    assert sleeper.mode.replicas == 6


def test_wildcard_listen_addresses_are_dialed_on_loopback() -> None:
    assert dial_addr("0.0.0.0:4242") == "127.0.0.1:4242"
    assert dial_addr("[::]:4242") == "[::1]:4242"
    assert dial_addr("127.0.0.2:5000") == "127.0.0.2:5000"


def test_command_lines_start_or_join_and_never_hold_a_token(tmp_path: Path) -> None:
    topo = parse(write(tmp_path, '[[node]]\n[[node]]\nexecutor = "sim"\n'))
    manager = node_argv(["swarmd"], topo.manager, "info", "127.0.0.1:4300")
    worker = node_argv(["swarmd"], topo.workers[0], "warning", "127.0.0.1:4300")
    assert manager[0] == "swarmd"
    assert manager[manager.index("--listen-remote-api") + 1] == "127.0.0.1:4300"
    assert manager[manager.index("--listen-control-api") + 1] == str(topo.manager.socket)
    assert "--join-addr" not in manager
    assert worker[worker.index("--join-addr") + 1] == "127.0.0.1:4300"
    assert worker[worker.index("--executor") + 1] == "sim"
    assert worker[worker.index("--log-level") + 1] == "warning"
    assert "--listen-remote-api" not in worker
    for argv in (manager, worker):
        # Each runs under the state dir lock up holds, and stops with up.
        assert "--lock-held-by-parent" in argv
        assert not any("token" in a.lower() or a.startswith("SWMTKN") for a in argv)


def test_a_joining_manager_listens_serves_and_joins_without_a_token(tmp_path: Path) -> None:
    topo = parse(write(tmp_path, '[[node]]\n[[node]]\nrole = "manager"\n'))
    second = topo.managers[1]
    argv = node_argv(["swarmd"], second, "info", "127.0.0.1:4301", join="127.0.0.1:4300")
    assert argv[argv.index("--listen-remote-api") + 1] == "127.0.0.1:4301"
    assert argv[argv.index("--listen-control-api") + 1] == str(second.socket)
    assert argv[argv.index("--join-addr") + 1] == "127.0.0.1:4300"
    assert argv[argv.index("--hostname") + 1] == "node-2"
    assert "--lock-held-by-parent" in argv
    assert not any("token" in a.lower() or a.startswith("SWMTKN") for a in argv)
    # The first manager starts the swarm: it joins nothing.
    first = node_argv(["swarmd"], topo.manager, "info", "127.0.0.1:4300")
    assert "--join-addr" not in first


def _members(tmp_path: Path, text: str) -> list[NodeEntry]:
    topo = parse(write(tmp_path, text))
    for m in topo.managers:
        # As a manager's state dir holds once it has started or joined a swarm.
        (m.state_dir / "raft" / "wal").mkdir(parents=True)
    return topo.managers


def test_several_managers_run_again_on_the_ports_of_their_last_run(tmp_path: Path) -> None:
    managers = _members(
        tmp_path,
        '[[node]]\n[[node]]\nrole = "manager"\n'
        '[[node]]\nrole = "manager"\nlisten_remote_api = "127.0.0.1:4299"\n',
    )
    first = listen_addrs(managers)
    assert first["node-3"] == "127.0.0.1:4299"
    assert first["node-1"] != first["node-2"]
    assert (managers[0].state_dir / ADDR_FILE).read_text().strip() == first["node-1"]
    assert not (managers[2].state_dir / ADDR_FILE).exists()  # the file names it
    assert listen_addrs(managers) == first
    # A state dir that holds no swarm yet gets a new port.
    shutil.rmtree(managers[1].state_dir / "raft")
    assert listen_addrs(managers)["node-2"] != first["node-2"]


def test_a_lone_manager_takes_a_free_port_each_run(tmp_path: Path) -> None:
    (manager,) = _members(tmp_path, "[[node]]\n")
    assert listen_addrs([manager])["node-1"].startswith("127.0.0.1:")
    assert not (manager.state_dir / ADDR_FILE).exists()


def test_a_port_of_the_last_run_taken_since_is_one_line(tmp_path: Path) -> None:
    managers = _members(tmp_path, '[[node]]\n[[node]]\nrole = "manager"\n')
    addr = listen_addrs(managers)["node-2"]
    host, port = addr.rsplit(":", 1)
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()
        with pytest.raises(Unavailable) as err:
            listen_addrs(managers)
    assert f"node node-2: {addr}, where it listened in its last run" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("managers", "note"),
    [
        (3, "3 managers: the swarm keeps working with up to 1 of them down."),
        (4, "4 managers: the swarm keeps working with up to 1 of them down, as 3 would."),
        (5, "5 managers: the swarm keeps working with up to 2 of them down."),
    ],
)
def test_the_quorum_note(managers: int, note: str) -> None:
    assert quorum_note(managers) == note


class _Proc:
    """A node process as ``_serve`` polls it."""

    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def _serving(tmp_path: Path, text: str) -> tuple[Launcher, dict[str, _Proc], io.StringIO]:
    topo = parse(write(tmp_path, text))
    out = io.StringIO()
    launcher = Launcher(topo, "info", out)
    procs = {n.hostname: _Proc() for n in topo.nodes}
    for n in topo.nodes:
        proc = cast("subprocess.Popen[bytes]", procs[n.hostname])
        launcher.running.append(_Running(n, proc, threading.Thread(target=lambda: None)))
    return launcher, procs, out


def _serve(launcher: Launcher) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def serve() -> None:
        try:
            launcher._serve()
        except BaseException as exc:  # handed to the test, which asserts on it
            raised.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, raised


def _wait_for(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


THREE_AND_ONE = '[[node]]\n[[node]]\nrole = "manager"\n[[node]]\nrole = "manager"\n[[node]]\n'


def test_the_swarm_runs_on_while_a_majority_of_managers_run(tmp_path: Path) -> None:
    launcher, procs, out = _serving(tmp_path, THREE_AND_ONE)
    thread, raised = _serve(launcher)
    procs["node-4"].returncode = -9
    _wait_for(lambda: "node node-4 exited" in out.getvalue())
    procs["node-2"].returncode = -9
    _wait_for(lambda: "node node-2 exited" in out.getvalue())
    assert thread.is_alive() and not raised
    procs["node-3"].returncode = 1
    thread.join(10)
    assert not thread.is_alive()
    lines = out.getvalue().splitlines()
    assert lines == [
        "node node-4 exited with code -9; the other nodes run on",
        "node node-2 exited with code -9; the other nodes run on (2 of 3 managers run)",
    ]
    (err,) = raised
    assert isinstance(err, Unavailable)
    assert str(err) == (
        "node node-3 exited with code 1: the swarm lost its quorum (1 of 3 managers run): "
        "stopped the other nodes"
    )


def test_a_lone_manager_that_exits_stops_the_swarm(tmp_path: Path) -> None:
    launcher, procs, out = _serving(tmp_path, "[[node]]\n[[node]]\n")
    thread, raised = _serve(launcher)
    procs["node-1"].returncode = -9
    thread.join(10)
    (err,) = raised
    assert "node node-1 exited with code -9: the swarm lost its quorum (0 of 1" in str(err)
    assert out.getvalue() == ""


def test_ctrl_c_ends_serving_without_an_error(tmp_path: Path) -> None:
    launcher, _, _ = _serving(tmp_path, THREE_AND_ONE)
    thread, raised = _serve(launcher)
    launcher._stop_asked = True
    thread.join(10)
    assert not thread.is_alive() and not raised
