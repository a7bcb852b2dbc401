"""One node's actors together, in this process, over the real control socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until
from nodes import one_node, spec

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import ContainerSpec, ServiceSpec, TaskSpec
from pyswarmkit.api.states import TaskState
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration


@pytest.fixture
def node() -> Iterator[tuple[SwarmNode, ControlClient]]:
    with one_node() as pair:
        yield pair


def running(client: ControlClient, name: str) -> int:
    return int(client.call("service.inspect", {"ref": name})["running"])


def test_scale_update_remove(node: tuple[SwarmNode, ControlClient]) -> None:
    n, client = node
    client.call("service.create", {"spec": spec("web", 50)})
    wait_until(lambda: running(client, "web") == 50, what="50 running")
    tasks = n.store.tasks()
    assert sorted(t.slot for t in tasks) == list(range(1, 51))
    assert {t.node_id for t in tasks} == {n.node_id}

    svc = client.call("service.inspect", {"ref": "web"})["service"]
    client.call(
        "service.update", {"ref": "web", "version": svc.meta.version, "spec": spec("web", 10)}
    )
    wait_until(lambda: n.store.count("task") == 10, what="scaled down to 10 tasks")
    assert running(client, "web") == 10

    # A new command replaces every task; the old ones are shut down, not failed.
    svc = client.call("service.inspect", {"ref": "web"})["service"]
    new = ServiceSpec(
        annotations=svc.spec.annotations,
        task=TaskSpec(container=ContainerSpec(command=("serve", "--v2"))),
        mode=svc.spec.mode,
    )
    client.call("service.update", {"ref": "web", "version": svc.meta.version, "spec": new})

    def replaced() -> bool:
        live = [t for t in n.store.tasks() if t.desired_state == TaskState.RUNNING]
        return len(live) == 10 and all(
            t.spec.container.command == ("serve", "--v2") and t.status.state == TaskState.RUNNING
            for t in live
        )

    wait_until(replaced, what="every task on the new spec")
    # The new tasks may run before the last old one's stop is reported: wait for
    # the reports, then none of the old tasks may have ended any other way.
    old = [t for t in n.store.tasks() if t.desired_state == TaskState.SHUTDOWN]
    assert old
    wait_until(
        lambda: all(n.store.get_task(t.id).status.state.terminal for t in old),  # type: ignore[union-attr]
        what="every old task stopped",
    )
    assert all(n.store.get_task(t.id).status.state == TaskState.SHUTDOWN for t in old)  # type: ignore[union-attr]

    client.call("service.remove", {"ref": "web"})
    wait_until(lambda: n.store.count("task") == 0, what="every task removed")
    with pytest.raises(NotFound):
        client.call("service.inspect", {"ref": "web"})


def test_stale_update_is_refused(node: tuple[SwarmNode, ControlClient]) -> None:
    _, client = node
    client.call("service.create", {"spec": spec("api", 1)})
    svc = client.call("service.inspect", {"ref": "api"})["service"]
    client.call(
        "service.update", {"ref": "api", "version": svc.meta.version, "spec": spec("api", 2)}
    )
    with pytest.raises(Exception, match="changed since it was read"):
        client.call(
            "service.update", {"ref": "api", "version": svc.meta.version, "spec": spec("api", 3)}
        )
    assert client.call("service.inspect", {"ref": "api"})["service"].spec.mode.replicas == 2


def test_malformed_requests_do_not_hurt_the_daemon(node: tuple[SwarmNode, ControlClient]) -> None:
    import zmq

    n, client = node
    assert n.control_server is not None
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(f"ipc://{n.control_server.path}")
    try:
        for frame in [b"\xc1garbage", b"", b"\x93\x01\x02\x03", b"\x81\xa1v\x02"]:
            sock.send(frame)
            assert sock.poll(5000)
            reply = sock.recv()
            assert b"invalid_argument" in reply
    finally:
        sock.close(0)
    assert n.control_server.malformed == 4
    with pytest.raises(InvalidArgument, match="unknown control method"):
        client.call("service.explode", {})
    client.call("service.create", {"spec": spec("still-fine", 1)})
    wait_until(lambda: running(client, "still-fine") == 1, what="the daemon still works")


def test_the_cluster_records_the_heartbeat_period_in_force(tmp_path: Path) -> None:
    n = SwarmNode(
        NodeConfig(state_dir=tmp_path / "n", hostname="n", executor="sim", heartbeat_period=0.7)
    )
    n.start()
    try:
        (cluster,) = n.store.clusters()
        assert cluster.spec.dispatcher.heartbeat_period == 0.7
    finally:
        n.stop()


def test_a_file_where_the_state_dir_belongs_is_named_as_such(tmp_path: Path) -> None:
    # The default control socket lies inside the state dir; the error must be
    # about the state dir, not about a socket path under a file.
    where = tmp_path / "state"
    where.write_text("not a directory")
    config = NodeConfig(state_dir=where, hostname="n", control_socket=str(where / "swarm.sock"))
    with pytest.raises(InvalidArgument, match=r"state dir .* exists and is not a directory"):
        SwarmNode(config)
    assert where.read_text() == "not a directory"
