"""A manager and two workers in one process, talking over the LocalBus: spread,
drain, a worker leaving, and a worker going silent (heartbeat failure)."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
    replace,
)
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.ticker import Ticker
from pyswarmkit.transport.bus import LocalBus
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration

HEARTBEAT = 0.3


class Swarm:
    def __init__(self, tmp: Path) -> None:
        self.bus = LocalBus()
        self.manager = SwarmNode(self._config(tmp, "node-1", control=str(tmp / "s.sock")), self.bus)
        self.manager.start()
        self.workers: dict[str, SwarmNode] = {}
        for name in ("node-2", "node-3"):
            w = SwarmNode(self._config(tmp, name, manager_id=self.manager.node_id), self.bus)
            w.start()
            self.workers[name] = w
        self.client = ControlClient(str(tmp / "s.sock"))
        self.store = self.manager.store
        wait_until(lambda: self.ready_nodes() == 3, what="three READY nodes")

    @staticmethod
    def _config(
        tmp: Path, name: str, control: str | None = None, manager_id: str | None = None
    ) -> NodeConfig:
        return NodeConfig(
            state_dir=tmp / name,
            hostname=name,
            control_socket=control,
            executor="sim",
            heartbeat_period=HEARTBEAT,
            tick_interval=0.02,
            manager_id=manager_id,
        )

    def ready_nodes(self) -> int:
        return sum(1 for n in self.store.nodes() if n.status.state == NodeState.READY)

    def running_by_node(self) -> Counter[str]:
        names = {n.id: n.name for n in self.store.nodes()}
        return Counter(
            names[t.node_id]
            for t in self.store.tasks()
            if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING
        )

    def create(self, name: str, replicas: int) -> None:
        spec = ServiceSpec(
            annotations=Annotations(name=name),
            task=TaskSpec(container=ContainerSpec(command=("serve",))),
            mode=ServiceMode(replicas=replicas),
        )
        self.client.call("service.create", {"spec": spec})

    def stop(self) -> None:
        self.client.close()
        for w in self.workers.values():
            w.stop()
        self.manager.stop()


@pytest.fixture
def swarm() -> Iterator[Swarm]:
    tmp = Path(tempfile.mkdtemp(prefix="swk-"))
    s = Swarm(tmp)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_spread_drain_and_activate(swarm: Swarm) -> None:
    swarm.create("web", 6)
    wait_until(
        lambda: swarm.running_by_node() == {"node-1": 2, "node-2": 2, "node-3": 2},
        what="two tasks on each node",
    )
    swarm.client.call("node.update", _availability(swarm, "node-2", "DRAIN"))
    wait_until(
        lambda: swarm.running_by_node() == {"node-1": 3, "node-3": 3},
        what="node-2's tasks moved to the other nodes",
    )
    # The drained node's old tasks were stopped there, not just forgotten.
    drained = next(n.id for n in swarm.store.nodes() if n.name == "node-2")
    wait_until(
        lambda: all(t.status.state.terminal for t in swarm.store.tasks_by_node(drained)),
        what="node-2's tasks stopped",
    )


def _availability(swarm: Swarm, name: str, availability: str) -> dict[str, object]:
    (node,) = [n for n in swarm.store.nodes() if n.name == name]
    spec = replace(node.spec, availability=NodeAvailability[availability])
    return {"ref": node.id, "version": node.meta.version, "spec": spec}


def test_a_worker_that_leaves_has_its_tasks_rescheduled(swarm: Swarm) -> None:
    swarm.create("api", 3)
    wait_until(lambda: sum(swarm.running_by_node().values()) == 3, what="3 running")
    swarm.workers.pop("node-3").stop()
    node3 = next(n for n in swarm.store.nodes() if n.name == "node-3")
    wait_until(
        lambda: swarm.store.get_node(node3.id).status.state == NodeState.DOWN,  # type: ignore[union-attr]
        what="node-3 DOWN",
    )
    wait_until(
        lambda: (
            sum(swarm.running_by_node().values()) == 3 and "node-3" not in swarm.running_by_node()
        ),
        what="node-3's task running elsewhere",
    )


def test_a_silent_worker_is_marked_down_and_comes_back(swarm: Swarm) -> None:
    swarm.create("db", 3)
    wait_until(lambda: sum(swarm.running_by_node().values()) == 3, what="3 running")
    worker = swarm.workers["node-2"]
    assert worker.ticker is not None
    worker.ticker.stop()  # the node hangs: no heartbeats, no reports
    node2 = next(n for n in swarm.store.nodes() if n.name == "node-2")
    wait_until(
        lambda: swarm.store.get_node(node2.id).status.message == "heartbeat failure",  # type: ignore[union-attr]
        what="heartbeat failure",
    )
    wait_until(
        lambda: (
            sum(swarm.running_by_node().values()) == 3 and "node-2" not in swarm.running_by_node()
        ),
        what="node-2's task rescheduled",
    )
    # It wakes up: a new session, READY again, and it stops the task it still ran.
    worker.ticker = Ticker(worker.registry, ["agent", "executor"], 0.02)
    worker.ticker.start()
    wait_until(
        lambda: swarm.store.get_node(node2.id).status.state == NodeState.READY,  # type: ignore[union-attr]
        what="node-2 READY again",
    )
    wait_until(
        lambda: (
            not [
                t
                for t in swarm.store.tasks_by_node(node2.id)
                if t.status.state == TaskState.RUNNING
            ]
        ),
        what="its old task stopped",
    )
