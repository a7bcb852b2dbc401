"""Raft log and message types.

Everything here is plain data (NamedTuples and a slotted dataclass of ints,
bytes and tuples) so the transport can put it on the wire with msgpack via
`to_wire` / `from_wire` without knowing Raft.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

# Entry types.
ENTRY_NORMAL = 0
ENTRY_CONF_CHANGE = 1

# Configuration change types (one member at a time).
CC_ADD_VOTER = 0  # bootstrap, or promotion of a caught-up learner
CC_ADD_LEARNER = 1
CC_REMOVE = 2

CC_NAMES = {CC_ADD_VOTER: "add-voter", CC_ADD_LEARNER: "add-learner", CC_REMOVE: "remove"}

# Message types.
MSG_APP = 1
MSG_APP_RESP = 2
MSG_VOTE = 3
MSG_VOTE_RESP = 4
MSG_PRE_VOTE = 5
MSG_PRE_VOTE_RESP = 6
MSG_HEARTBEAT = 7
MSG_HEARTBEAT_RESP = 8
MSG_SNAP = 9
MSG_TIMEOUT_NOW = 10

MSG_NAMES = {
    MSG_APP: "App",
    MSG_APP_RESP: "AppResp",
    MSG_VOTE: "Vote",
    MSG_VOTE_RESP: "VoteResp",
    MSG_PRE_VOTE: "PreVote",
    MSG_PRE_VOTE_RESP: "PreVoteResp",
    MSG_HEARTBEAT: "Heartbeat",
    MSG_HEARTBEAT_RESP: "HeartbeatResp",
    MSG_SNAP: "Snap",
    MSG_TIMEOUT_NOW: "TimeoutNow",
}

# Message.context values.
CONTEXT_TRANSFER = 1  # a vote request caused by leadership transfer bypasses leases


class Entry(NamedTuple):
    term: int
    # Shadows tuple.index on purpose: the Raft name reads best.
    index: int  # type: ignore[assignment]
    type: int
    data: bytes


class HardState(NamedTuple):
    term: int
    vote: int
    commit: int


EMPTY_HARD_STATE = HardState(0, 0, 0)


class ConfState(NamedTuple):
    voters: tuple[int, ...]
    learners: tuple[int, ...]


EMPTY_CONF_STATE = ConfState((), ())


class ConfChange(NamedTuple):
    """One membership change. ``context`` is opaque to Raft: managers put the
    member's node ID and address there (``api.objects.RaftMember``), so every
    member learns where a new one listens from the log itself."""

    type: int
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return _CC.pack(self.type, self.node_id) + self.context

    @staticmethod
    def decode(data: bytes) -> ConfChange:
        # A change written before contexts existed is exactly the fixed part.
        if len(data) < _CC.size:
            raise ValueError(f"conf change: expected at least {_CC.size} bytes, got {len(data)}")
        kind, node_id = _CC.unpack_from(data)
        if kind not in CC_NAMES:
            raise ValueError(f"conf change: unknown type {kind}")
        return ConfChange(kind, node_id, bytes(data[_CC.size :]))


_CC = struct.Struct("<BQ")


def apply_conf_change(cs: ConfState, cc: ConfChange) -> ConfState:
    """Return the configuration after `cc`; total, so replaying a log never fails."""
    voters = set(cs.voters)
    learners = set(cs.learners)
    if cc.type == CC_ADD_VOTER:
        learners.discard(cc.node_id)
        voters.add(cc.node_id)
    elif cc.type == CC_ADD_LEARNER:
        if cc.node_id not in voters:
            learners.add(cc.node_id)
    else:
        voters.discard(cc.node_id)
        learners.discard(cc.node_id)
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))


class Snapshot(NamedTuple):
    index: int  # type: ignore[assignment]
    term: int
    conf: ConfState
    data: bytes


@dataclass(slots=True)
class Message:
    type: int
    to: int
    frm: int
    term: int
    log_term: int = 0
    index: int = 0
    commit: int = 0
    reject: bool = False
    hint: int = 0
    context: int = 0
    entries: Sequence[Entry] = ()
    snapshot: Snapshot | None = None

    def __repr__(self) -> str:
        name = MSG_NAMES.get(self.type, str(self.type))
        extra = f" ents={len(self.entries)}" if self.entries else ""
        if self.snapshot is not None:
            extra += f" snap={self.snapshot.index}@{self.snapshot.term}"
        return (
            f"<{name} {self.frm}->{self.to} t={self.term} lt={self.log_term} i={self.index}"
            f" c={self.commit}{' reject' if self.reject else ''} h={self.hint}{extra}>"
        )


WIRE_VERSION = 1


def to_wire(msg: Message) -> list[Any]:
    """A msgpack-ready list for `msg` (only ints, bools, bytes and lists)."""
    snap = msg.snapshot
    wire_snap: list[Any] | None = None
    if snap is not None:
        wire_snap = [
            snap.index,
            snap.term,
            list(snap.conf.voters),
            list(snap.conf.learners),
            snap.data,
        ]
    return [
        WIRE_VERSION,
        msg.type,
        msg.to,
        msg.frm,
        msg.term,
        msg.log_term,
        msg.index,
        msg.commit,
        msg.reject,
        msg.hint,
        msg.context,
        [list(e) for e in msg.entries],
        wire_snap,
    ]


def _int(v: Any, what: str) -> int:
    if type(v) is not int or v < 0:
        raise ValueError(f"raft message: {what} must be a non-negative int, got {v!r}")
    return v


def _bytes(v: Any, what: str) -> bytes:
    if not isinstance(v, bytes | bytearray):
        raise ValueError(f"raft message: {what} must be bytes, got {type(v).__name__}")
    return bytes(v)


def _ids(v: Any, what: str) -> tuple[int, ...]:
    if not isinstance(v, list | tuple):
        raise ValueError(f"raft message: {what} must be a list")
    return tuple(_int(x, what) for x in v)


def from_wire(obj: Any) -> Message:
    """Inverse of `to_wire`; raises ValueError on anything malformed."""
    if not isinstance(obj, list | tuple) or len(obj) != 13:
        raise ValueError("raft message: expected a list of 13 fields")
    if obj[0] != WIRE_VERSION:
        raise ValueError(f"raft message: unsupported wire version {obj[0]!r}")
    mtype = _int(obj[1], "type")
    if mtype not in MSG_NAMES:
        raise ValueError(f"raft message: unknown type {mtype}")
    if not isinstance(obj[8], bool):
        raise ValueError("raft message: reject must be a bool")
    raw_entries = obj[11]
    if not isinstance(raw_entries, list | tuple):
        raise ValueError("raft message: entries must be a list")
    entries: list[Entry] = []
    for raw in raw_entries:
        if not isinstance(raw, list | tuple) or len(raw) != 4:
            raise ValueError("raft message: an entry must have 4 fields")
        entries.append(
            Entry(
                _int(raw[0], "entry term"),
                _int(raw[1], "entry index"),
                _int(raw[2], "entry type"),
                _bytes(raw[3], "entry data"),
            )
        )
    snap: Snapshot | None = None
    raw_snap = obj[12]
    if raw_snap is not None:
        if not isinstance(raw_snap, list | tuple) or len(raw_snap) != 5:
            raise ValueError("raft message: snapshot must have 5 fields")
        snap = Snapshot(
            _int(raw_snap[0], "snapshot index"),
            _int(raw_snap[1], "snapshot term"),
            ConfState(_ids(raw_snap[2], "voters"), _ids(raw_snap[3], "learners")),
            _bytes(raw_snap[4], "snapshot data"),
        )
    return Message(
        type=mtype,
        to=_int(obj[2], "to"),
        frm=_int(obj[3], "from"),
        term=_int(obj[4], "term"),
        log_term=_int(obj[5], "log_term"),
        index=_int(obj[6], "index"),
        commit=_int(obj[7], "commit"),
        reject=obj[8],
        hint=_int(obj[9], "hint"),
        context=_int(obj[10], "context"),
        entries=entries,
        snapshot=snap,
    )


def decode_messages(payload: bytes) -> list[Message]:
    """The messages of one ``RaftMessages`` payload (a msgpack list of
    ``to_wire`` lists); raises ValueError on anything malformed."""
    try:
        raw = msgspec.msgpack.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"raft messages: {exc}") from None
    except RecursionError:
        # Untyped decoding recurses per level of nesting; no message nests deeply.
        raise ValueError("raft messages: nested too deeply") from None
    if not isinstance(raw, list):
        raise ValueError("raft messages: expected a list")
    return [from_wire(m) for m in raw]
