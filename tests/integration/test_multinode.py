"""A manager and two workers in one process, talking over the LocalBus: spread,
drain, a worker leaving, a worker going silent (heartbeat failure), a
restarted dispatcher, hostile messages, and a bus that loses, duplicates and
reorders."""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from helpers import wait_until

from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.dispatcher import DispatcherActor
from pyswarmkit.actors.messages import Deliver
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    Node,
    NodeDescription,
    NodeStatus,
    Resources,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
    replace,
)
from pyswarmkit.api.protocol import PROTOCOL_VERSION, Register, Registered
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.dispatcher.core import UNKNOWN_EXPIRED_MESSAGE, UNKNOWN_MESSAGE
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.store import Change
from pyswarmkit.ticker import Ticker
from pyswarmkit.transport.bus import Envelope, LocalBus
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration

HEARTBEAT = 0.3


class LossyBus(LocalBus):
    """Loses, duplicates and holds back (so reorders) messages, from one seed."""

    def __init__(self, seed: int, drop: float = 0.2, dup: float = 0.1, hold: float = 0.2) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.drop, self.dup, self.hold = drop, dup, hold
        self.held: list[Envelope] = []
        self.lost = 0
        self._rng_lock = threading.Lock()

    def send(self, envelope: Envelope) -> bool:
        with self._rng_lock:
            if self.rng.random() < self.drop:
                self.lost += 1
                return True
            copies = 2 if self.rng.random() < self.dup else 1
            if self.rng.random() < self.hold:
                self.held.append(envelope)
                return True
            release, self.held = self.held, []
        for _ in range(copies):
            super().send(envelope)
        for env in release:  # behind a message sent after them
            super().send(env)
        return True


class Swarm:
    def __init__(self, tmp: Path, bus: LocalBus | None = None) -> None:
        self.bus = bus or LocalBus()
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

    def scale(self, name: str, replicas: int) -> None:
        (service,) = [s for s in self.store.services() if s.name == name]
        spec = replace(service.spec, mode=ServiceMode(replicas=replicas))
        self.client.call(
            "service.update", {"ref": service.id, "version": service.meta.version, "spec": spec}
        )

    def node(self, name: str) -> Node:
        (node,) = [n for n in self.store.nodes() if n.name == name]
        return node

    def stop(self) -> None:
        self.client.close()
        for w in self.workers.values():
            w.stop()
        self.manager.stop()


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="swk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def swarm(tmp: Path) -> Iterator[Swarm]:
    s = Swarm(tmp)
    try:
        yield s
    finally:
        s.stop()


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


def test_every_node_answers_to_a_restarted_dispatcher_or_goes_down(swarm: Swarm) -> None:
    """A new dispatcher (as after a leadership change) marks every node it has no
    session for UNKNOWN; those that register are READY again, a node that never
    talks to it is DOWN after the grace."""
    ghost = Node(id="ghost", status=NodeStatus(state=NodeState.READY, addr="10.0.0.9"))
    swarm.manager.write([Change("create", ghost)])
    registry = swarm.manager.registry
    old = registry.remove("dispatcher")
    assert old is not None
    old.stop()
    seen: list[tuple[NodeState, str]] = []
    cancel = swarm.store.watch(
        lambda batch: seen.extend(
            (e.obj.status.state, e.obj.status.message)
            for e in batch.events
            if isinstance(e.obj, Node) and e.obj.id == "ghost"
        )
    )
    new = DispatcherActor.start(registry, swarm.store, swarm.bus)
    try:
        registry.add("dispatcher", new)
        wait_until(lambda: (NodeState.UNKNOWN, UNKNOWN_MESSAGE) in seen, what="ghost UNKNOWN")
        wait_until(
            lambda: (
                swarm.store.get_node("ghost").status  # type: ignore[union-attr]
                == NodeStatus(NodeState.DOWN, UNKNOWN_EXPIRED_MESSAGE, "10.0.0.9")
            ),
            what="ghost DOWN after the grace",
        )
        wait_until(lambda: swarm.ready_nodes() == 3, what="the real nodes READY again")
    finally:
        cancel()
        # Started here, not by the node's supervisor: the node would not stop it,
        # and its thread would keep the test process from exiting.
        if registry.get("dispatcher") is new:
            registry.remove("dispatcher")
        new.stop()


class Inbox(GuardedActor):
    name = "agent"

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []
        self.deadlines: list[float | None] = []

    def handle(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            self.got.append(message.envelope.body)
            self.deadlines.append(message.envelope.deadline)
        return list(self.got)


def test_bad_input_is_refused_at_the_bus_and_the_address_is_the_connections(
    swarm: Swarm,
) -> None:
    manager = swarm.manager.node_id
    stranger = Registry("stranger")
    inbox = Inbox.start()
    stranger.add("agent", inbox)
    swarm.bus.attach(stranger, addr="10.0.0.7")
    try:
        # A register whose description has a string for a number: refused where it
        # arrives, once, and counted; the dispatcher never sees it.
        lots = NodeDescription(hostname="x", resources=Resources(nano_cpus="lots"))  # type: ignore[arg-type]
        bad = Envelope("stranger", manager, "dispatcher", Register(1, lots))
        assert not swarm.bus.send(bad)
        assert swarm.bus.refused == 1
        # A register claiming an address of its own in an extra field: the field is
        # ignored, the node gets the address its connection shows.
        desc = msgspec.to_builtins(NodeDescription(hostname="stranger"))
        body = [Register.__struct_config__.tag, 2, desc, "10.9.9.9"]
        wire = [PROTOCOL_VERSION, 1, 0, "stranger", manager, "dispatcher", 5.0, body]
        assert swarm.bus.deliver(msgspec.msgpack.encode(wire), "stranger")
        wait_until(lambda: swarm.store.get_node("stranger"), what="stranger registered")
        node = swarm.store.get_node("stranger")
        assert node is not None
        assert (node.status.state, node.status.addr) == (NodeState.READY, "10.0.0.7")
        wait_until(
            lambda: any(isinstance(b, Registered) for b in inbox.ask("inbox")),
            what="registered answer",
        )
        # What the dispatcher sends carries a deadline, as what agents send does.
        deadlines = inbox.proxy().deadlines.get()
        assert deadlines and all(d is not None for d in deadlines)
        # The dispatcher carried on, and the others' nodes kept their bus addresses.
        swarm.create("after", 3)
        wait_until(lambda: sum(swarm.running_by_node().values()) == 3, what="3 running")
        assert swarm.node("node-2").status.addr == "127.0.0.1"
    finally:
        swarm.bus.detach("stranger")
        inbox.stop()


def test_a_lossy_bus_still_converges(tmp: Path) -> None:
    """Real actors over a bus that loses 20%, duplicates 10% and reorders 20%
    of messages: services still reach their replicas and scale down cleanly."""
    bus = LossyBus(seed=7)
    s = Swarm(tmp, bus)
    try:
        s.create("web", 6)
        wait_until(lambda: sum(s.running_by_node().values()) == 6, timeout=60, what="6 running")
        s.scale("web", 2)

        def settled() -> bool:
            live = [t for t in s.store.tasks() if t.status.state <= TaskState.RUNNING]
            return sum(s.running_by_node().values()) == 2 and all(
                t.desired_state == TaskState.RUNNING and t.status.state == TaskState.RUNNING
                for t in live
            )

        wait_until(settled, timeout=60, what="2 running and every other task stopped")
        assert bus.lost > 0
        wait_until(lambda: s.ready_nodes() == 3, what="every node READY")
    finally:
        s.stop()
