"""Leader-scoped subsystems: the orchestrator, scheduler and dispatcher run only
while the node leads, start and stop with leadership any number of times in
one process, and the ticker follows them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until
from nodes import one_node, running, spec

from pyswarmkit.actors.redirect import RedirectActor
from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import (
    ManagerStatus,
    Node,
    NodeSpec,
    replace,
)
from pyswarmkit.api.states import NodeRole
from pyswarmkit.node import LEADER_ACTORS, NodeConfig, SwarmNode
from pyswarmkit.store.memory import Change
from pyswarmkit.transport.bus import LocalBus
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration

# pykka names each actor's thread after its class.
LEADER_THREADS = ("OrchestratorActor", "SchedulerActor", "DispatcherActor")


@pytest.fixture
def node() -> Iterator[tuple[SwarmNode, ControlClient]]:
    with one_node(heartbeat_period=0.5) as pair:
        yield pair


def leader_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(LEADER_THREADS)]


def leaders(n: SwarmNode) -> dict[str, bool]:
    return {
        node.id: node.manager_status.leader
        for node in n.store.nodes()
        if node.manager_status is not None
    }


def test_leadership_lost_and_gained_again_and_again(
    node: tuple[SwarmNode, ControlClient],
) -> None:
    n, client = node
    assert n.is_leader
    client.call("service.create", {"spec": spec("web", 2)})
    wait_until(lambda: running(n, "web") == 2, what="2 running")
    # Another manager the store says leads: a leadership gain here corrects it.
    other = Node(
        id="other-manager",
        spec=NodeSpec(desired_role=NodeRole.MANAGER),
        role=NodeRole.MANAGER,
        manager_status=ManagerStatus(leader=True),
    )
    n.write([Change("create", other)])
    threads = threading.active_count()

    for round_ in range(6):
        n.set_leader(False)
        assert not n.is_leader
        # What answers for the dispatcher now only sends agents to the leader.
        assert not {"orchestrator", "scheduler"} & set(n.registry.names())
        stand_in = n.registry.get("dispatcher")
        assert stand_in is not None and stand_in.actor_class is RedirectActor
        assert n.ticker is not None and n.ticker.ticked() == [
            "raft",
            "dispatcher",
            "agent",
            "executor",
            "logsender",
        ]
        wait_until(lambda: not leader_threads(), what="every leader actor thread gone")
        # Control still answers and writes; nobody acts on it until a leader does.
        replicas = 3 + round_
        svc = client.call("service.inspect", {"ref": "web"})["service"]
        client.call(
            "service.update",
            {"ref": "web", "version": svc.meta.version, "spec": spec("web", replicas)},
        )
        assert running(n, "web") == replicas - 1

        n.set_leader(True)
        assert n.ticker.ticked() == [
            "raft",
            "orchestrator",
            "scheduler",
            "dispatcher",
            "logbroker",
            "agent",
            "executor",
            "logsender",
        ]
        wait_until(lambda r=replicas: running(n, "web") == r, what=f"{replicas} running")  # type: ignore[misc]
        wait_until(
            lambda: leaders(n) == {n.node_id: True, "other-manager": False},
            what="this node recorded as the leader, the other not",
        )
        # Another manager took the lead in between (as Raft will tell us).
        o = n.store.get_node("other-manager")
        assert o is not None and o.manager_status is not None
        status = replace(o.manager_status, leader=True)
        n.write([Change("update", replace(o, manager_status=status))])

    # Each loss stopped every thread each gain started.
    wait_until(lambda: threading.active_count() <= threads, what="no thread left behind")
    assert len(leader_threads()) == 3
    assert n.failure is None and n.supervisor.restarts == {}


def test_the_leader_flag_is_written_on_gaining_leadership(
    node: tuple[SwarmNode, ControlClient],
) -> None:
    n, _ = node
    me = n.store.get_node(n.node_id)
    assert me is not None and me.manager_status is not None
    wait_until(lambda: leaders(n) == {n.node_id: True}, what="leader recorded")
    n.set_leader(False)
    n.set_leader(False)  # no change, no effect
    assert leaders(n) == {n.node_id: True}  # only a new leader rewrites it


def test_a_worker_only_node_cannot_lead(tmp_path: Path) -> None:
    bus = LocalBus()
    manager = SwarmNode(
        NodeConfig(state_dir=tmp_path / "m", hostname="m", executor="sim", tick_interval=0.02),
        bus,
    )
    manager.start()
    try:
        worker = SwarmNode(
            NodeConfig(
                state_dir=tmp_path / "w",
                hostname="w",
                executor="sim",
                tick_interval=0.02,
                manager_id=manager.node_id,
            ),
            bus,
        )
        worker.start()
        try:
            assert not worker.is_leader
            with pytest.raises(InvalidArgument, match="cannot lead"):
                worker.set_leader(True)
            assert not set(LEADER_ACTORS) & set(worker.registry.names())
        finally:
            worker.stop()
    finally:
        manager.stop()


def test_a_stopped_node_leaves_no_thread_behind(tmp_path: Path) -> None:
    before = threading.active_count()
    for i in range(3):
        n = SwarmNode(
            NodeConfig(
                state_dir=tmp_path / f"n{i}", hostname="n", executor="sim", tick_interval=0.02
            )
        )
        n.start()
        n.set_leader(False)
        n.set_leader(True)
        n.stop()
        assert n.stopped.is_set()
        n.stop()  # a second stop does nothing
    wait_until(lambda: threading.active_count() <= before, what="every node thread gone")
