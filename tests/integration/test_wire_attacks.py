"""The attack battery: a manager on 127.0.0.1 faces wrong and stolen
credentials and garbage on its remote port. Each attack is refused with a log
line, delivers nothing, and leaves the manager serving its control API and
its workers."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
import zmq
from helpers import wait_until
from nodes import one_node

from pyswarmkit.api.errors import Conflict, DeadlineExceeded, PermissionDenied
from pyswarmkit.api.objects import NodeDescription, replace
from pyswarmkit.api.protocol import (
    Body,
    CertificateIssued,
    Heartbeat,
    JoinRequest,
    Register,
    Registered,
    RenewCertificate,
)
from pyswarmkit.api.states import NodeRole, NodeState
from pyswarmkit.ca import certs, files
from pyswarmkit.ca.files import Identity
from pyswarmkit.ca.tokens import new_token
from pyswarmkit.control.handlers import Handlers, Write
from pyswarmkit.network import JoinRefused, join_swarm
from pyswarmkit.node import SwarmNode
from pyswarmkit.store.memory import Change
from pyswarmkit.transport.bus import Envelope
from pyswarmkit.transport.control import ControlClient
from pyswarmkit.transport.zmq_bus import CurveKeys, ZmqBus

pytestmark = pytest.mark.integration


@pytest.fixture
def manager() -> Iterator[tuple[SwarmNode, ControlClient]]:
    with one_node(listen_remote_api="127.0.0.1:0") as (n, client):
        wait_until(lambda: n.bus.stats()["local"] > 0, what="the manager's own agent")
        yield n, client


def addr_of(n: SwarmNode) -> str:
    assert isinstance(n.bus, ZmqBus)
    return f"127.0.0.1:{n.bus.port}"


def worker_token(n: SwarmNode) -> str:
    return n.store.clusters()[0].join_tokens.worker


def stats(n: SwarmNode) -> dict[str, int]:
    assert isinstance(n.bus, ZmqBus)
    return n.bus.stats()


def join(n: SwarmNode, tmp: Path, name: str, token: str | None = None) -> Identity:
    stop = threading.Event()
    timer = threading.Timer(20, stop.set)
    timer.start()
    try:
        identity, _ = join_swarm(
            tmp / name, addr_of(n), token or worker_token(n), NodeDescription(hostname=name), stop
        )
    finally:
        timer.cancel()
    return identity


class Client:
    """A node's transport as an attacker (or a well-behaved worker) drives it."""

    def __init__(self, n: SwarmNode, keys: CurveKeys, node_id: str) -> None:
        self.manager_id = n.node_id
        self.node_id = node_id
        self.bus = ZmqBus(node_id, keys)
        self.bus.start()
        self.bus.dial(n.node_id, addr_of(n), n.store.clusters()[0].server_key.public)

    def ask(self, actor: str, body: Body, timeout: float = 3.0) -> Future[Body]:
        env = Envelope(self.node_id, self.manager_id, actor, body)
        return self.bus.request(env, timeout)

    def register(self, timeout: float = 5.0) -> Body:
        return self.ask("dispatcher", Register(7, NodeDescription()), timeout).result(timeout + 5)

    def close(self) -> None:
        self.bus.stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def client_of(n: SwarmNode, identity: Identity, made: list[Client]) -> Client:
    keys = CurveKeys(identity.keypair.public, identity.keypair.secret)
    c = Client(n, keys, identity.node_id)
    made.append(c)
    return c


def still_serving(n: SwarmNode, client: ControlClient, made: list[Client], tmp: Path) -> None:
    """The control API answers and a worker that joins now gets a session."""
    assert client.call("node.list", {})["nodes"]
    fresh = client_of(n, join(n, tmp, f"fresh-{random.random():.6f}"), made)
    assert isinstance(fresh.register(), Registered)


