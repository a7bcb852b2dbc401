"""`node rm` on a swarm on the wire: a manager and a worker that joined it
over CurveZMQ, in this process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until
from nodes import one_node, running, spec

from pyswarmkit.api.errors import FailedPrecondition, NotFound
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.ca.authz import REMOVED
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.transport.zmq_bus import ZmqBus

pytestmark = pytest.mark.integration


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="swk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def join(state: Path, manager: SwarmNode) -> SwarmNode:
    assert isinstance(manager.bus, ZmqBus)
    config = NodeConfig(
        state_dir=state,
        hostname=state.name,
        executor="sim",
        tick_interval=0.02,
        join_addr=f"127.0.0.1:{manager.bus.port}",
        join_token=manager.store.clusters()[0].join_tokens.worker,
    )
    node = SwarmNode(config)
    node.start()
    return node


def ready(manager: SwarmNode, node_id: str) -> bool:
    node = manager.store.get_node(node_id)
    return node is not None and node.status.state == NodeState.READY


def test_a_removed_worker_is_refused_at_once_and_its_swarmd_stops(tmp: Path) -> None:
    with one_node(listen_remote_api="127.0.0.1:0", heartbeat_period=1.0) as (m, client):
        w = join(tmp / "worker-1", m)
        try:
            wait_until(lambda: ready(m, w.node_id), what="the worker READY")
            client.call("service.create", {"spec": spec("web", 4)})
            wait_until(
                lambda: (
                    running(m, "web") == 4 and any(t.node_id == w.node_id for t in m.store.tasks())
                ),
                what="4 tasks running, some on the worker",
            )

            with pytest.raises(FailedPrecondition, match="is not down and can't be removed"):
                client.call("node.remove", {"ref": "worker-1"})
            assert not w.stopped.is_set()
            with pytest.raises(NotFound, match=r"^node nope not found$"):
                client.call("node.remove", {"ref": "nope", "force": True})

            assert w.identity is not None
            key = w.identity.keypair.public
            assert m.auth.lookup(key) is not None
            assert client.call("node.remove", {"ref": "worker-1", "force": True}) == {
                "id": w.node_id
            }
            # The commit that deleted the node took its key out of the table.
            assert m.auth.lookup(key) is None
            assert m.auth.removed_keys[key] == w.node_id

            # Its next message is refused with words its agent understands.
            wait_until(w.stopped.is_set, timeout=20, what="the removed worker to stop")
            assert w.failure == REMOVED
            assert isinstance(m.bus, ZmqBus)
            assert m.bus.stats()["refused"] >= 1

            # Its tasks run again on the node that is left; none stays its.
            wait_until(lambda: running(m, "web") == 4, timeout=20, what="4 running again")
            live = [t for t in m.store.tasks() if t.desired_state <= TaskState.RUNNING]
            assert all(t.node_id == m.node_id for t in live)
            orphaned = [t for t in m.store.tasks() if t.node_id == w.node_id]
            assert orphaned and all(t.status.state == TaskState.ORPHANED for t in orphaned)
        finally:
            w.stop()
