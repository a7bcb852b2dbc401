"""Health checks with the Docker executor: the engine runs the check it was
given at create, and its health events decide RUNNING and FAILED."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import DockerSwarmd, start_swarmd, stop_swarmd, task_containers
from helpers import wait_until

pytestmark = pytest.mark.e2e

SERVICE = "hc"


@pytest.fixture
def node(engine: Any, short_tmp: Path) -> Iterator[DockerSwarmd]:
    node = start_swarmd(short_tmp, os.environ["DOCKER_HOST"])
    try:
        yield node
    finally:
        stop_swarmd(node)
        # Only this test's containers: the engine may be shared.
        for c in task_containers(engine, SERVICE):
            with contextlib.suppress(Exception):
                c.remove(force=True)


def states(node: DockerSwarmd) -> dict[str, str]:
    """Task ID to its Last State word, for every task of the service."""
    out = node.ctl("task", "ls", "--all", "--service", SERVICE).stdout.splitlines()[2:]
    return {line.split()[0]: line.split()[4] for line in out if line.split()}


def running_container(engine: Any, task_id: str) -> Any:
    found = [
        c
        for c in task_containers(engine, SERVICE, running_only=True)
        if c.labels.get("com.docker.swarm.task.id") == task_id
    ]
    assert len(found) == 1, found
    return found[0]


def test_engine_health_events_decide_running_and_failed(node: DockerSwarmd, engine: Any) -> None:
    node.ctl(
        "service", "create", "--name", SERVICE, "--image", "busybox",
        "--health-cmd", "test -f /tmp/ok", "--health-interval", "200ms",
        "--health-retries", "2", "--health-start-period", "1m", "--restart-delay", "1s",
    )  # fmt: skip
    wait_until(lambda: list(states(node).values()) == ["STARTING"], timeout=30, what="STARTING")
    first = next(iter(states(node)))
    container = running_container(engine, first)
    check = container.attrs["Config"]["Healthcheck"]
    assert check["Test"] == ["CMD-SHELL", "test -f /tmp/ok"]
    assert check["Interval"] == 200_000_000
    assert check["Retries"] == 2
    assert check["StartPeriod"] == 60_000_000_000

    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert states(node) == {first: "STARTING"}
        time.sleep(0.2)

    container.exec_run(["touch", "/tmp/ok"])
    wait_until(lambda: states(node) == {first: "RUNNING"}, what="RUNNING once healthy")
    assert node.replicas(SERVICE) == "1/1"

    container.exec_run(["rm", "/tmp/ok"])
    wait_until(lambda: states(node).get(first) == "FAILED", what="FAILED when unhealthy")
    assert "unhealthy container" in node.ctl("task", "inspect", first).stdout
    wait_until(lambda: len(states(node)) == 2, what="a replacement")

    # --no-healthcheck: the engine is told to run none, and the task runs at once.
    node.ctl("service", "update", SERVICE, "--no-healthcheck")
    wait_until(
        lambda: (
            "RUNNING" in states(node).values()
            and all(
                c.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"]
                for c in task_containers(engine, SERVICE, running_only=True)
            )
        ),
        timeout=30,
        what="a task without a check RUNNING",
    )
    assert "Disabled        : true" in node.ctl("service", "inspect", SERVICE).stdout
