"""What the Docker executor asks of the engine, and the flags that feed it:
pure, no engine needed."""

from __future__ import annotations

import msgspec
import pytest

from pyswarmkit.api import codec
from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import (
    ContainerSpec,
    Mount,
    PortConfig,
    ResourceRequirements,
    Resources,
    Task,
    TaskSpec,
)
from pyswarmkit.executor.base import ExecutorError
from pyswarmkit.executor.docker import (
    check_limits,
    create_args,
    describe_engine,
    exit_of,
    task_name,
)
from pyswarmkit.mounts import parse_mount, parse_stop_signal

pytestmark = pytest.mark.unit


def task(**container: object) -> Task:
    return Task(
        id="tid",
        service_id="sid",
        service_name="redis",
        slot=3,
        spec=TaskSpec(
            container=ContainerSpec(image="redis:3.0.5", **container),  # type: ignore[arg-type]
            resources=ResourceRequirements(
                limits=Resources(nano_cpus=500_000_000, memory_bytes=1 << 26)
            ),
            ports=(PortConfig(target_port=80, published_port=8080),),
        ),
    )


def test_create_args_follow_swarmkit() -> None:
    args, host = create_args(
        task(
            command=("redis-server",),
            args=("--port", "1"),
            env=("A=1",),
            dir="/w",
            user="nobody",
            stop_signal="SIGINT",
            stop_grace_period=7.0,
            mounts=(Mount(type="volume", source="data", target="/data", readonly=True),),
        ),
        "nid",
    )
    assert args["name"] == task_name(task()) == "redis.3.tid"
    assert args["labels"] == {
        "com.docker.swarm.service.id": "sid",
        "com.docker.swarm.service.name": "redis",
        "com.docker.swarm.task.id": "tid",
        "com.docker.swarm.task.name": "redis.3.tid",
        "com.docker.swarm.node.id": "nid",
    }
    assert args["entrypoint"] == ["redis-server"] and args["command"] == ["--port", "1"]
    assert args["environment"] == ["A=1"] and args["working_dir"] == "/w"
    assert args["user"] == "nobody" and args["stop_signal"] == "SIGINT"
    assert args["stop_timeout"] == 7
    assert args["ports"] == [(80, "tcp")]
    assert host["port_bindings"] == {"80/tcp": 8080}
    assert host["restart_policy"] == {"Name": "no"}
    assert host["nano_cpus"] == 500_000_000 and host["mem_limit"] == 1 << 26
    (mount,) = host["mounts"]
    assert (mount["Type"], mount["Source"], mount["Target"], mount["ReadOnly"]) == (
        "volume",
        "data",
        "/data",
        True,
    )


def test_the_image_cmd_is_kept_when_no_command_is_given() -> None:
    args, _ = create_args(task(), "nid")
    assert "entrypoint" not in args and "command" not in args and "stop_signal" not in args


def test_limits_above_the_node_are_refused() -> None:
    small = Resources(nano_cpus=250_000_000, memory_bytes=1 << 30)
    with pytest.raises(ExecutorError, match=r"CPU limit 0\.5 is above the node's 0\.25 CPUs"):
        check_limits(task(), small)
    check_limits(task(), Resources(nano_cpus=2_000_000_000, memory_bytes=1 << 30))


def test_node_description_from_docker_info() -> None:
    info = {
        "Name": "box",
        "OSType": "linux",
        "Architecture": "x86_64",
        "NCPU": 4,
        "MemTotal": 8 << 30,
        "ServerVersion": "20.10.24",
        "Labels": ["zone=a", "disk=ssd"],
    }
    d = describe_engine(info, "", {"disk": "hdd"})
    assert d.hostname == "box"
    assert (d.platform.os, d.platform.architecture) == ("linux", "x86_64")
    assert d.resources == Resources(nano_cpus=4_000_000_000, memory_bytes=8 << 30)
    assert d.engine.labels == {"zone": "a", "disk": "hdd"}
    assert describe_engine(info, "n1", {}).hostname == "n1"


def test_exit_of_inspect_data() -> None:
    assert exit_of({"State": {"Running": True}}) is None
    assert exit_of({"State": {"Running": False, "ExitCode": 3, "Error": ""}}) == (3, "")
    assert exit_of({"State": {"ExitCode": 127, "Error": "exec: not found"}}) == (
        127,
        "exec: not found",
    )


def test_parse_mount() -> None:
    assert parse_mount("type=bind,source=/a,target=/b,readonly") == Mount("bind", "/a", "/b", True)
    assert parse_mount("type=volume,src=v,dst=/d") == Mount("volume", "v", "/d", False)
    assert parse_mount("source=v,target=/d,readonly=false").type == "volume"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("type=tmpfs,target=/t", "type must be bind or volume"),
        ("type=bind,source=rel,target=/t", "source must be an absolute path"),
        ("type=volume,source=v,target=rel", "target must be an absolute path"),
        ("type=bind,source=/a,target=/b,colour=red", "unknown field 'colour'"),
        ("type=bind,source=/a,target=/b,readonly=maybe", "readonly must be true or false"),
    ],
)
def test_bad_mounts_are_one_clear_line(text: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as err:
        parse_mount(text)
    assert "\n" not in str(err.value)


def test_parse_stop_signal() -> None:
    assert parse_stop_signal("term") == "SIGTERM"
    assert parse_stop_signal("SIGINT") == "SIGINT"
    assert parse_stop_signal("9") == "9"
    with pytest.raises(InvalidArgument, match="no signal"):
        parse_stop_signal("SIGNOPE")


def test_specs_of_before_mounts_still_decode() -> None:
    """A container spec written before mounts and the stop signal existed."""

    class OldContainerSpec(msgspec.Struct, frozen=True, array_like=True):
        image: str = ""
        command: tuple[str, ...] = ()
        args: tuple[str, ...] = ()
        env: tuple[str, ...] = ()
        dir: str = ""
        user: str = ""
        labels: dict[str, str] = {}
        stop_grace_period: float = 10.0

    raw = msgspec.msgpack.encode(OldContainerSpec(image="redis:3.0.5"))
    spec = msgspec.msgpack.decode(raw, type=ContainerSpec)
    assert spec.mounts == () and spec.stop_signal == "" and spec.image == "redis:3.0.5"
    assert codec.check(spec, "spec") == spec
