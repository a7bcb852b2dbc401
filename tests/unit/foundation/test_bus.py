"""Envelopes as bytes: every protocol message round-trips, deadlines cross as
time left, and whatever does not decode into the declared types is refused
where it arrives."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pykka
import pytest

from pyswarmkit.actors.messages import Deliver
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.objects import (
    NodeDescription,
    Platform,
    Resources,
    Task,
    TaskStatus,
)
from pyswarmkit.api.protocol import (
    PROTOCOL_VERSION,
    Acked,
    Assignments,
    AssignmentsRequest,
    Body,
    Error,
    Heartbeat,
    HeartbeatAck,
    Leave,
    Register,
    Registered,
    StatusUpdate,
    UpdateTaskStatus,
    UpdateTaskStatusAck,
)
from pyswarmkit.api.states import TaskState
from pyswarmkit.transport import bus as busmod
from pyswarmkit.transport.bus import (
    Envelope,
    LocalBus,
    ProtocolError,
    decode_envelope,
    encode_envelope,
)

pytestmark = pytest.mark.unit

DESC = NodeDescription(
    hostname="w1",
    platform=Platform("linux", "x86_64"),
    resources=Resources(nano_cpus=2_000_000_000, memory_bytes=1 << 30, generic={"gpu": 2}),
)
TASK = Task(id="t1", node_id="n1", status=TaskStatus(timestamp=1.7e9, state=TaskState.ASSIGNED))

BODIES: list[Body] = [
    Register(7, DESC),
    Registered(7, "s1", 5.0),
    Heartbeat("s1"),
    HeartbeatAck(5.0, 3),
    UpdateTaskStatus("s1", (StatusUpdate("t1", TASK.status),)),
    UpdateTaskStatusAck("s1", (Acked("t1", TaskState.RUNNING),)),
    Assignments("s1", False, 3, 4, (TASK,), ("t0",)),
    AssignmentsRequest("s1"),
    Leave("s1"),
    Error("not_found", "session invalid: register again", "heartbeat", "s1"),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.kind)
def test_every_message_round_trips(body: Body) -> None:
    env = Envelope("a", "b", "dispatcher", body, reply_to=12)
    back = decode_envelope(encode_envelope(env, 0.0), 0.0)
    assert back == env
    assert back.kind == body.kind


def test_a_deadline_crosses_as_time_left() -> None:
    env = Envelope("a", "b", "agent", Heartbeat("s1"), deadline=103.0)
    data = encode_envelope(env, 100.0)  # sender's clock: 3 s left
    back = decode_envelope(data, 5000.0)  # the receiver's clock has another origin
    assert back.deadline == pytest.approx(5003.0)
    assert not back.expired(5002.9)
    assert back.expired(5003.1)
    late = decode_envelope(encode_envelope(env, 104.0), 7.0)
    assert late.deadline == 7.0
    assert (
        decode_envelope(encode_envelope(Envelope("a", "b", "c", Leave("s")), 1.0), 2.0).deadline
        is None
    )


def _wire(body: Any, version: int = PROTOCOL_VERSION, ttl: Any = None) -> bytes:
    return msgspec.msgpack.encode([version, 1, 0, "a", "b", "dispatcher", ttl, body])


def _set(obj: Any, path: str, value: Any) -> Any:
    """``obj`` as plain data (a map or an array, however its class encodes),
    with the field at ``path`` set to ``value``."""
    data = msgspec.to_builtins(obj)
    here, names = data, path.split(".")
    for i, name in enumerate(names):
        key = name if isinstance(here, dict) else type(obj).__struct_fields__.index(name)
        if i == len(names) - 1:
            here[key] = value
        else:
            here, obj = here[key], getattr(obj, name)
    return data


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xc1garbage", "malformed"),
        (_wire([1, 7, _set(DESC, "resources.nano_cpus", "lots")]), "Expected `int`, got `str`"),
        (_wire([1, "7", msgspec.to_builtins(DESC)]), "Expected `int`, got `str`"),
        (_wire([99, "s1"]), "Invalid value 99"),
        (_wire([3]), "Expected `array` of at least length 2"),
        (_wire([10, "bogus", "m"]), "Invalid enum value 'bogus'"),
        (_wire([5, "s1", [["t1", _set(TASK.status, "state", 12345)]]]), "Invalid enum value 12345"),
        (_wire([3, "s1"], version=PROTOCOL_VERSION + 1), "protocol version"),
        (_wire([3, "s1"], ttl="soon"), "Expected `float | null`, got `str`"),
        (_wire([3, "s1"], ttl=float("nan")), "Expected `float` >= 0.0"),
        (_wire([3, "s1"], ttl=-1.0), "Expected `float` >= 0.0"),
        (_wire([2, 7, "s1", 0.0]), "Expected `float` > 0.0"),
        (_wire([4, float("nan"), 1]), "Expected `float` > 0.0"),
        (_wire([7, "s1", False, 2**64 - 1, 1]), "Expected `int` <= 9223372036854775807"),
    ],
)
def test_what_does_not_decode_is_refused_saying_why(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode_envelope(data, 0.0)


def test_an_oversized_message_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(busmod, "MAX_MESSAGE_BYTES", 100)
    with pytest.raises(ProtocolError, match="exceeds 100"):
        decode_envelope(_wire([3, "s" * 200]), 0.0)


def test_a_field_from_a_newer_peer_is_ignored() -> None:
    env = decode_envelope(_wire([3, "s1", "something new"]), 0.0)
    assert env.body == Heartbeat("s1")


class Inbox(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[Deliver] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            self.got.append(message)
        return list(self.got)


@pytest.fixture
def two_nodes() -> Any:
    bus = LocalBus()
    regs = {n: Registry(n) for n in ("a", "b")}
    refs = {n: Inbox.start() for n in regs}
    for n, reg in regs.items():
        reg.add("dispatcher", refs[n])
    bus.attach(regs["a"], addr="10.0.0.7")
    bus.attach(regs["b"])
    yield bus, refs
    for ref in refs.values():
        ref.stop()


def test_the_local_bus_delivers_with_the_senders_address(two_nodes: Any) -> None:
    bus, refs = two_nodes
    assert bus.send(Envelope("a", "b", "dispatcher", Heartbeat("s1")))
    (got,) = refs["b"].ask("inbox")
    assert (got.envelope.source, got.envelope.body, got.addr) == ("a", Heartbeat("s1"), "10.0.0.7")
    assert not bus.send(Envelope("a", "nowhere", "dispatcher", Heartbeat("s1")))
    assert bus.dropped == 1


def test_the_local_bus_refuses_bad_bytes_with_one_line_and_counts_them(
    two_nodes: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bus, refs = two_nodes
    caplog.set_level(logging.WARNING)
    bad = Envelope(
        "a", "b", "dispatcher", Register(1, NodeDescription(resources=Resources(nano_cpus="lots")))
    )  # type: ignore[arg-type]
    assert not bus.send(bad)
    assert not bus.deliver(
        encode_envelope(Envelope("a", "b", "dispatcher", Heartbeat("s")), 0.0), "b"
    )
    assert bus.refused == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "refused a message from a: Expected `int`, got `str`" in lines[0]
    assert "sender b claims to be a" in lines[1]
    assert refs["b"].ask("inbox") == []
