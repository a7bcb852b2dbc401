"""ZmqBus over real sockets on 127.0.0.1: CurveZMQ everywhere, per-message
authorization through a hook, typed errors, reconnection, and the attacks a
listening port must shrug off."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import zmq
from helpers import wait_until
from zmq.utils import z85

from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Deliver
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import DeadlineExceeded, PermissionDenied, Unavailable
from pyswarmkit.api.objects import NodeDescription
from pyswarmkit.api.protocol import Error, Heartbeat, HeartbeatAck, JoinRequest
from pyswarmkit.transport.bus import Envelope, encode_envelope
from pyswarmkit.transport.frames import frame_of
from pyswarmkit.transport.zmq_bus import ANONYMOUS_PREFIX, CurveKeys, ZmqBus, anonymous_id

pytestmark = pytest.mark.integration

MANAGER = "manager-1"


class Recorder(GuardedActor):
    """Keeps what it is delivered; answers heartbeats when asked to."""

    name = "recorder"

    def __init__(self, got: list[Deliver], lock: threading.Lock, bus: ZmqBus, answer: bool) -> None:
        super().__init__()
        self.bus = bus
        self.answer = answer
        self.got = got
        self.lock = lock

    def handle(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            with self.lock:
                self.got.append(message)
            env = message.envelope
            if self.answer and self.bus is not None and isinstance(env.body, Heartbeat):
                self.bus.send(
                    Envelope(env.dest_node, env.source, "agent", HeartbeatAck(5.0), reply_to=env.id)
                )
        return None


class Hook:
    """Authorization by key: known keys are the node they map to; unknown keys
    may only join (and become their anonymous id)."""

    def __init__(self) -> None:
        self.known: dict[bytes, str] = {}
        self.calls = 0

    def __call__(self, key: bytes, env: Envelope) -> str:
        self.calls += 1
        node = self.known.get(key)
        if node is None:
            if env.kind == "join" and env.dest_actor == "ca":
                return anonymous_id(key)
            raise PermissionDenied("unknown key: only join is allowed")
        if env.source != node:
            raise PermissionDenied(f"key belongs to {node}, not {env.source}")
        return node


class Node:
    def __init__(self, bus: ZmqBus, node_id: str, answer: bool = False) -> None:
        self.bus = bus
        self.registry = Registry(node_id)
        self._got: list[Deliver] = []
        self._lock = threading.Lock()
        self.ref = Recorder.start(self._got, self._lock, bus, answer)
        for name in ("agent", "dispatcher", "ca"):
            self.registry.add(name, self.ref)
        bus.attach(self.registry)

    def got(self) -> list[Deliver]:
        with self._lock:
            return list(self._got)

    def stop(self) -> None:
        self.ref.stop(timeout=5)


@pytest.fixture
def server_keys() -> CurveKeys:
    return CurveKeys.generate()


@pytest.fixture
def hook() -> Hook:
    return Hook()


@pytest.fixture
def manager(server_keys: CurveKeys, hook: Hook) -> Iterator[Node]:
    bus = ZmqBus(
        MANAGER,
        CurveKeys.generate(),
        listen="127.0.0.1:0",
        server=server_keys,
        authorize=hook,
    )
    bus.start()
    node = Node(bus, MANAGER, answer=True)
    yield node
    bus.stop()
    node.stop()


def worker_of(
    manager: Node, server_keys: CurveKeys, node_id: str, keys: CurveKeys, **kw: Any
) -> Node:
    bus = ZmqBus(node_id, keys, **kw)
    bus.start()
    bus.dial(MANAGER, f"127.0.0.1:{manager.bus.port}", server_keys.public)
    bus.set_default_route(MANAGER)
    return Node(bus, node_id)


@pytest.fixture
def worker(manager: Node, server_keys: CurveKeys, hook: Hook) -> Iterator[Node]:
    keys = CurveKeys.generate()
    hook.known[keys.public] = "worker-1"
    node = worker_of(manager, server_keys, "worker-1", keys)
    yield node
    node.bus.stop()
    node.stop()


def beat(src: str, dest: str, session: str = "s", **kw: Any) -> Envelope:
    return Envelope(src, dest, kw.pop("actor", "dispatcher"), Heartbeat(session), **kw)


def sessions(node: Node) -> list[str]:
    return [
        d.envelope.body.session_id for d in node.got() if isinstance(d.envelope.body, Heartbeat)
    ]


def test_one_way_both_directions(manager: Node, worker: Node) -> None:
    assert worker.bus.send(beat("worker-1", MANAGER, "up"))
    got = wait_until(lambda: [d for d in manager.got() if d.envelope.kind == "heartbeat"], 10)
    assert got[0].envelope.source == "worker-1"
    assert got[0].addr == "127.0.0.1"
    # The answer goes back over the connection the worker's message came on.
    got = wait_until(lambda: [d for d in worker.got() if d.envelope.kind == "heartbeat_ack"], 10)
    assert got[0].envelope.source == MANAGER
    assert manager.bus.send(beat(MANAGER, "worker-1", "down", actor="agent"))
    wait_until(lambda: "down" in sessions(worker), 10)
    assert worker.bus.stats()["received"] >= 2


def test_many_messages_arrive_in_order_in_few_frames(manager: Node, worker: Node) -> None:
    n = 2000
    for i in range(n):
        worker.bus.send(beat("worker-1", MANAGER, str(i)))
    wait_until(lambda: len(sessions(manager)) == n, 20)
    assert sessions(manager) == [str(i) for i in range(n)]
    stats = worker.bus.stats()
    assert stats["sent"] == n
    assert stats["frames_out"] < n


def test_request_reply(manager: Node, worker: Node) -> None:
    fut = worker.bus.request(beat("worker-1", MANAGER, "rr"), timeout=10)
    assert fut.result(10) == HeartbeatAck(5.0)
    # The reply resolved the future rather than reaching the worker's actor.
    assert not worker.got()


def test_request_timeout(manager: Node, worker: Node) -> None:
    # The manager has no actor "nobody": nothing answers.
    env = beat("worker-1", MANAGER, actor="nobody")
    t0 = time.monotonic()
    fut = worker.bus.request(env, timeout=0.3)
    with pytest.raises(DeadlineExceeded):
        fut.result(10)
    assert time.monotonic() - t0 < 5


def test_request_without_route_is_unavailable(server_keys: CurveKeys) -> None:
    bus = ZmqBus("lonely", CurveKeys.generate())
    bus.start()
    try:
        with pytest.raises(Unavailable):
            bus.request(beat("lonely", "elsewhere"), timeout=10).result(10)
        assert bus.stats()["no_route"] == 1
    finally:
        bus.stop()


def test_refused_request_gets_permission_denied(
    manager: Node, worker: Node, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    # The worker claims to be another node: the hook refuses, and the error
    # comes back as the reply rather than a silence.
    caplog.set_level(logging.WARNING)
    fut = worker.bus.request(beat("worker-2", MANAGER), timeout=10)
    with pytest.raises(PermissionDenied, match="not worker-2"):
        fut.result(10)
    assert manager.bus.stats()["refused"] == 1
    assert not sessions(manager)
    assert "refused heartbeat" in caplog.text


def test_refusals_are_logged_at_most_once_per_key(
    manager: Node, worker: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(50):
        worker.bus.send(beat("worker-2", MANAGER))
    wait_until(lambda: manager.bus.stats()["refused"] == 50, 10)
    assert caplog.text.count("refused heartbeat") == 1


def test_anonymous_join_is_routed_back_and_other_calls_are_refused_silently(
    manager: Node, server_keys: CurveKeys
) -> None:
    keys = CurveKeys.generate()
    joiner = worker_of(manager, server_keys, "joining", keys)
    try:
        join = Envelope("", "", "ca", JoinRequest("SWMTKN-1-secret", NodeDescription("h")))
        assert joiner.bus.send(join)
        got = wait_until(lambda: [d for d in manager.got() if d.envelope.kind == "join"], 10)
        me = anonymous_id(keys.public)
        assert got[0].envelope.source == me
        # The manager answers the anonymous id over the joiner's connection.
        manager.bus.send(Envelope(MANAGER, me, "agent", HeartbeatAck(1.0), reply_to=join.id))
        wait_until(lambda: [d for d in joiner.got() if d.envelope.kind == "heartbeat_ack"], 10)
        # Anything but join from an unknown key: refused, and no answer.
        fut = joiner.bus.request(Envelope("", "", "dispatcher", Heartbeat("x")), timeout=0.5)
        with pytest.raises(DeadlineExceeded):
            fut.result(10)
        assert manager.bus.stats()["refused"] == 1
    finally:
        joiner.bus.stop()
        joiner.stop()


def test_refused_join_gets_an_error(manager: Node, server_keys: CurveKeys, hook: Hook) -> None:
    keys = CurveKeys.generate()

    def refuse_all(key: bytes, env: Envelope) -> str:
        raise PermissionDenied("join refused: invalid join token")

    manager.bus._authorize = refuse_all
    joiner = worker_of(manager, server_keys, "joining", keys)
    try:
        join = Envelope("", "", "ca", JoinRequest("SWMTKN-1-bad", NodeDescription("h")))
        with pytest.raises(PermissionDenied, match="invalid join token"):
            joiner.bus.request(join, timeout=10).result(10)
    finally:
        joiner.bus.stop()
        joiner.stop()


def test_join_token_never_logged(
    manager: Node, server_keys: CurveKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def refuse_all(key: bytes, env: Envelope) -> str:
        raise PermissionDenied("join refused: invalid join token")

    manager.bus._authorize = refuse_all
    joiner = worker_of(manager, server_keys, "joining", CurveKeys.generate())
    try:
        join = Envelope("", "", "ca", JoinRequest("SWMTKN-1-topsecret", NodeDescription("h")))
        with pytest.raises(PermissionDenied):
            joiner.bus.request(join, timeout=10).result(10)
        assert "refused join" in caplog.text
        assert "topsecret" not in caplog.text
    finally:
        joiner.bus.stop()
        joiner.stop()


def test_dealer_reconnects_after_the_manager_restarts(server_keys: CurveKeys, hook: Hook) -> None:
    def manager_on(port: int) -> Node:
        bus = ZmqBus(
            MANAGER,
            CurveKeys.generate(),
            listen=f"127.0.0.1:{port}",
            server=server_keys,
            authorize=hook,
        )
        bus.start()
        return Node(bus, MANAGER)

    first = manager_on(0)
    port = first.bus.port
    assert port
    keys = CurveKeys.generate()
    hook.known[keys.public] = "worker-1"
    worker = worker_of(first, server_keys, "worker-1", keys)
    second: Node | None = None
    try:
        worker.bus.send(beat("worker-1", MANAGER, "before"))
        wait_until(lambda: "before" in sessions(first), 10)
        first.bus.stop()
        first.stop()
        second = manager_on(port)

        def arrived() -> bool:
            # Lost in the gap or not, the protocols resend: so does this test.
            worker.bus.send(beat("worker-1", MANAGER, "after"))
            return "after" in sessions(second)  # type: ignore[union-attr]

        wait_until(arrived, 20, interval=0.2)
    finally:
        worker.bus.stop()
        worker.stop()
        if second is not None:
            second.bus.stop()
            second.stop()


def test_oversized_frame_is_dropped_and_counted(
    server_keys: CurveKeys, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    mbus = ZmqBus(
        MANAGER,
        CurveKeys.generate(),
        listen="127.0.0.1:0",
        server=server_keys,
        authorize=hook,
        max_frame=64 * 1024,
    )
    mbus.start()
    manager = Node(mbus, MANAGER)
    keys = CurveKeys.generate()
    hook.known[keys.public] = "worker-1"
    worker = worker_of(manager, server_keys, "worker-1", keys, max_frame=64 * 1024)
    try:
        big = Envelope("worker-1", MANAGER, "dispatcher", Error("internal", "x" * 100_000))
        # Refused before it is sent.
        fut = worker.bus.request(big, timeout=10)
        with pytest.raises(Unavailable, match="frame cap"):
            fut.result(10)
        assert worker.bus.stats()["dropped_oversize"] == 1
        assert "dropped a error of" in caplog.text
        # A peer that sends one anyway (a raw DEALER with a valid key) loses
        # its connection; the manager goes on serving.
        raw = curve_dealer(mbus.port, server_keys, keys)
        try:
            raw.send(frame_of([encode_envelope(big, time.monotonic())]))
            wait_until(lambda: mbus.stats().get("disconnects", 0) >= 1, 10)
        finally:
            raw.close(0)
        assert not manager.got()
        worker.bus.send(beat("worker-1", MANAGER, "still"))
        wait_until(lambda: "still" in sessions(manager), 10)
    finally:
        worker.bus.stop()
        worker.stop()
        mbus.stop()
        manager.stop()


_ctx = zmq.Context.instance()


def curve_dealer(port: int | None, server: CurveKeys, keys: CurveKeys) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = _ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.CURVE_SERVERKEY, server.public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def test_malformed_frames_are_dropped_and_counted(
    manager: Node,
    worker: Node,
    server_keys: CurveKeys,
    hook: Hook,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    keys = CurveKeys.generate()
    hook.known[keys.public] = "worker-9"
    raw = curve_dealer(manager.bus.port, server_keys, keys)
    try:
        bad_version = msgspec.msgpack.encode(
            [[99, 1, 0, "worker-9", MANAGER, "dispatcher", None, [3, "s"]]]
        )
        wrong_type = msgspec.msgpack.encode([[1, 1, 0, "worker-9", MANAGER, "dispatcher", None, 7]])
        for payload in (b"\xc1\xc1not msgpack", b"\x91", wrong_type, bad_version, b"a", b""):
            raw.send(payload)
        raw.send_multipart([b"two", b"parts"])
        wait_until(lambda: manager.bus.stats().get("malformed", 0) == 7, 10)
    finally:
        raw.close(0)
    assert "malformed frame" in caplog.text
    assert not manager.got()
    worker.bus.send(beat("worker-1", MANAGER, "fine"))
    wait_until(lambda: "fine" in sessions(manager), 10)


def test_plaintext_zmq_client_is_refused(manager: Node, worker: Node) -> None:
    sock: zmq.Socket[bytes] = _ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{manager.bus.port}")
    try:
        payload = frame_of([encode_envelope(beat("worker-1", MANAGER, "plain"), time.monotonic())])
        sock.send(payload, zmq.NOBLOCK)
        wait_until(lambda: manager.bus.stats().get("handshake_failures", 0) >= 1, 10)
    finally:
        sock.close(0)
    worker.bus.send(beat("worker-1", MANAGER, "curve"))
    wait_until(lambda: "curve" in sessions(manager), 10)
    assert "plain" not in sessions(manager)


def test_raw_bytes_on_the_port(manager: Node, worker: Node) -> None:
    port = manager.bus.port
    assert port
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff" * 64, b"\x00" * 3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(junk)
    wait_until(lambda: manager.bus.stats().get("handshake_failures", 0) >= 3, 10)
    assert not manager.got()
    worker.bus.send(beat("worker-1", MANAGER, "after junk"))
    wait_until(lambda: "after junk" in sessions(manager), 10)


def test_wrong_server_key_cannot_deliver(manager: Node, server_keys: CurveKeys, hook: Hook) -> None:
    keys = CurveKeys.generate()
    hook.known[keys.public] = "worker-1"
    bus = ZmqBus("worker-1", keys)
    bus.start()
    bus.dial(MANAGER, f"127.0.0.1:{manager.bus.port}", CurveKeys.generate().public)
    try:
        bus.send(beat("worker-1", MANAGER, "impostor"))
        wait_until(lambda: manager.bus.stats().get("handshake_failures", 0) >= 1, 10)
        wait_until(lambda: bus.stats().get("handshake_failures", 0) >= 1, 10)
        assert not manager.got()
    finally:
        bus.stop()


def test_rekey_keeps_the_exchange_and_the_old_key_is_refused(
    manager: Node, server_keys: CurveKeys, hook: Hook
) -> None:
    old = CurveKeys.generate()
    hook.known[old.public] = "worker-1"
    worker = worker_of(manager, server_keys, "worker-1", old)
    replay: ZmqBus | None = None
    try:
        assert worker.bus.request(beat("worker-1", MANAGER, "1"), 10).result(10) == HeartbeatAck(
            5.0
        )
        # Renewal: the manager learns the new key, then forgets the old one.
        new = CurveKeys.generate()
        hook.known[new.public] = "worker-1"
        worker.bus.rekey(new)
        # Queued behind the rekey: sent over the new connection, not lost.
        for i in range(20):
            worker.bus.send(beat("worker-1", MANAGER, f"q{i}"))
        wait_until(lambda: all(f"q{i}" in sessions(manager) for i in range(20)), 10)
        del hook.known[old.public]
        assert worker.bus.request(beat("worker-1", MANAGER, "2"), 10).result(10) == HeartbeatAck(
            5.0
        )
        refused = manager.bus.stats().get("refused", 0)
        # Someone holding the old key: refused.
        replay = ZmqBus("worker-1", old)
        replay.start()
        replay.dial(MANAGER, f"127.0.0.1:{manager.bus.port}", server_keys.public)
        with pytest.raises(PermissionDenied):
            replay.request(beat("worker-1", MANAGER, "old"), 10).result(10)
        assert manager.bus.stats()["refused"] == refused + 1
        assert "old" not in sessions(manager)
    finally:
        worker.bus.stop()
        worker.stop()
        if replay is not None:
            replay.stop()


def test_local_delivery_touches_no_socket(manager: Node) -> None:
    before = manager.bus.stats()
    assert manager.bus.send(beat(MANAGER, MANAGER, "self"))
    wait_until(lambda: "self" in sessions(manager), 10)
    after = manager.bus.stats()
    assert after.get("frames_out", 0) == before.get("frames_out", 0)
    assert after["local"] == before.get("local", 0) + 2  # the heartbeat and its answer
    # A local reply resolves a local request.
    assert manager.bus.request(beat(MANAGER, MANAGER, "r"), 10).result(10) == HeartbeatAck(5.0)


def test_stop_is_prompt_and_leaves_no_thread(server_keys: CurveKeys, hook: Hook) -> None:
    bus = ZmqBus(
        MANAGER, CurveKeys.generate(), listen="127.0.0.1:0", server=server_keys, authorize=hook
    )
    bus.start()
    worker = ZmqBus("w", CurveKeys.generate())
    worker.start()
    worker.dial(MANAGER, f"127.0.0.1:{bus.port}", server_keys.public)
    pending = worker.request(beat("w", MANAGER), timeout=60)
    t0 = time.monotonic()
    worker.stop()
    bus.stop()
    assert time.monotonic() - t0 < 2
    with pytest.raises(Unavailable):
        pending.result(1)
    assert not [t for t in threading.enumerate() if t.name.startswith("zmq-bus")]
    assert not worker.send(beat("w", MANAGER))


def test_no_plaintext_listener_without_keys() -> None:
    with pytest.raises(ValueError, match="server keypair"):
        ZmqBus(MANAGER, CurveKeys.generate(), listen="127.0.0.1:0")


def test_the_user_id_is_the_curve_key(manager: Node, server_keys: CurveKeys, hook: Hook) -> None:
    seen: list[bytes] = []
    keys = CurveKeys.generate()

    def spy(key: bytes, env: Envelope) -> str:
        seen.append(key)
        return "spy"

    manager.bus._authorize = spy
    raw = curve_dealer(manager.bus.port, server_keys, keys)
    try:
        raw.send(frame_of([encode_envelope(beat("spy", MANAGER), time.monotonic())]))
        wait_until(lambda: seen, 10)
    finally:
        raw.close(0)
    assert seen == [keys.public]
    assert anonymous_id(keys.public) == ANONYMOUS_PREFIX + z85.encode(keys.public).decode()


def test_managers_do_not_forward(manager: Node, worker: Node) -> None:
    # Routed to the manager by default, but for another node: dropped there.
    assert worker.bus.send(beat("worker-1", "node-elsewhere", "fwd"))
    wait_until(lambda: manager.bus.stats()["misdirected"] == 1, 10)
    worker.bus.send(beat("worker-1", MANAGER, "direct"))
    wait_until(lambda: "direct" in sessions(manager), 10)
    assert "fwd" not in sessions(manager)


def test_a_port_in_use_is_reported(manager: Node, server_keys: CurveKeys, hook: Hook) -> None:
    bus = ZmqBus(
        "other",
        CurveKeys.generate(),
        listen=f"127.0.0.1:{manager.bus.port}",
        server=server_keys,
        authorize=hook,
    )
    with pytest.raises(Unavailable, match=r"cannot listen on 127\.0\.0\.1"):
        bus.start()
    bus.stop()
    assert not [t for t in threading.enumerate() if t.name == "zmq-bus-other"]


def test_bad_keys_are_refused_before_any_socket() -> None:
    with pytest.raises(ValueError, match="32 raw bytes"):
        CurveKeys(b"short", b"x" * 32)
    bus = ZmqBus("w", CurveKeys.generate())
    bus.start()
    try:
        with pytest.raises(ValueError, match="32 raw bytes"):
            bus.dial(MANAGER, "127.0.0.1:1", b"z85-text-is-not-raw")
        with pytest.raises(ValueError, match="HOST:PORT"):
            bus.dial(MANAGER, "127.0.0.1", b"k" * 32)
    finally:
        bus.stop()


def test_several_local_identities_on_one_bus_are_each_authorized_as_themselves(
    manager: Node, server_keys: CurveKeys, hook: Hook
) -> None:
    """An agent host holds many nodes on one bus: each dials the manager with
    its own client keypair, so the manager's hook sees each node's own key
    and each reply comes back to that node alone."""
    host = ZmqBus("host-1", CurveKeys.generate())
    host.start()
    addr = f"127.0.0.1:{manager.bus.port}"
    agents = []
    try:
        for name in ("agent-a", "agent-b"):
            keys = CurveKeys.generate()
            hook.known[keys.public] = name
            host.dial(MANAGER, addr, server_keys.public, keys=keys, local=name)
            agents.append(Node(host, name))
        for a in agents:
            host.send(Envelope(a.registry.node_id, MANAGER, "dispatcher", Heartbeat("s")))
        wait_until(lambda: len(manager.got()) == 2)
        # Authorized by the key of the connection it came over: each is itself.
        assert sorted(d.envelope.source for d in manager.got()) == ["agent-a", "agent-b"]
        assert host.stats()["refused"] == 0 and manager.bus.stats()["refused"] == 0
        # Each answer reaches the node it is for, over that node's connection.
        for a in agents:
            wait_until(lambda a=a: len(a.got()) == 1)
            assert a.got()[0].envelope.dest_node == a.registry.node_id
        # A node claiming another's id over its own connection is refused.
        host.send(Envelope("agent-b", MANAGER, "dispatcher", Heartbeat("s")), local="agent-a")
        wait_until(lambda: manager.bus.stats()["refused"] == 1)
        assert len(manager.got()) == 2
    finally:
        host.stop()
        for a in agents:
            a.stop()


def test_a_local_identity_can_join_over_its_own_connection(
    manager: Node, server_keys: CurveKeys, hook: Hook
) -> None:
    """A joiner on a shared bus sends with an empty source (as any joiner)
    over the connection it names with ``local``: the manager sees its key."""
    host = ZmqBus("host-1", CurveKeys.generate())
    host.start()
    keys = CurveKeys.generate()
    pending = anonymous_id(keys.public)
    try:
        host.dial(
            MANAGER, f"127.0.0.1:{manager.bus.port}", server_keys.public, keys=keys, local=pending
        )
        host.send(
            Envelope("", MANAGER, "ca", JoinRequest("t", NodeDescription(hostname="j"))),
            local=pending,
        )
        wait_until(lambda: len(manager.got()) == 1)
        assert manager.got()[0].envelope.source == pending
    finally:
        host.stop()