def refused_in_log(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# --- joining ------------------------------------------------------------------------


def test_bad_tokens_are_refused_and_never_logged(
    manager: tuple[SwarmNode, ControlClient],
    tmp_path: Path,
    clients: list[Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    n, client = manager
    good = worker_token(n)
    wrong_secret = good[:-25] + ("0" * 25 if not good.endswith("0" * 25) else "1" * 25)
    with pytest.raises(JoinRefused, match=r"^join refused: invalid join token$"):
        join(n, tmp_path, "wrong", wrong_secret)
    assert refused_in_log(caplog, "refused a join from 127.0.0.1: invalid join token")

    other_swarm = new_token(certs.new_curve_keypair().public)
    with pytest.raises(JoinRefused, match="token is for another swarm"):
        join(n, tmp_path, "other", other_swarm)
    wait_until(lambda: stats(n)["handshake_failures"] > 0, what="the manager saw it")

    # Rotated away: refused; the node that joined with it stays.
    member = join(n, tmp_path, "member", good)
    outcome = Handlers().handle(n.store, "cluster.update", {"ref": "default", "rotate": ["worker"]})
    assert isinstance(outcome, Write)
    n.write(outcome.build(n.store))
    with pytest.raises(JoinRefused, match=r"^join refused: invalid join token$"):
        join(n, tmp_path, "late", good)
    assert n.store.get_node(member.node_id) is not None
    join(n, tmp_path, "new", worker_token(n))

    # The manager token makes a manager, and hands it the managers' server key.
    boss = join(n, tmp_path, "boss", n.store.clusters()[0].join_tokens.manager)
    assert boss.role == NodeRole.MANAGER
    server = files.load_server_key(tmp_path / "boss")
    assert server is not None and server == n.store.clusters()[0].server_key

    for token in (good, wrong_secret, other_swarm, worker_token(n)):
        assert not any(token in r.getMessage() for r in caplog.records)
        assert not any(token[-25:] in r.getMessage() for r in caplog.records)
    still_serving(n, client, clients, tmp_path)


def test_a_retried_join_gets_the_same_node(
    manager: tuple[SwarmNode, ControlClient], tmp_path: Path
) -> None:
    n, _ = manager
    first = join(n, tmp_path, "a")
    keys = CurveKeys(first.keypair.public, first.keypair.secret)
    retry = ZmqBus("", keys)
    retry.start()
    try:
        retry.dial("", addr_of(n), n.store.clusters()[0].server_key.public)
        from pyswarmkit.api.protocol import JoinAccepted

        env = Envelope("", "", "ca", JoinRequest(worker_token(n), NodeDescription(hostname="a")))
        again = retry.request(env, 5).result(10)
    finally:
        retry.stop()
    assert isinstance(again, JoinAccepted) and again.node_id == first.node_id
    assert len([x for x in n.store.nodes() if x.description.hostname == "a"]) == 1


# --- garbage on the port ----------------------------------------------------------------


def test_plaintext_zeromq_and_raw_bytes_deliver_nothing(
    manager: tuple[SwarmNode, ControlClient],
    tmp_path: Path,
    clients: list[Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    n, client = manager
    before = stats(n)
    ctx = zmq.Context()
    try:
        plain = ctx.socket(zmq.DEALER)
        plain.linger = 0
        plain.connect(f"tcp://{addr_of(n)}")
        plain.send(b"\x93\x01\x02\x03")
        wait_until(
            lambda: stats(n)["handshake_failures"] > before["handshake_failures"],
            what="the plaintext client's handshake refused",
        )
    finally:
        # Closes the socket too: a bare term() would wait for it for ever
        # when the wait above failed.
        ctx.destroy(linger=0)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", random.Random(1).randbytes(4096)):
        with socket.create_connection(("127.0.0.1", n.bus.port or 0), timeout=5) as s:  # type: ignore[union-attr]
            s.sendall(junk)
            s.settimeout(5)
            with contextlib.suppress(TimeoutError, ConnectionError):
                s.recv(1024)
    assert stats(n)["received"] == before["received"]
    assert refused_in_log(caplog, "handshake failed")
    still_serving(n, client, clients, tmp_path)


def test_malformed_and_oversized_frames_are_dropped_and_counted(
    manager: tuple[SwarmNode, ControlClient], tmp_path: Path, clients: list[Client]
) -> None:
    n, client = manager
    me = join(n, tmp_path, "w")
    server = n.store.clusters()[0].server_key.public
    ctx = zmq.Context()
    try:
        raw = ctx.socket(zmq.DEALER)
        raw.linger = 0
        raw.curve_secretkey = zmq.utils.z85.encode(me.keypair.secret)
        raw.curve_publickey = zmq.utils.z85.encode(me.keypair.public)
        raw.curve_serverkey = zmq.utils.z85.encode(server)
        raw.connect(f"tcp://{addr_of(n)}")
        before = stats(n)
        raw.send(b"\xc1 not msgpack")
        raw.send(b"\x91\x95\x01\x02")  # an array of an envelope with missing fields
        wait_until(lambda: stats(n)["malformed"] >= before["malformed"] + 2, what="malformed")
        raw.send(b"\x00" * (17 * 1024 * 1024))
        raw.close()
    finally:
        ctx.term()
    assert stats(n)["received"] == before["received"]
    still_serving(n, client, clients, tmp_path)


# --- stolen, foreign, stale and insufficient credentials ----------------------------------


def test_unknown_and_foreign_keys_may_only_join(
    manager: tuple[SwarmNode, ControlClient],
    tmp_path: Path,
    clients: list[Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    n, client = manager
    stranger = Client(n, CurveKeys.generate(), "")
    clients.append(stranger)
    with pytest.raises(DeadlineExceeded):
        stranger.ask("dispatcher", Register(1, NodeDescription())).result(10)
    # Claiming to be a member does not help without its key.
    member = join(n, tmp_path, "member")
    impostor = Client(n, CurveKeys.generate(), member.node_id)
    clients.append(impostor)
    with pytest.raises(PermissionDenied, match="unknown node key"):
        impostor.register()
    # A node of another swarm: its certificate is from another CA, its key is unknown here.
    with one_node(listen_remote_api="127.0.0.1:0") as (other, _):
        foreign = join(other, tmp_path, "foreign")
    with pytest.raises(PermissionDenied, match="unknown node key"):
        client_of(n, foreign, clients).register()
    with pytest.raises(files.CertificateError, match="not signed by this swarm's CA"):
        certs.verify(
            foreign.cert_pem,
            n.store.clusters()[0].root_ca.cert_pem,
            0 + foreign.info.not_before + 60,
        )
    assert refused_in_log(caplog, "only join is allowed without a certificate")
    still_serving(n, client, clients, tmp_path)


def test_a_worker_may_not_call_manager_methods(
    manager: tuple[SwarmNode, ControlClient], tmp_path: Path, clients: list[Client]
) -> None:
    n, client = manager
    w = client_of(n, join(n, tmp_path, "w"), clients)
    assert isinstance(w.register(), Registered)
    for actor, body in (
        ("store", Heartbeat("x")),
        ("control", Heartbeat("x")),
        ("ca", Register(1, NodeDescription())),
        ("scheduler", Heartbeat("x")),
    ):
        with pytest.raises(PermissionDenied, match=f"is a worker and may not call {actor}"):
            w.ask(actor, body).result(10)
    still_serving(n, client, clients, tmp_path)


def test_expired_and_removed_nodes_are_refused_on_their_next_message(
    manager: tuple[SwarmNode, ControlClient], tmp_path: Path, clients: list[Client]
) -> None:
    n, client = manager
    old = client_of(n, join(n, tmp_path, "old"), clients)
    gone = client_of(n, join(n, tmp_path, "gone"), clients)
    assert isinstance(old.register(), Registered)
    assert isinstance(gone.register(), Registered)

    def expire() -> bool:
        # Read and write again if the node's registration changed it between.
        node = n.store.get_node(old.node_id)
        assert node is not None and node.certificate is not None
        expired = replace(node.certificate, not_after=1.0)
        try:
            n.write([Change("update", replace(node, certificate=expired))])
        except Conflict:
            return False
        return True

    wait_until(expire, what="the certificate expired in the store")
    with pytest.raises(PermissionDenied, match=f"certificate of node {old.node_id} expired"):
        old.register()

    def remove() -> bool:
        victim = n.store.get_node(gone.node_id)
        assert victim is not None
        try:
            n.write([Change("delete", victim)])
        except Conflict:
            return False
        return True

    wait_until(remove, what="the node removed")
    # Its key is unknown now, and it is told why.
    with pytest.raises(PermissionDenied, match=r"^this node was removed from the swarm$"):
        gone.register()
    still_serving(n, client, clients, tmp_path)


def test_the_old_key_is_refused_once_the_new_one_is_used(
    manager: tuple[SwarmNode, ControlClient], tmp_path: Path, clients: list[Client]
) -> None:
    n, client = manager
    identity = join(n, tmp_path, "r")
    before = client_of(n, identity, clients)
    assert isinstance(before.register(), Registered)

    # The answer to a renewal can be lost: the node, still on its old key, asks again.
    lost = certs.new_curve_keypair()
    assert isinstance(before.ask("ca", RenewCertificate(lost.public)).result(10), CertificateIssued)
    assert isinstance(before.register(), Registered)
    fresh = certs.new_curve_keypair()
    issued = before.ask("ca", RenewCertificate(fresh.public)).result(10)
    assert isinstance(issued, CertificateIssued)
    info = certs.verify(issued.certificate, issued.root_ca, identity.info.not_before + 60)
    assert info.curve_key == fresh.public and info.node_id == identity.node_id

    # The node speaks with its new key: from then on the old one is refused,
    # and so is the key of the renewal whose answer was lost.
    renewed = Client(n, CurveKeys(fresh.public, fresh.secret), identity.node_id)
    clients.append(renewed)
    assert isinstance(renewed.register(), Registered)
    wait_until(lambda: not n.auth.renewing, what="the old key retired after the new one was used")
    with pytest.raises(PermissionDenied, match="unknown node key"):
        before.register()
    ghost = Client(n, CurveKeys(lost.public, lost.secret), identity.node_id)
    clients.append(ghost)
    with pytest.raises(PermissionDenied, match="unknown node key"):
        ghost.register()
    node = n.store.get_node(identity.node_id)
    assert node is not None and node.status.state == NodeState.READY
    still_serving(n, client, clients, tmp_path)


def test_a_forged_reply_cannot_answer_someone_elses_request(
    manager: tuple[SwarmNode, ControlClient], tmp_path: Path, clients: list[Client]
) -> None:
    n, _ = manager
    w = client_of(n, join(n, tmp_path, "w"), clients)
    assert isinstance(w.register(), Registered)
    assert isinstance(n.bus, ZmqBus)
    # The manager asks the worker something; a stranger answers in its place.
    pending = n.bus.request(Envelope(n.node_id, w.node_id, "agent", Heartbeat("?")), 3)
    forger = ZmqBus("", CurveKeys.generate())
    forger.start()
    try:
        forger.dial("", addr_of(n), n.store.clusters()[0].server_key.public)
        bogus = JoinRequest("x", NodeDescription())
        forger.send(Envelope("", "", "ca", bogus, reply_to=_pending_id(n.bus)))
        with pytest.raises(DeadlineExceeded):
            pending.result(10)
    finally:
        forger.stop()


def _pending_id(bus: ZmqBus) -> int:
    ids = list(bus._pending)  # the id a forger would have to guess
    assert len(ids) == 1
    return ids[0]
