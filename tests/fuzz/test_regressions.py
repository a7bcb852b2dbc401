"""Inputs the fuzzer once crashed a surface with, kept as they were found
(``regressions/<surface>-seed<S>-<index>.bin``), and the same faults written
plainly: each is now refused with the surface's own error."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pyswarmkit import topology
from pyswarmkit.api.codec import packb
from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.raft.messages import decode_messages
from pyswarmkit.store.entries import EntryError, decode_batch
from pyswarmkit.transport.bus import ProtocolError, decode_envelope, decode_envelopes
from pyswarmkit.transport.control import decode_request
from tests.fuzz.corpus import envelope_frames, store_batch
from tests.fuzz.runner import one
from tests.fuzz.surfaces import surfaces

pytestmark = pytest.mark.unit

FOUND = sorted((Path(__file__).parent / "regressions").glob("*.bin"))


@pytest.mark.parametrize("path", FOUND, ids=[p.stem for p in FOUND])
def test_found_input_is_refused_with_a_typed_error(path: Path) -> None:
    surface = surfaces()[path.name.split("-", 1)[0]]
    surface.reset()
    found: list[tuple[str, BaseException | None]] = []
    # On a thread of its own the input meets the stack depth it met when it was
    # found (python -m tests.fuzz), not pytest's deeper one: faults of depth
    # show the same way.
    runner = threading.Thread(target=lambda: found.append(one(surface, path.read_bytes())))
    runner.start()
    runner.join(120)
    assert found, f"{path.name}: no answer within 120 s"
    outcome, exc = found[0]
    assert outcome != "crash", f"{path.name}: {exc!r}"


def test_raft_payload_nested_deeply_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_messages(b"\x91" * 100_000 + b"\xc0")


def test_topology_nested_deeply_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "swarm.toml"
    path.write_text("x = " + "[" * 5000 + "1" + "]" * 5000 + "\n")
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        topology.parse(path)


def _deep_trailing_field(encoded: bytes) -> bytes:
    """``encoded`` (a fixarray) with one more field: a list nested 100,000 deep,
    as a newer writer's appended field would be skipped unread."""
    assert 0x90 <= encoded[0] < 0x9F
    return bytes((encoded[0] + 1,)) + encoded[1:] + b"\x91" * 100_000 + b"\xc0"


def test_envelope_with_a_deep_trailing_field_is_a_protocol_error() -> None:
    frame = envelope_frames()[0]
    envelope = _deep_trailing_field(frame[1:])
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode_envelope(envelope, 0.0)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode_envelopes(b"\x91" + envelope, 0.0)


def test_store_batch_with_a_deep_trailing_field_is_an_entry_error() -> None:
    with pytest.raises(EntryError, match="nested too deeply"):
        decode_batch(_deep_trailing_field(store_batch()))


def test_control_request_id_must_be_an_integer() -> None:
    """The id is echoed in the reply: one nested 900 deep decoded, but the reply
    echoing it could not be encoded, so the client never got an answer."""
    # {"v": 1, "id": [[[...7...]]], "method": "service.list"}, written by hand:
    # the encoders here would not recurse that deep.
    frame = b"\x83\xa1v\x01\xa2id" + b"\x91" * 900 + b"\x07" + b"\xa6method\xacservice.list"
    with pytest.raises(InvalidArgument, match="id must be an integer"):
        decode_request(frame)
    assert decode_request(packb({"v": 1, "id": 7, "method": "service.list"})).id == 7


def test_topology_integer_of_too_many_digits_is_one_line(tmp_path: Path) -> None:
    """tomllib raises a plain ValueError, not a TOMLDecodeError, for an integer
    longer than Python converts (4,300 digits)."""
    path = tmp_path / "swarm.toml"
    path.write_text("[[node]]\nheartbeat_period = " + "9" * 5000 + "\n")
    with pytest.raises(InvalidArgument, match="not valid TOML: Exceeds the limit"):
        topology.parse(path)
