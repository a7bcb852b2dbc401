"""SwarmKit's README walkthrough with real containers: swarmd --executor docker
on the test engine, checked through swarmctl and through the Docker SDK."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import (
    DockerSwarmd,
    remove_containers_of,
    start_swarmd,
    stop_swarmd,
    task_containers,
)
from helpers import tool, wait_until

pytestmark = pytest.mark.e2e


def running_images(engine: Any, service: str) -> dict[str, str]:
    """Running container ID to image, for one service's tasks."""
    return {
        c.id: c.attrs["Config"]["Image"]
        for c in task_containers(engine, service, running_only=True)
    }


def task_ids(node: DockerSwarmd, service: str) -> list[str]:
    lines = node.ctl("task", "ls").stdout.splitlines()[2:]
    return [line.split()[0] for line in lines if f" {service}." in line]


def test_readme_walkthrough(dswarmd: DockerSwarmd, engine: Any) -> None:
    node = dswarmd
    node.sh("service create --name redis --image redis:3.0.5")
    wait_until(lambda: node.replicas("redis") == "1/1", what="redis 1/1")
    ls = node.ctl("service", "ls").stdout
    assert "redis:3.0.5" in ls and "1/1" in ls
    first = running_images(engine, "redis")
    assert list(first.values()) == ["redis:3.0.5"]

    inspect = node.sh("service inspect redis").stdout
    assert "redis" in inspect and "redis:3.0.5" in inspect

    node.sh("service update redis --replicas 6")
    wait_until(lambda: node.replicas("redis") == "6/6", timeout=30, what="redis 6/6")
    six = wait_until(
        lambda: len(running_images(engine, "redis")) == 6 and running_images(engine, "redis")
    )
    assert set(six.values()) == {"redis:3.0.5"}
    # Each container carries its task's labels and SwarmKit's name for it.
    for c in task_containers(engine, "redis", running_only=True):
        tid = c.labels["com.docker.swarm.task.id"]
        assert c.name == c.labels["com.docker.swarm.task.name"]
        assert c.name.startswith("redis.") and c.name.endswith(f".{tid}")

    node.sh("service update redis --image redis:3.0.6")

    def replaced() -> bool:
        now = running_images(engine, "redis")
        return len(now) == 6 and set(now.values()) == {"redis:3.0.6"} and not set(now) & set(six)

    wait_until(replaced, timeout=60, what="every container replaced by a redis:3.0.6 one")
    wait_until(lambda: node.replicas("redis") == "6/6", timeout=30, what="redis 6/6 on 3.0.6")

    # Two at a time, 10 s after each pair runs; the options stay on the service.
    node.sh("service update redis --image redis:3.0.7 --update-parallelism 2 --update-delay 10s")
    start = time.monotonic()
    reached: dict[int, float] = {}
    fewest_running = 6
    inspected = ""
    while time.monotonic() - start < 90:
        images = list(running_images(engine, "redis").values())
        new = images.count("redis:3.0.7")
        fewest_running = min(fewest_running, len(images))
        reached.setdefault(new, time.monotonic() - start)
        if new == 6 and len(images) == 6:
            inspected = node.sh("service inspect redis").stdout
            if re.search(r"State\s*:\s*COMPLETED", inspected):
                break
        time.sleep(0.2)
    assert re.search(r"State\s*:\s*COMPLETED", inspected), inspected
    # Stop-first, two at a time: never more than two of six down at once.
    assert fewest_running >= 4, fewest_running
    # Pairs 10 s apart: the second pair after the first plus the delay, the third after that.
    assert reached[4] - reached[2] >= 9 and reached[6] - reached[4] >= 9, reached
    assert "Update Status" in inspected
    assert re.search(r"Parallelism\s*:\s*2\b", inspected), inspected
    assert re.search(r"Delay\s*:\s*10s", inspected), inspected

    node.sh("node drain node-1")
    wait_until(
        lambda: not running_images(engine, "redis"), timeout=60, what="no container left running"
    )

    node.sh("service rm redis")
    wait_until(
        lambda: not task_containers(engine, "redis"), timeout=60, what="no container left at all"
    )
    assert node.proc.poll() is None


def test_a_container_that_exits_at_once_fails_with_its_exit_code(
    dswarmd: DockerSwarmd, engine: Any
) -> None:
    node = dswarmd
    node.sh("service create --name quick --image busybox --command sh --args -c --args 'exit 3'")

    def failed() -> str:
        for tid in task_ids(node, "quick"):
            out = node.ctl("task", "inspect", tid).stdout
            if "FAILED" in out:
                return out
        return ""

    out = wait_until(failed, timeout=30, what="a FAILED task")
    assert "Exit Code" in out, out
    assert "3" in out.split("Exit Code", 1)[1].splitlines()[0]
    assert node.proc.poll() is None


def test_a_missing_image_is_rejected_with_dockers_message(dswarmd: DockerSwarmd) -> None:
    node = dswarmd
    node.sh("service create --name ghost --image nosuch/ghost:9")

    def rejected() -> str:
        for tid in task_ids(node, "ghost"):
            out = node.ctl("task", "inspect", tid).stdout
            if "REJECTED" in out:
                return out
        return ""

    out = wait_until(rejected, timeout=30, what="a REJECTED task")
    assert "nosuch/ghost:9" in out and "pulling it failed" in out
    assert node.proc.poll() is None


