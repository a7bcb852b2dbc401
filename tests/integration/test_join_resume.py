"""Joining and resuming on a state dir, in every combination a user meets."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until
from nodes import one_node
from typer.testing import CliRunner

from pyswarmkit.api.errors import InvalidArgument, Unavailable
from pyswarmkit.api.objects import NodeDescription, replace
from pyswarmkit.api.protocol import JoinAccepted, JoinRequest
from pyswarmkit.api.states import NodeState
from pyswarmkit.ca.files import Identity
from pyswarmkit.cli import swarmd_app
from pyswarmkit.control.units import check_hostname
from pyswarmkit.network import join_swarm
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.store.memory import Change
from pyswarmkit.transport import zmq_bus
from pyswarmkit.transport.bus import Envelope
from pyswarmkit.transport.zmq_bus import CurveKeys, ZmqBus

pytestmark = pytest.mark.integration


def addr_of(n: SwarmNode) -> str:
    assert isinstance(n.bus, ZmqBus)
    return f"127.0.0.1:{n.bus.port}"


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="swk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def worker(state: Path, manager: SwarmNode | None = None, token: str | None = None) -> SwarmNode:
    config = NodeConfig(state_dir=state, hostname=state.name, executor="sim", tick_interval=0.02)
    if manager is not None:
        config.join_addr = addr_of(manager)
        config.join_token = token or manager.store.clusters()[0].join_tokens.worker
    node = SwarmNode(config)
    node.start()
    return node


def ready(manager: SwarmNode, node_id: str) -> bool:
    node = manager.store.get_node(node_id)
    return node is not None and node.status.state == NodeState.READY


def test_a_worker_resumes_with_its_identity_and_joins_another_swarm_with_its_token(
    tmp: Path,
) -> None:
    with one_node(listen_remote_api="127.0.0.1:0") as (a, _):
        w = worker(tmp / "w", a)
        first = w.node_id
        try:
            wait_until(lambda: ready(a, first), what="the worker READY in swarm A")
        finally:
            w.stop()
        # Restarted with no token: the same node, READY again.
        w = worker(tmp / "w")
        try:
            assert w.node_id == first
            wait_until(lambda: ready(a, first), what="the worker READY again")
        finally:
            w.stop()
    with one_node(listen_remote_api="127.0.0.1:0") as (b, _):
        # Swarm A is gone; B's token names another swarm: the worker joins B afresh.
        w = worker(tmp / "w", b)
        try:
            assert w.node_id != first
            wait_until(lambda: ready(b, w.node_id), what="the worker READY in swarm B")
        finally:
            w.stop()


def test_a_manager_restarts_over_a_damaged_or_expired_certificate(tmp: Path) -> None:
    config = NodeConfig(
        state_dir=tmp / "m", hostname="m", executor="sim", listen_remote_api="127.0.0.1:0"
    )
    m = SwarmNode(config)
    m.start()
    m.stop()
    cert = tmp / "m" / "certificates" / "swarm-node.crt"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    m = SwarmNode(config)
    m.start()
    try:
        assert m.identity is not None and m.identity.node_id == m.node_id
    finally:
        m.stop()


def test_a_node_whose_certificate_expired_joins_again_under_its_id(tmp: Path) -> None:
    with one_node(listen_remote_api="127.0.0.1:0") as (n, _):
        stop = threading.Event()
        identity, _ = join_swarm(
            tmp / "x",
            addr_of(n),
            n.store.clusters()[0].join_tokens.worker,
            NodeDescription(hostname="x"),
            stop,
        )
        node = n.store.get_node(identity.node_id)
        assert node is not None and node.certificate is not None
        n.write(
            [Change("update", replace(node, certificate=replace(node.certificate, not_after=1.0)))]
        )
        again = rejoin(n, identity)
        assert isinstance(again, JoinAccepted) and again.node_id == identity.node_id
        renewed = n.store.get_node(identity.node_id)
        assert renewed is not None and renewed.certificate is not None
        assert renewed.certificate.not_after > 1.0


def rejoin(n: SwarmNode, identity: Identity) -> object:
    bus = ZmqBus("", CurveKeys(identity.keypair.public, identity.keypair.secret))
    bus.start()
    try:
        bus.dial("", addr_of(n), n.store.clusters()[0].server_key.public)
        token = n.store.clusters()[0].join_tokens.worker
        env = Envelope("", "", "ca", JoinRequest(token, NodeDescription(hostname="x")))
        return bus.request(env, 5).result(10)
    finally:
        bus.stop()


def test_a_flood_of_bad_joins_writes_nothing_and_logs_little(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with one_node(listen_remote_api="127.0.0.1:0") as (n, _):
        # The node's own start-up writes (its registration...) are not the flood's.
        wait_until(lambda: ready(n, n.node_id), what="the node READY")
        nodes = {x.id for x in n.store.nodes()}
        tokens = n.store.clusters()[0].join_tokens
        bus = ZmqBus("", CurveKeys.generate())
        bus.start()
        try:
            bus.dial("", addr_of(n), n.store.clusters()[0].server_key.public)
            bad = "SWMTKN-1-" + "0" * 50 + "-" + "1" * 25
            futures = [
                bus.request(Envelope("", "", "ca", JoinRequest(bad, NodeDescription())), 5)
                for _ in range(200)
            ]
            for f in futures:
                with pytest.raises(Exception, match="invalid join token"):
                    f.result(10)
        finally:
            bus.stop()
        lines = [r for r in caplog.records if "refused a join" in r.getMessage()]
        assert 1 <= len(lines) <= 2
        # No node admitted, no token changed.
        assert {x.id for x in n.store.nodes()} == nodes
        assert n.store.clusters()[0].join_tokens == tokens


def test_the_join_token_never_reaches_the_tasks_environment(
    monkeypatch: pytest.MonkeyPatch, tmp: Path
) -> None:
    monkeypatch.setenv("SWARM_JOIN_TOKEN", "SWMTKN-1-secret")
    result = CliRunner().invoke(swarmd_app, ["up", str(tmp / "none.toml")])
    assert result.exit_code != 0
    assert "SWARM_JOIN_TOKEN" not in os.environ


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("tcp://127.0.0.1:4242", "invalid --join-addr"),
        (" 127.0.0.1:4242", "invalid --join-addr"),
        ("localhost", "invalid --join-addr"),
        ("127.0.0.1:99999", "invalid --join-addr"),
        ("127.0.0.1:0", "port 0 is not a port to dial"),
        ("nosuchhost.invalid:4242", "cannot resolve 'nosuchhost.invalid' in --join-addr"),
    ],
)
def test_a_bad_join_address_is_refused_before_anything_is_written(
    tmp: Path, addr: str, message: str
) -> None:
    config = NodeConfig(state_dir=tmp / "w", hostname="w", executor="sim")
    config.join_addr = addr
    config.join_token = "SWMTKN-1-" + "0" * 50 + "-" + "1" * 25
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        SwarmNode(config)
    assert not (tmp / "w").exists()


def test_a_manager_on_a_busy_port_writes_nothing(tmp: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = NodeConfig(
            state_dir=tmp / "m",
            hostname="m",
            executor="sim",
            listen_remote_api=f"127.0.0.1:{port}",
        )
        with pytest.raises(Unavailable, match="the address is in use"):
            SwarmNode(config)
    assert not (tmp / "m" / "certificates").exists()
    assert not (tmp / "m" / "node-id").exists()


def test_a_worker_without_its_certificates_says_to_join_again(tmp: Path) -> None:
    with one_node(listen_remote_api="127.0.0.1:0") as (m, _):
        worker(tmp / "w", m).stop()
    shutil.rmtree(tmp / "w" / "certificates")
    with pytest.raises(InvalidArgument, match="certificates is missing: this node joined"):
        worker(tmp / "w")


def test_a_worker_cut_off_from_its_manager_says_so(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(zmq_bus, "DOWN_WARNING", 0.3)
    with one_node(listen_remote_api="127.0.0.1:0") as (m, _):
        w = worker(tmp / "w", m)
        wait_until(lambda: ready(m, w.node_id), what="the worker READY")
    try:
        wait_until(
            lambda: any("no connection to" in r.getMessage() for r in caplog.records),
            what="a warning that the manager is out of reach",
        )
    finally:
        w.stop()


@pytest.mark.parametrize("name", ["evil\nname", "a b", "x" * 254, ""])
def test_bad_hostnames_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid --hostname"):
        check_hostname(name)
    assert check_hostname("node-1.example") == "node-1.example"


def test_a_worker_whose_state_dir_was_deleted_joins_as_a_new_node(tmp: Path) -> None:
    with one_node(listen_remote_api="127.0.0.1:0") as (m, _):
        w = worker(tmp / "w", m)
        old = w.node_id
        wait_until(lambda: ready(m, old), what="the worker READY")
        w.stop()
        shutil.rmtree(tmp / "w")
        w = worker(tmp / "w", m)
        try:
            assert w.node_id != old
            wait_until(lambda: ready(m, w.node_id), what="the new node READY")
            wait_until(
                lambda: (
                    (g := m.store.get_node(old)) is not None and g.status.state == NodeState.DOWN
                ),
                what="the old node DOWN",
            )
        finally:
            w.stop()


def test_joining_an_address_where_nothing_listens_retries_with_a_line_each_time(
    tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = threading.Event()
    timer = threading.Timer(8, stop.set)
    timer.start()
    token = "SWMTKN-1-" + "0" * 50 + "-" + "1" * 25
    try:
        with pytest.raises(Unavailable, match="stopped while joining"):
            join_swarm(tmp / "x", f"127.0.0.1:{port}", token, NodeDescription(), stop)
    finally:
        timer.cancel()
    lines = [r.getMessage() for r in caplog.records if "no answer from a manager" in r.getMessage()]
    assert lines and "(attempt 1)" in lines[0]


def test_a_wildcard_listener_advertises_an_address_others_can_dial() -> None:
    from pyswarmkit.network import dialable_host

    assert dialable_host("10.1.2.3") == "10.1.2.3"
    for wildcard in ("0.0.0.0", "::", "*"):
        host = dialable_host(wildcard)
        assert host not in ("0.0.0.0", "::", "*")
        socket.inet_aton(host)  # an IPv4 address


def test_a_duplicated_join_makes_one_node_and_answers_both_alike() -> None:
    """Found by the chaos harness: a join request the network duplicated was
    admitted twice, as two nodes with one key, and the joiner (holding the
    first answer) was refused as "unknown node key" ever after."""
    with one_node(listen_remote_api="127.0.0.1:0") as (n, _):
        wait_until(lambda: ready(n, n.node_id), what="the node READY")
        before = {x.id for x in n.store.nodes()}
        bus = ZmqBus("", CurveKeys.generate())
        bus.start()
        try:
            bus.dial("", addr_of(n), n.store.clusters()[0].server_key.public)
            token = n.store.clusters()[0].join_tokens.worker
            req = JoinRequest(token, NodeDescription(hostname="twice"))
            futures = [bus.request(Envelope("", "", "ca", req), 5) for _ in range(3)]
            answers = [f.result(10) for f in futures]
        finally:
            bus.stop()
        assert all(isinstance(a, JoinAccepted) for a in answers)
        assert len({a.node_id for a in answers if isinstance(a, JoinAccepted)}) == 1
        assert len({x.id for x in n.store.nodes()} - before) == 1
