"""Envelopes, their bytes, and the bus that carries them between (node, actor).

The agent and the dispatcher speak only through a ``Bus``. Every envelope
crosses it as bytes (``encode_envelope``) and is turned back into typed values
by one validating decoder where it arrives (``decode_envelope``): a message
that does not decode into exactly the declared types is refused there, with
one log line, and counted; it never reaches an actor. A network bus moves the
same bytes and adds only what the connection knows: who sent them (the
authenticated peer) and from which address.

Deadlines: an envelope holds its deadline on the sender's monotonic clock;
on the wire it becomes the time left (``ttl``), and the receiver turns that
back into a deadline on its own monotonic clock when the bytes arrive. Two
machines' monotonic clocks share no origin, so only durations cross. Time in
transit is not counted (as with gRPC's timeout header).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Annotated, Protocol

import msgspec
from zmq.utils import z85

from pyswarmkit import clock
from pyswarmkit.actors.messages import Deliver
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.objects import FLOAT_LIMIT, Int
from pyswarmkit.api.protocol import PROTOCOL_VERSION, Body

log = logging.getLogger(__name__)

# A frame larger than this is refused unread. A full assignment set for
# 100,000 tasks is well under it.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# What the LocalBus reports as a node's address unless told otherwise.
DEFAULT_ADDR = "127.0.0.1"

# Unique within a process run; the random start keeps ids of a restarted
# process apart from those of the run before.
_ids = itertools.count(random.SystemRandom().getrandbits(48) << 12)


def new_message_id() -> int:
    return next(_ids)


# A sender that holds no certificate yet (a joiner) is known by its CurveZMQ
# key, spelled in z85 after this prefix, so an answer finds its connection.
ANONYMOUS_PREFIX = "curve:"


def anonymous_id(key: bytes) -> str:
    """The id of a sender that holds no certificate: its key, spelled in z85."""
    return ANONYMOUS_PREFIX + z85.encode(key).decode("ascii")


def key_of_anonymous(sender: str) -> bytes | None:
    """The key inside an ``anonymous_id``; None for any other sender."""
    if not sender.startswith(ANONYMOUS_PREFIX):
        return None
    try:
        key = z85.decode(sender[len(ANONYMOUS_PREFIX) :].encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return key if len(key) == 32 else None


@dataclass(frozen=True, slots=True)
class Envelope:
    source: str
    dest_node: str
    dest_actor: str
    body: Body
    id: int = field(default_factory=new_message_id)
    # The id of the envelope this one answers; 0 when it answers none.
    reply_to: int = 0
    # On this machine's monotonic clock; None: no deadline.
    deadline: float | None = None
    version: int = PROTOCOL_VERSION

    @property
    def kind(self) -> str:
        return self.body.kind

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline


TimeLeft = Annotated[float, msgspec.Meta(ge=0, le=FLOAT_LIMIT)]


class _Wire(msgspec.Struct, frozen=True, array_like=True, gc=False):
    version: Int
    id: Int
    reply_to: Int
    source: str
    dest_node: str
    dest_actor: str
    # Seconds left before the deadline when sent; None: no deadline.
    ttl: TimeLeft | None
    body: Body


class ProtocolError(ValueError):
    """Bytes that are not a valid envelope of this protocol version."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Wire)
# Fields a newer peer appends are skipped unread, but skipping a value recurses
# into it: a deep enough nest there exhausts the stack.
_TOO_DEEP = "values nested too deeply"


def encode_envelope(env: Envelope, now: float) -> bytes:
    """The envelope's bytes; ``now`` is the sender's monotonic time."""
    ttl = None if env.deadline is None else max(0.0, env.deadline - now)
    wire = _Wire(
        env.version, env.id, env.reply_to, env.source, env.dest_node, env.dest_actor, ttl, env.body
    )
    return _encoder.encode(wire)


def decode_envelope(data: bytes, now: float) -> Envelope:
    """The envelope in ``data``, every field checked; ``now`` is the receiver's
    monotonic time. Raises ProtocolError saying what was wrong."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        wire = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(str(exc)) from None
    except RecursionError:
        raise ProtocolError(_TOO_DEEP) from None
    return _envelope_of(wire, now)


def _envelope_of(wire: _Wire, now: float) -> Envelope:
    if wire.version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {wire.version} from {wire.source[:64]!r}"
            f" (this node speaks {PROTOCOL_VERSION})"
        )
    ttl = wire.ttl
    deadline = None if ttl is None else now + ttl
    return Envelope(
        wire.source, wire.dest_node, wire.dest_actor, wire.body, wire.id, wire.reply_to, deadline
    )


_batch_decoder = msgspec.msgpack.Decoder(list[_Wire])


def decode_envelopes(data: bytes | memoryview, now: float) -> list[Envelope]:
    """The envelopes of a frame holding a MessagePack array of encoded
    envelopes (several ``encode_envelope`` outputs behind one array header).
    The frame is refused whole if any of them is not valid."""
    try:
        wires = _batch_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(str(exc)) from None
    except RecursionError:
        raise ProtocolError(_TOO_DEEP) from None
    return [_envelope_of(w, now) for w in wires]


class Bus(Protocol):
    def send(self, envelope: Envelope) -> bool:
        """Hand the message on; False if it could not be (unknown destination,
        or it does not encode)."""


class LocalBus:
    """Delivers between nodes living in this process, through the same bytes a
    network would carry: each envelope is encoded, then decoded and checked as
    it arrives."""

    def __init__(self) -> None:
        self._nodes: dict[str, Registry] = {}
        self._addrs: dict[str, str] = {}
        self._lock = threading.Lock()
        # Not delivered: unknown destination, or not encodable.
        self.dropped = 0
        # Refused where they arrived: malformed, oversized, wrong version or sender.
        self.refused = 0

    def attach(self, registry: Registry, addr: str = DEFAULT_ADDR) -> None:
        """``addr`` is what receivers see as this node's address on its connection."""
        with self._lock:
            self._nodes[registry.node_id] = registry
            self._addrs[registry.node_id] = addr

    def detach(self, node_id: str) -> None:
        with self._lock:
            self._nodes.pop(node_id, None)
            self._addrs.pop(node_id, None)

    def send(self, envelope: Envelope) -> bool:
        try:
            data = encode_envelope(envelope, clock.monotonic())
        except (TypeError, ValueError, OverflowError) as exc:
            with self._lock:
                self.dropped += 1
            log.error(
                "dropped %s to %s: cannot encode it: %s", envelope.kind, envelope.dest_node, exc
            )
            return False
        return self.deliver(data, envelope.source)

    def deliver(self, data: bytes, sender: str) -> bool:
        """Bytes from node ``sender`` (the identity its connection proves)."""
        with self._lock:
            addr = self._addrs.get(sender, DEFAULT_ADDR)
        try:
            env = decode_envelope(data, clock.monotonic())
            if env.source != sender:
                raise ProtocolError(f"sender {sender} claims to be {env.source}")
        except ProtocolError as exc:
            with self._lock:
                self.refused += 1
            log.warning("refused a message from %s: %s", sender, exc)
            return False
        with self._lock:
            registry = self._nodes.get(env.dest_node)
        if registry is None or not registry.tell(env.dest_actor, Deliver(env, addr)):
            with self._lock:
                self.dropped += 1
            log.debug("no route to %s/%s", env.dest_node, env.dest_actor)
            return False
        return True
