"""One node in this process, with its control client, for integration tests."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyswarmkit.api.objects import Annotations, ContainerSpec, ServiceMode, ServiceSpec, TaskSpec
from pyswarmkit.api.states import TaskState
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.transport.control import ControlClient


@contextlib.contextmanager
def one_node(**config: Any) -> Iterator[tuple[SwarmNode, ControlClient]]:
    """A started node (sim executor, fast ticks unless ``config`` says
    otherwise) in a fresh directory, stopped and removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="swk-"))
    settings: dict[str, Any] = {"executor": "sim", "tick_interval": 0.02, **config}
    n = SwarmNode(
        NodeConfig(
            state_dir=tmp / "n1",
            hostname="node-1",
            control_socket=str(tmp / "s.sock"),
            **settings,
        )
    )
    n.start()
    client = ControlClient(str(tmp / "s.sock"))
    try:
        yield n, client
    finally:
        client.close()
        n.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def spec(name: str, replicas: int) -> ServiceSpec:
    return ServiceSpec(
        annotations=Annotations(name=name),
        task=TaskSpec(container=ContainerSpec(command=("serve",))),
        mode=ServiceMode(replicas=replicas),
    )


def running(n: SwarmNode, name: str) -> int:
    """Tasks of the service that run and are meant to, read from the store."""
    ids = {s.id for s in n.store.services() if s.name == name}
    return sum(
        1
        for t in n.store.tasks()
        if t.service_id in ids
        and t.status.state == TaskState.RUNNING
        and t.desired_state == TaskState.RUNNING
    )
