"""A finished task's output stays on its node while the task is history, and
goes when the store deletes the task."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    RestartPolicy,
    ServiceSpec,
    TaskSpec,
)
from pyswarmkit.api.states import RestartCondition, TaskState
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration


@pytest.fixture
def node() -> Iterator[tuple[SwarmNode, ControlClient, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="swk-"))
    n = SwarmNode(
        NodeConfig(
            state_dir=tmp / "n1",
            hostname="node-1",
            control_socket=str(tmp / "s.sock"),
            tick_interval=0.02,
        )
    )
    n.start()
    client = ControlClient(str(tmp / "s.sock"))
    try:
        yield n, client, tmp / "n1" / "worker" / "tasks"
    finally:
        client.close()
        n.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_failed_tasks_output_is_kept_while_it_is_listed_and_goes_with_it(
    node: tuple[SwarmNode, ControlClient, Path],
) -> None:
    n, client, tasks_dir = node
    spec = ServiceSpec(
        annotations=Annotations(name="fail3"),
        task=TaskSpec(
            container=ContainerSpec(command=("sh", "-c", "echo boom >&2; exit 3")),
            restart=RestartPolicy(condition=RestartCondition.NONE),
        ),
    )
    client.call("service.create", {"spec": spec})
    failed = wait_until(
        lambda: [t for t in n.store.tasks() if t.status.state == TaskState.FAILED],
        what="the task FAILED",
    )
    stderr = tasks_dir / failed[0].id / "stderr.log"
    # Still there once the node has been told the task is finished with.
    wait_until(
        lambda: n.store.get_task(failed[0].id).desired_state > TaskState.RUNNING,  # type: ignore[union-attr]
        what="the task no longer wanted running",
    )
    # A negative check: give the node many ticks (0.02 s each) to act on that.
    time.sleep(0.5)
    assert stderr.read_text().strip() == "boom"
    client.call("service.remove", {"ref": "fail3"})
    wait_until(lambda: n.store.get_task(failed[0].id) is None, what="the task deleted")
    wait_until(lambda: not (tasks_dir / failed[0].id).exists(), what="its directory removed")
