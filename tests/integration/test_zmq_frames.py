"""The transport's pure parts: frames of several envelopes, their cutting at
the cap, the log limiter, the ZAP answer; and batch delivery to an actor."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pytest
from helpers import wait_until
from zmq.utils import z85

from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Deliver, DeliverBatch
from pyswarmkit.api.protocol import Heartbeat
from pyswarmkit.transport.bus import Envelope, ProtocolError, decode_envelopes, encode_envelope
from pyswarmkit.transport.frames import LogLimiter, Oversize, array_header, batches, frame_of
from pyswarmkit.transport.zap import zap_reply


def env(i: int) -> Envelope:
    return Envelope("a", "b", "dispatcher", Heartbeat(str(i)), deadline=10.0)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65535, 65536])
def test_array_header_is_msgpack(n: int) -> None:
    assert msgspec.msgpack.decode(array_header(n) + b"\xc0" * n) == [None] * n


def test_a_frame_decodes_to_its_envelopes_in_order() -> None:
    datas = [encode_envelope(env(i), 5.0) for i in range(40)]
    got = decode_envelopes(frame_of(datas), 100.0)
    assert [e.body for e in got] == [Heartbeat(str(i)) for i in range(40)]
    # The time left crosses, not the deadline.
    assert got[0].deadline == pytest.approx(105.0)


def test_one_bad_envelope_refuses_the_frame() -> None:
    good = encode_envelope(env(1), 0.0)
    with pytest.raises(ProtocolError):
        decode_envelopes(frame_of([good, b"\x01"]), 0.0)
    with pytest.raises(ProtocolError):
        decode_envelopes(good, 0.0)  # an envelope, not a frame of them


def test_batches_keep_order_and_respect_the_cap() -> None:
    items = [(msgspec.msgpack.encode(bytes([i]) * 97), i) for i in range(50)]
    out = list(batches(items, max_frame=1000, batch_bytes=10**9))
    frames = [c for c in out if not isinstance(c, Oversize)]
    assert len(frames) == len(out) == 5
    assert all(len(f) <= 1000 for f, _ in frames)
    assert [t for _, tags in frames for t in tags] == list(range(50))
    decoded = [v for f, _ in frames for v in msgspec.msgpack.decode(f)]
    assert decoded == [bytes([i]) * 97 for i in range(50)]


def test_batches_cut_at_the_batch_size() -> None:
    items = [(b"x" * 1000, i) for i in range(10)]
    out = list(batches(items, max_frame=10**6, batch_bytes=3000))
    assert [tags for _, tags in out] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]  # type: ignore[misc]


def test_an_envelope_over_the_cap_is_set_aside() -> None:
    items = [(b"a" * 10, "small"), (b"b" * 2000, "big"), (b"c" * 10, "after")]
    out = list(batches(items, max_frame=1000))
    assert out[0] == Oversize("big", 2000)
    assert isinstance(out[1], tuple) and out[1][1] == ["small", "after"]


def test_log_limiter() -> None:
    lim = LogLimiter(every=10.0)
    assert lim.allow("k", 0.0) == 0
    assert lim.allow("k", 1.0) is None
    assert lim.allow("k", 2.0) is None
    assert lim.allow("other", 2.0) == 0
    assert lim.allow("k", 10.5) == 2
    assert lim.allow("k", 11.0) is None


def test_log_limiter_forgets_stale_keys_rather_than_grow() -> None:
    lim = LogLimiter(every=10.0, max_keys=3)
    for k in range(3):
        assert lim.allow(k, 0.0) == 0
    assert lim.allow("new", 5.0) is None  # full of fresh keys: quiet
    assert lim.allow("new", 20.0) == 0  # the stale ones were dropped
    assert len(lim._seen) == 1


def test_zap_admits_every_curve_key_and_names_it() -> None:
    key = bytes(range(32))
    req = [b"rid", b"", b"1.0", b"7", b"swarm", b"127.0.0.1", b"", b"CURVE", key]
    assert zap_reply(req) == [b"rid", b"", b"1.0", b"7", b"200", b"OK", z85.encode(key), b""]


@pytest.mark.parametrize(
    "req",
    [
        [b"rid", b"", b"1.0", b"7", b"swarm", b"127.0.0.1", b"", b"NULL"],
        [b"rid", b"", b"1.0", b"7", b"swarm", b"127.0.0.1", b"", b"PLAIN", b"u", b"p"],
        [b"rid", b"", b"2.0", b"7", b"swarm", b"127.0.0.1", b"", b"CURVE", b"k" * 32],
        [b"rid", b"", b"1.0", b"7", b"swarm", b"127.0.0.1", b"", b"CURVE", b"short"],
        [b"rid"],
    ],
)
def test_zap_refuses_anything_else(req: list[bytes]) -> None:
    reply = zap_reply(req)
    assert reply[0] == b"rid" and reply[4] == b"400"


class Collector(GuardedActor):
    def __init__(self, got: list[str], done: threading.Event) -> None:
        super().__init__()
        self.got = got
        self.done = done

    def handle(self, message: Any) -> Any:
        assert isinstance(message, Deliver)
        body = message.envelope.body
        assert isinstance(body, Heartbeat)
        if body.session_id == "bad":
            raise ValueError("bad message")
        self.got.append(body.session_id)
        if body.session_id == "last":
            self.done.set()
        return None


def test_a_batch_is_handled_one_envelope_at_a_time() -> None:
    got: list[str] = []
    done = threading.Event()
    ref = Collector.start(got, done)
    try:
        names = ["1", "bad", "2", "last"]
        items = tuple(Deliver(Envelope("a", "b", "x", Heartbeat(n)), "127.0.0.1") for n in names)
        ref.tell(DeliverBatch(items))
        wait_until(done.is_set, 10)
        # The failing one is logged and skipped; the rest still arrive.
        assert got == ["1", "2", "last"]
        assert ref.proxy().failures.get(timeout=5) == 1
    finally:
        ref.stop(timeout=5)
