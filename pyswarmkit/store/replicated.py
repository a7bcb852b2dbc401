"""The store's side of Raft: committed log entries become store batches, and
this member's own proposals get their outcome.

Pure: no disk, no sockets, no clock. The Raft member actor persists and sends;
it hands every committed entry here, in log order, on every manager.

A member's own proposals are kept until their entry is applied: the batch is
applied from the proposal as it was built (the entry holds the same batch
encoded; followers and a restarted member decode it), and ``on_done`` gets the
outcome. An entry at a proposal's index with another term means the proposal
was lost to a leader change.

An entry may hold a group of batches (``store.entries``): a proposal is named
by its index and its part, the batch's place in the group (0 for a lone one).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from pyswarmkit.api.errors import SwarmError, Unavailable
from pyswarmkit.raft.messages import ENTRY_NORMAL, Entry
from pyswarmkit.store.entries import EntryError, batches_in, decode_entry, decode_snapshot
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import Done, StaleWrite

log = logging.getLogger(__name__)

# Outcomes of this many recent entries are kept for proposals whose index is
# learnt after the entry was applied (a follower's batch, forwarded to the
# leader, may commit here before the leader's answer naming its index arrives).
RECENT = 4096
LOST = "the write was lost to a leader change: retry"


@dataclass(slots=True)
class Pending:
    term: int
    changes: Sequence[Change]
    now: float
    on_done: Done
    # The store's index when the batch was built from it (None: not built
    # from the store, e.g. a caller's own read).
    built_at: int | None


class ReplicatedStore:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        # Own proposals not yet applied: index -> part -> proposal.
        self.pending: dict[int, dict[int, Pending]] = {}
        self.applied = 0
        # What recent entries did: index -> (term, the store's index just
        # before the entry, each part's batch or refusal).
        self._recent: OrderedDict[int, tuple[int, int, list[EventBatch | SwarmError]]] = (
            OrderedDict()
        )
        # Entries whose batch could not be read (a newer format): applied as
        # nothing, counted, logged; the member does not stop.
        self.unreadable = 0

    def proposed(self, index: int, pending: Pending, part: int = 0) -> None:
        if index > self.applied:
            self.pending.setdefault(index, {})[part] = pending
            return
        # Already applied: answer from what happened then.
        seen = self._recent.get(index)
        if seen is None or part >= len(seen[2]):
            gone = "the write's outcome is no longer known here: check and retry"
            _answer(pending.on_done, None, Unavailable(gone if seen is None else LOST))
            return
        term, before, results = seen
        if term != pending.term:
            _answer(pending.on_done, None, Unavailable(LOST))
            return
        _outcome(pending, results[part], before if part == 0 else index)

    def apply(self, entry: Entry, remember: bool = True) -> None:
        """Apply one committed entry (after every entry before it).

        ``remember``: keep its outcome among the RECENT for a proposal whose
        index is learnt later. Only a write forwarded to the leader and not yet
        answered can learn an index already applied here, so the member passes
        False while it has none in flight: kept for every entry, the outcomes
        held thousands of batches alive, and every full garbage collection
        walked them all.
        """
        index = entry.index
        self.applied = index
        mine = self.pending.pop(index, None) or {}
        if mine:
            for part in [p for p, m in mine.items() if m.term != entry.term]:
                _answer(mine.pop(part).on_done, None, Unavailable(LOST))
        if entry.type != ENTRY_NORMAL or not entry.data:
            for lost in mine.values():  # cannot happen: nothing proposed an empty entry
                _answer(lost.on_done, None, Unavailable(LOST))
            return  # a leader's empty entry, or a membership change
        batches: list[tuple[Sequence[Change], float]]
        size = batches_in(entry.data)
        if len(mine) == size and all(p in mine for p in range(size)):
            # Every batch proposed here (the leader's usual case): no decoding.
            batches = [(mine[p].changes, mine[p].now) for p in range(size)]
        else:
            batches = self._decoded(entry)
        if not batches:
            for lost in mine.values():
                _answer(lost.on_done, None, Unavailable(LOST))
            return
        before = self.store.index
        if len(batches) == 1:
            changes, now = batches[0]
            try:
                results: list[EventBatch | SwarmError] = [self.store.apply(changes, index, now)]
            except SwarmError as refused:
                results = [refused]
        else:
            results = self.store.apply_group(batches, index)
        if remember:
            self._recent[index] = (entry.term, before, results)
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        if mine:
            for part, result in enumerate(results):
                own = mine.pop(part, None)
                if own is not None:
                    _outcome(own, result, before if part == 0 else index)
        for lost in mine.values():  # a part the entry does not hold
            _answer(lost.on_done, None, Unavailable(LOST))

    def _decoded(self, entry: Entry) -> list[tuple[Sequence[Change], float]]:
        try:
            return list(decode_entry(entry.data))
        except EntryError as exc:
            self.unreadable += 1
            log.error("raft entry %d skipped: %s", entry.index, exc)
            return []

    def restore(self, data: bytes, raft_index: int) -> None:
        """Become the state of a snapshot taken at ``raft_index`` (a restart, or
        a follower far behind)."""
        index, objects = decode_snapshot(data)
        self.applied = raft_index
        self.store.restore(index, objects)
        self._recent.clear()

    def fail_pending(self, err: SwarmError, up_to: int | None = None) -> None:
        """Answer proposals that can no longer commit here (all, or those at or
        below ``up_to``, which a snapshot replaced)."""
        for index in sorted(self.pending):
            if up_to is not None and index > up_to:
                break
            for _, own in sorted(self.pending.pop(index).items()):
                _answer(own.on_done, None, err)


def _outcome(pending: Pending, result: EventBatch | SwarmError, before: int) -> None:
    """Answer a proposal with its batch's outcome. ``before`` is the store's
    index just before the batch: a refusal of a batch built from state older
    than that may be a race with the writes between (for a later part of a
    group, the parts before it), so the proposer builds it again from the new
    state (StaleWrite) rather than failing."""
    if not isinstance(result, SwarmError):
        _answer(pending.on_done, result, None)
        return
    if pending.built_at is not None and before > pending.built_at:
        result = StaleWrite(result)
    _answer(pending.on_done, None, result)


def _answer(on_done: Done, batch: object, err: SwarmError | None) -> None:
    try:
        on_done(batch, err)  # type: ignore[arg-type]
    except Exception:
        log.exception("the outcome of a store write could not be handed back")
