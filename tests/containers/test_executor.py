"""The Docker executor against a real engine, driven directly (no swarmd)."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import (
    Annotations,
    Config,
    ConfigReference,
    ConfigSpec,
    ContainerSpec,
    Mount,
    ResourceRequirements,
    Resources,
    Secret,
    SecretReference,
    SecretSpec,
    Task,
    TaskSpec,
)
from pyswarmkit.executor.base import ExecutorError
from pyswarmkit.executor.docker import DockerExecutor, connect
from pyswarmkit.executor.taskfiles import resolve

pytestmark = pytest.mark.integration


def make_task(tid: str, **container: Any) -> Task:
    limits = container.pop("limits", Resources())
    return Task(
        id=tid,
        service_id="svc1",
        service_name="web",
        slot=1,
        spec=TaskSpec(
            container=ContainerSpec(**{"image": "busybox:latest", **container}),
            resources=ResourceRequirements(limits=limits),
        ),
    )


@pytest.fixture
def executor(engine: Any, tmp_path: Path) -> Iterator[DockerExecutor]:
    ex = DockerExecutor("node-x", os.environ["DOCKER_HOST"], state_dir=tmp_path)
    # A node ID of its own: tests running at the same time on the shared
    # engine neither see nor remove each other's containers.
    ex.node_id = f"nodex{os.getpid()}"
    yield ex
    ex.close()
    label = f"com.docker.swarm.node.id={ex.node_id}"
    for c in engine.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)


def exits(ex: DockerExecutor) -> queue.Queue[tuple[str, int, str]]:
    q: queue.Queue[tuple[str, int, str]] = queue.Queue()
    ex.watch(lambda tid, code, err: q.put((tid, code, err)))
    return q


def test_describes_the_node_from_docker_info(executor: DockerExecutor, engine: Any) -> None:
    info = engine.info()
    d = executor.describe()
    assert d.hostname == "node-x"
    assert d.resources.nano_cpus == info["NCPU"] * 1_000_000_000
    assert d.resources.memory_bytes == info["MemTotal"]
    assert d.platform.architecture == info["Architecture"]
    assert d.engine.engine_version.startswith("docker ")


def test_container_carries_the_task_spec(executor: DockerExecutor, engine: Any, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "f").write_text("x")
    task = make_task(
        "t1",
        command=("sh", "-c"),
        args=("sleep 1000",),
        env=("A=1", "B=two"),
        dir="/tmp",
        user="nobody",
        stop_signal="SIGUSR1",
        stop_grace_period=3,
        mounts=(Mount(type="bind", source=str(tmp_path), target="/data", readonly=True),),
        limits=Resources(nano_cpus=500_000_000, memory_bytes=64 * 2**20),
    )
    ctl = executor.controller(task)
    ctl.prepare()
    assert ctl.start() > 0
    attrs = engine.api.inspect_container(ctl.container_id)
    cfg, host = attrs["Config"], attrs["HostConfig"]
    assert attrs["Name"] == "/web.1.t1"
    assert cfg["Labels"]["com.docker.swarm.task.id"] == "t1"
    assert cfg["Labels"]["com.docker.swarm.task.name"] == "web.1.t1"
    assert cfg["Labels"]["com.docker.swarm.service.id"] == "svc1"
    assert cfg["Labels"]["com.docker.swarm.service.name"] == "web"
    assert cfg["Labels"]["com.docker.swarm.node.id"] == executor.node_id
    assert cfg["Entrypoint"] == ["sh", "-c"] and cfg["Cmd"] == ["sleep 1000"]
    assert {"A=1", "B=two"} <= set(cfg["Env"])
    assert cfg["WorkingDir"] == "/tmp" and cfg["User"] == "nobody"
    assert cfg["StopSignal"] == "SIGUSR1" and cfg["StopTimeout"] == 3
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 64 * 2**20
    assert host["RestartPolicy"]["Name"] == "no"
    mount = attrs["Mounts"][0]
    assert (mount["Source"], mount["Destination"], mount["RW"]) == (str(tmp_path), "/data", False)
    ctl.remove()
    assert not engine.containers.list(all=True, filters={"name": "web.1.t1"})


def test_missing_image_is_refused_with_dockers_message(executor: DockerExecutor) -> None:
    ctl = executor.controller(make_task("t2", image="nosuch/image:1"))
    with pytest.raises(ExecutorError) as err:
        ctl.prepare()
    # No registry here: Docker says why the pull failed, in its own words.
    assert "nosuch/image:1" in str(err.value) and "pulling it failed" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_mount_source_is_refused(executor: DockerExecutor) -> None:
    mount = Mount(type="bind", source="/no/such/dir", target="/data")
    ctl = executor.controller(make_task("t3", mounts=(mount,)))
    with pytest.raises(ExecutorError) as err:
        ctl.prepare()
    assert "/no/such/dir" in str(err.value)


def test_limit_above_the_node_is_refused(executor: DockerExecutor) -> None:
    too_much = executor.describe().resources.memory_bytes * 2
    ctl = executor.controller(make_task("t4", limits=Resources(memory_bytes=too_much)))
    with pytest.raises(ExecutorError, match="memory limit"):
        ctl.prepare()


def test_exit_code_comes_from_the_event_stream(executor: DockerExecutor) -> None:
    q = exits(executor)
    ctl = executor.controller(make_task("t5", command=("sh", "-c", "exit 3")))
    ctl.prepare()
    ctl.start()
    assert q.get(timeout=15) == ("t5", 3, "")


def test_secrets_under_run_secrets_and_configs_at_their_target(
    executor: DockerExecutor,
) -> None:
    secret = Secret(id="sid", spec=SecretSpec(Annotations(name="db-pass"), b"hunter2"))
    config = Config(id="cid", spec=ConfigSpec(Annotations(name="conf"), b"port=80"))
    check = (
        'test "$(cat /run/secrets/pw)" = hunter2 && test "$(stat -c %a /run/secrets/pw)" = 440 '
        '&& test "$(stat -c %u:%g /run/secrets/pw)" = 7:8 && test "$(cat /etc/app.conf)" = port=80'
    )
    task = make_task(
        "tsecret",
        command=("sh", "-c", check),
        secrets=(SecretReference("sid", "db-pass", "pw", uid="7", gid="8", mode=0o440),),
        configs=(ConfigReference("cid", "conf", "/etc/app.conf"),),
    )
    files, missing = resolve(task, {"sid": secret}, {"cid": config})
    assert not missing
    q = exits(executor)
    ctl = executor.controller(task, files)
    ctl.prepare()
    host_dir = executor.task_files.task_dir("tsecret")
    assert (host_dir / "secrets" / "pw").read_bytes() == b"hunter2"
    ctl.start()
    assert q.get(timeout=15) == ("tsecret", 0, "")
    # The task ended: its secrets left the host.
    assert not host_dir.exists()


def test_stop_signal_then_kill(executor: DockerExecutor) -> None:
    q = exits(executor)
    # Ignores SIGTERM: only terminate (SIGKILL) ends it.
    ctl = executor.controller(make_task("t6", command=("sh", "-c", "trap '' TERM; sleep 1000")))
    ctl.prepare()
    ctl.start()
    ctl.shutdown()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.5)
    ctl.terminate()
    assert q.get(timeout=15) == ("t6", 137, "")


def test_a_container_stopped_from_outside_fails(executor: DockerExecutor, engine: Any) -> None:
    q = exits(executor)
    ctl = executor.controller(make_task("t9"))
    ctl.prepare()
    ctl.start()
    engine.api.stop(ctl.container_id, timeout=5)
    tid, code, err = q.get(timeout=15)
    # The image's CMD exits 0 on SIGTERM; it still did not end by itself.
    assert (tid, code) == ("t9", 0)
    assert err == "the container was stopped from outside swarmd (signal 15)"


def test_recover_adopts_running_and_reports_exited(executor: DockerExecutor, engine: Any) -> None:
    running = executor.controller(make_task("t7"))
    running.prepare()
    running.start()
    done = executor.controller(make_task("t8", command=("true",)))
    done.prepare()
    done.start()
    wait_until(
        lambda: engine.api.inspect_container(done.container_id)["State"]["Status"] == "exited"
    )
    again = DockerExecutor("node-x", os.environ["DOCKER_HOST"])
    again.node_id = executor.node_id
    found = {f.task_id: f for f in again.recover()}
    assert set(found) == {"t7", "t8"}
    assert found["t7"].pid > 0 and found["t8"].pid == 0
    q = exits(again)
    engine.api.kill(running.container_id)
    assert q.get(timeout=15)[0] == "t7"
    again.close()


def test_an_engine_that_is_not_running_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as err:
        connect(f"unix://{tmp_path}/none.sock")
    assert "no Docker engine answers" in str(err.value) and "\n" not in str(err.value)
