"""The store's side of Raft: committed log entries become store batches, and
this member's own proposals get their outcome.

Pure: no disk, no sockets, no clock. The Raft member actor persists and sends;
it hands every committed entry here, in log order, on every manager.

A member's own proposals are kept until their entry is applied: the batch is
applied from the proposal as it was built (the entry holds the same batch
encoded; followers and a restarted member decode it), and ``on_done`` gets the
outcome. An entry at a proposal's index with another term means the proposal
was lost to a leader change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyswarmkit.api.errors import SwarmError, Unavailable
from pyswarmkit.raft.messages import ENTRY_NORMAL, Entry
from pyswarmkit.store.entries import EntryError, decode_batch, decode_snapshot
from pyswarmkit.store.memory import Change, MemoryStore
from pyswarmkit.store.proposer import Done, StaleWrite

log = logging.getLogger(__name__)


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
        self.pending: dict[int, Pending] = {}
        # Entries whose batch could not be read (a newer format): applied as
        # nothing, counted, logged; the member does not stop.
        self.unreadable = 0

    def proposed(self, index: int, pending: Pending) -> None:
        self.pending[index] = pending

    def apply(self, entry: Entry) -> None:
        """Apply one committed entry (after every entry before it)."""
        mine = self.pending.pop(entry.index, None)
        if mine is not None and mine.term != entry.term:
            _answer(mine.on_done, None, Unavailable("the write was lost to a leader change: retry"))
            mine = None
        if entry.type != ENTRY_NORMAL or not entry.data:
            return  # a leader's empty entry, or a membership change
        if mine is not None:
            changes, now = mine.changes, mine.now
        else:
            try:
                changes, now = decode_batch(entry.data)
            except EntryError as exc:
                self.unreadable += 1
                log.error("raft entry %d skipped: %s", entry.index, exc)
                return
        before = self.store.index
        try:
            batch = self.store.apply(changes, entry.index, now)
        except SwarmError as err:
            if mine is not None:
                if mine.built_at is not None and before > mine.built_at:
                    # Built from state that other writes have since changed: the
                    # proposer builds again from the new state.
                    err = StaleWrite(err)
                _answer(mine.on_done, None, err)
            return
        if mine is not None:
            _answer(mine.on_done, batch, None)

    def restore(self, data: bytes) -> None:
        """Become the state of a snapshot (a restart, or a follower far behind)."""
        index, objects = decode_snapshot(data)
        self.store.restore(index, objects)

    def fail_pending(self, err: SwarmError, up_to: int | None = None) -> None:
        """Answer proposals that can no longer commit here (all, or those at or
        below ``up_to``, which a snapshot replaced)."""
        for index in sorted(self.pending):
            if up_to is not None and index > up_to:
                break
            _answer(self.pending.pop(index).on_done, None, err)


def _answer(on_done: Done, batch: object, err: SwarmError | None) -> None:
    try:
        on_done(batch, err)  # type: ignore[arg-type]
    except Exception:
        log.exception("the outcome of a store write could not be handed back")