def test_a_missing_mount_source_is_rejected(dswarmd: DockerSwarmd) -> None:
    node = dswarmd
    node.sh("service create --name mnt --image busybox --mount type=bind,source=/no/such,target=/d")

    def rejected() -> str:
        for tid in task_ids(node, "mnt"):
            out = node.ctl("task", "inspect", tid).stdout
            if "REJECTED" in out:
                return out
        return ""

    assert "/no/such" in wait_until(rejected, timeout=30, what="a REJECTED task")


def test_a_limit_above_the_node_is_rejected(dswarmd: DockerSwarmd) -> None:
    node = dswarmd
    node.sh("service create --name big --image busybox --limit-memory 100T")

    def rejected() -> str:
        for tid in task_ids(node, "big"):
            out = node.ctl("task", "inspect", tid).stdout
            if "REJECTED" in out:
                return out
        return ""

    assert "memory limit" in wait_until(rejected, timeout=30, what="a REJECTED task")


def test_swarmd_refuses_to_start_without_an_engine(short_tmp: Path) -> None:
    result = subprocess.run(
        [
            tool("swarmd"),
            "-d",
            str(short_tmp / "n"),
            "--listen-remote-api",
            "127.0.0.1:0",
            "--executor",
            "docker",
            "--engine-addr",
            f"unix://{short_tmp}/nothing.sock",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Docker engine answers" in lines[0], result.stderr


ENGINE_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "docker-engine.sh"


@pytest.mark.parametrize("sig", [15, 9], ids=["stopped", "crashed"])
def test_an_engine_restart_fails_the_tasks_and_they_are_replaced(
    engine: Any, short_tmp: Path, sig: int
) -> None:
    """On an engine of its own, restarted under running tasks: stopped (it
    stops the containers, which exit 0 on SIGTERM) or crashed (its next start
    kills what it left)."""
    import docker

    engine_dir = short_tmp / "e"
    env = {**os.environ, "PYSWARMKIT_DOCKER_DIR": str(engine_dir)}
    out = subprocess.run(
        ["bash", str(ENGINE_SCRIPT), "start", str(engine_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    ).stdout
    addr = out.strip().splitlines()[-1].split("=", 1)[1]
    client = docker.DockerClient(base_url=addr)
    node = start_swarmd(short_tmp, addr)
    try:
        node.sh("service create --name r --image busybox --replicas 2")
        wait_until(lambda: node.replicas("r") == "2/2", timeout=30, what="r 2/2")
        before = set(running_images(client, "r"))
        old_tasks = task_ids(node, "r")
        pid = int((engine_dir / "dockerd.pid").read_text())
        os.kill(pid, sig)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="dockerd gone")
        subprocess.run(
            ["bash", str(ENGINE_SCRIPT), "start", str(engine_dir)],
            capture_output=True,
            timeout=120,
            env=env,
            check=True,
        )

        def replaced() -> bool:
            now = running_images(client, "r")
            return len(now) == 2 and not set(now) & before

        wait_until(replaced, timeout=60, what="two new containers")
        wait_until(lambda: node.replicas("r") == "2/2", timeout=30, what="r 2/2 again")
        for tid in old_tasks:
            out = node.ctl("task", "inspect", tid).stdout
            assert "FAILED" in out, out
        assert node.proc.poll() is None
    finally:
        stop_swarmd(node)
        client.close()
        subprocess.run(["bash", str(ENGINE_SCRIPT), "stop", str(engine_dir)], timeout=120)


def test_a_restarted_swarmd_keeps_its_containers_and_removes_strays(
    engine: Any, short_tmp: Path
) -> None:
    addr = os.environ["DOCKER_HOST"]
    node = start_swarmd(short_tmp, addr)
    try:
        node.sh("service create --name keep --image busybox --replicas 2")
        wait_until(lambda: node.replicas("keep") == "2/2", timeout=30, what="keep 2/2")
        before = running_images(engine, "keep")
        node_id = next(iter(task_containers(engine, "keep"))).labels["com.docker.swarm.node.id"]
        node.proc.kill()
        node.proc.wait(30)
        # A container of a task the swarm no longer has, left by this node.
        stray = engine.containers.run(
            "busybox",
            detach=True,
            name="keep.9.straytask",
            labels={
                "com.docker.swarm.task.id": "straytask",
                "com.docker.swarm.service.name": "keep",
                "com.docker.swarm.node.id": node_id,
            },
        )
        node = start_swarmd(short_tmp, addr)
        wait_until(
            lambda: (
                not engine.containers.list(all=True, filters={"id": stray.id}, ignore_removed=True)
            ),
            timeout=60,
            what="the stray container removed",
        )
        wait_until(lambda: node.replicas("keep") == "2/2", timeout=30, what="keep 2/2 again")
        # The same containers, taken back rather than replaced.
        assert running_images(engine, "keep") == before
        assert "adopted task" in node.log()
    finally:
        stop_swarmd(node)
        remove_containers_of(engine, node)
