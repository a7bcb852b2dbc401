"""Wire form of Raft messages, and the in-memory log's helpers."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyswarmkit.raft.log import LogError, RaftLog
from pyswarmkit.raft.messages import (
    CC_ADD_LEARNER,
    CC_REMOVE,
    MSG_NAMES,
    ConfChange,
    ConfState,
    Entry,
    Message,
    Snapshot,
    apply_conf_change,
    from_wire,
    to_wire,
)

pytestmark = pytest.mark.unit

u64 = st.integers(0, 2**64 - 1)
entries = st.lists(
    st.builds(Entry, u64, u64, st.integers(0, 1), st.binary(max_size=64)), max_size=5
)
snapshots = st.none() | st.builds(
    Snapshot,
    u64,
    u64,
    st.builds(
        ConfState, st.lists(u64, max_size=3).map(tuple), st.lists(u64, max_size=3).map(tuple)
    ),
    st.binary(max_size=64),
)
messages = st.builds(
    Message,
    type=st.sampled_from(sorted(MSG_NAMES)),
    to=u64,
    frm=u64,
    term=u64,
    log_term=u64,
    index=u64,
    commit=u64,
    reject=st.booleans(),
    hint=u64,
    context=st.integers(0, 1),
    entries=entries,
    snapshot=snapshots,
)


@given(messages)
def test_every_message_survives_msgpack(m: Message) -> None:
    back = from_wire(msgpack.unpackb(msgpack.packb(to_wire(m))))
    assert back == m
    assert all(isinstance(e, Entry) for e in back.entries)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        [99] + [0] * 12,  # unknown wire version
        [1, 42, 1, 2, 3, 0, 0, 0, False, 0, 0, [], None],  # unknown type
        [1, 1, 1, 2, -3, 0, 0, 0, False, 0, 0, [], None],  # negative term
        [1, 1, 1, 2, 3, 0, 0, 0, 0, 0, 0, [], None],  # reject not a bool
        [1, 1, 1, 2, 3, 0, 0, 0, False, 0, 0, [[1, 2, 0]], None],  # short entry
        [1, 1, 1, 2, 3, 0, 0, 0, False, 0, 0, [[1, 2, 0, "s"]], None],  # str data
        [1, 9, 1, 2, 3, 0, 0, 0, False, 0, 0, [], [1, 2, [], []]],  # short snapshot
    ],
)
def test_malformed_wire_messages_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        from_wire(bad)


def test_conf_change_codec_and_application() -> None:
    cc = ConfChange(CC_ADD_LEARNER, 7)
    assert ConfChange.decode(cc.encode()) == cc
    with pytest.raises(ValueError):
        ConfChange.decode(b"\x09" + bytes(8))
    cs = apply_conf_change(ConfState((1, 2), ()), cc)
    assert cs == ConfState((1, 2), (7,))
    assert apply_conf_change(cs, ConfChange(CC_REMOVE, 1)) == ConfState((2,), (7,))


def log_of(terms: list[int], offset: int = 0) -> RaftLog:
    ents = [Entry(t, offset + 1 + i, 0, b"") for i, t in enumerate(terms)]
    return RaftLog(offset, 1 if offset else 0, ents)


def test_find_conflict_locates_the_first_mismatch() -> None:
    log = log_of([1, 1, 2, 2, 3])
    new = [Entry(t, 3 + i, 0, b"") for i, t in enumerate([2, 2, 4, 4])]  # follows index 2
    assert log.find_conflict(2, new) == 2  # index 5 differs
    assert log.find_conflict(2, new[:2]) == 2  # all present
    assert log.find_conflict(5, [Entry(3, 6, 0, b"")]) == 0  # nothing overlaps


def test_find_conflict_by_term_bisects_terms() -> None:
    log = log_of([1, 1, 2, 2, 2, 5, 5])
    assert log.find_conflict_by_term(7, 4) == 5
    assert log.find_conflict_by_term(7, 5) == 7
    assert log.find_conflict_by_term(3, 9) == 3
    assert log.find_conflict_by_term(7, 0) == 0
    assert log_of([3, 3], offset=10).find_conflict_by_term(12, 1) == 10


def test_log_refuses_to_truncate_committed_entries() -> None:
    log = log_of([1, 1, 1])
    log.commit_to(2)
    with pytest.raises(LogError):
        log.truncate_after(1)
    with pytest.raises(LogError):
        log.commit_to(9)


def test_compaction_keeps_the_term_at_the_new_offset() -> None:
    log = log_of([1, 2, 3, 4])
    log.commit_to(4)
    log.applied = 3
    log.compact(3)
    assert (log.offset, log.offset_term) == (3, 3)
    assert log.term(3) == 3 and log.term(2) is None and log.term(4) == 4
    with pytest.raises(LogError):
        log.compact(4)  # not applied yet
