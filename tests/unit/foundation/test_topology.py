"""Parsing a `swarmd up` topology file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import ServiceSpec
from pyswarmkit.topology import parse

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
        (NODE + NODE.replace("node-1", "node-2"), "2 nodes given"),
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
