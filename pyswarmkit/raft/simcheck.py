"""Safety invariants the simulator checks after every step.

Each check is incremental (it looks at what one member just did) so checking
after every step stays cheap:

- election safety: at most one leader per term;
- log matching: an (index, term) pair always names the same entry with the
  same predecessor term, in every member's log;
- leader completeness: a new leader holds every entry seen committed in an
  earlier term;
- state machine safety: every member applies the same entry at each index,
  in order, and snapshots carry the same state;
- commit indexes never go down (in memory, and across restarts from disk);
- an acknowledged proposal is committed at its index and stays there.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from .core import RaftNode, Ready, Role
from .messages import (
    EMPTY_CONF_STATE,
    ENTRY_CONF_CHANGE,
    ConfChange,
    ConfState,
    Entry,
    Snapshot,
    apply_conf_change,
)

_SNAP = struct.Struct("<QI")


class Violation(Exception):
    """A safety or liveness property does not hold."""


def snapshot_data(index: int, digest: int) -> bytes:
    return _SNAP.pack(index, digest)


def parse_snapshot_data(data: bytes) -> tuple[int, int]:
    index, digest = _SNAP.unpack(data)
    return int(index), int(digest)


def next_digest(prev: int, e: Entry) -> int:
    return zlib.crc32(e.data, zlib.crc32(e.index.to_bytes(8, "little"), prev))


class Checker:
    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}
        # (index, term) -> (type, data, term of the entry before it)
        self.entries: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        self.commit_terms: dict[int, int] = {}  # index -> term of the committed entry
        self.commit_seen: dict[int, int] = {}  # term -> highest index seen committed in it
        # index -> (term, data, digest after applying it); index 0 is the empty state.
        self.applied: list[tuple[int, bytes, int]] = [(0, b"", 0)]
        self.acked: dict[int, tuple[int, bytes]] = {}
        self.conf: ConfState = EMPTY_CONF_STATE  # configuration of the applied log
        self.conf_history: list[tuple[int, ConfState]] = [(0, EMPTY_CONF_STATE)]

    # -- per Ready

    def on_ready(self, nid: int, core: RaftNode, rd: Ready) -> None:
        if rd.role == Role.LEADER:
            self.on_leader(nid, rd.term, core)
        ents = rd.entries
        if not ents:
            return
        prev = core.log.term(ents[0].index - 1)
        if prev is None:
            raise Violation(f"node {nid}: entry {ents[0].index} persisted without a predecessor")
        seen = self.entries
        for e in ents:
            key = (e.index, e.term)
            val = (e.type, e.data, prev)
            old = seen.setdefault(key, val)
            if old != val:
                raise Violation(
                    f"log matching: node {nid} has entry {e.index}@{e.term} = {val!r}, "
                    f"another log has {old!r}"
                )
            prev = e.term

    def on_leader(self, nid: int, term: int, core: RaftNode) -> None:
        holder = self.leaders.setdefault(term, nid)
        if holder != nid:
            raise Violation(f"election safety: nodes {holder} and {nid} both lead term {term}")

    def check_new_leader(self, nid: int, core: RaftNode) -> None:
        term = core.term
        need = max((c for t, c in self.commit_seen.items() if t < term), default=0)
        log = core.log
        if log.last_index < need:
            raise Violation(
                f"leader completeness: node {nid} leads term {term} with last index "
                f"{log.last_index} but index {need} was committed earlier"
            )
        for i in range(max(log.offset + 1, 1), need + 1):
            want = self.commit_terms.get(i)
            if want is not None and log.term(i) != want:
                raise Violation(
                    f"leader completeness: node {nid} leads term {term} with entry "
                    f"{i}@{log.term(i)} but {i}@{want} was committed"
                )

    def on_commit(self, nid: int, core: RaftNode, old: int, new: int) -> None:
        if new < old:
            raise Violation(f"node {nid}: commit index went down from {old} to {new}")
        log = core.log
        terms = self.commit_terms
        for i in range(max(old + 1, log.offset + 1), new + 1):
            t = log.term(i)
            assert t is not None
            prior = terms.setdefault(i, t)
            if prior != t:
                raise Violation(
                    f"commit safety: node {nid} committed {i}@{t}, but {i}@{prior} was committed"
                )
        seen = self.commit_seen
        if seen.get(core.term, 0) < new:
            seen[core.term] = new

    # -- application

    def on_apply(self, nid: int, app_index: int, digest: int, e: Entry) -> int:
        if e.index != app_index + 1:
            raise Violation(f"node {nid} applied entry {e.index} after {app_index}")
        applied = self.applied
        if e.index < len(applied):
            term, data, want = applied[e.index]
            if (term, data) != (e.term, e.data):
                raise Violation(
                    f"state machine safety: node {nid} applied {e.index}@{e.term} {e.data!r}, "
                    f"another member applied {e.index}@{term} {data!r}"
                )
            got = next_digest(digest, e)
            if got != want:
                raise Violation(f"state machine safety: node {nid} state differs at {e.index}")
            return got
        if e.index > len(applied):
            raise Violation(f"node {nid} applied {e.index} before anyone applied {len(applied)}")
        got = next_digest(digest, e)
        applied.append((e.term, e.data, got))
        if e.type == ENTRY_CONF_CHANGE:
            self.conf = apply_conf_change(self.conf, ConfChange.decode(e.data))
            self.conf_history.append((e.index, self.conf))
        return got

    def on_restore(self, nid: int, snap: Snapshot) -> int:
        index, digest = parse_snapshot_data(snap.data)
        if index != snap.index:
            raise Violation(f"node {nid}: snapshot {snap.index} carries state of {index}")
        if index >= len(self.applied):
            raise Violation(f"node {nid}: snapshot at {index} beyond anything applied")
        if self.applied[index][2] != digest:
            raise Violation(f"state machine safety: node {nid} snapshot at {index} differs")
        want_conf = EMPTY_CONF_STATE
        for i, cs in self.conf_history:
            if i > index:
                break
            want_conf = cs
        if snap.conf != want_conf:
            raise Violation(
                f"node {nid}: snapshot at {index} has configuration {snap.conf}, "
                f"the applied log has {want_conf}"
            )
        return digest

    # -- clients

    def on_ack(self, index: int, term: int, data: bytes) -> None:
        t = self.commit_terms.get(index)
        if t != term:
            raise Violation(f"acknowledged proposal {index}@{term} not committed there ({t})")
        self.acked[index] = (term, data)

    def check_acked(self) -> None:
        applied = self.applied
        for index, (term, data) in self.acked.items():
            if index < len(applied) and applied[index][:2] != (term, data):
                raise Violation(f"acknowledged proposal at {index} was replaced")

    def members(self) -> Sequence[int]:
        return tuple(sorted(set(self.conf.voters) | set(self.conf.learners)))
