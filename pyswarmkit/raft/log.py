"""The in-memory Raft log of one member.

The whole uncompacted log lives in memory (snapshots bound its size), so the
core never reads storage after start-up. Indices:

    offset <= applied <= committed <= last_index,   offset <= stable <= last_index

`offset` is the index of the last compacted entry (its term is kept, so an
append whose previous entry is exactly there can still be checked);
`entries[k]` has index `offset + 1 + k`. Entries above `stable` have not been
handed to storage yet.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from operator import attrgetter

from .messages import Entry, Snapshot

_TERM = attrgetter("term")


class LogError(Exception):
    """An operation would break a Raft log invariant; a bug in the caller."""


class RaftLog:
    __slots__ = ("applied", "committed", "entries", "offset", "offset_term", "stable")

    def __init__(
        self,
        offset: int = 0,
        offset_term: int = 0,
        entries: list[Entry] | None = None,
        committed: int = 0,
        applied: int | None = None,
    ) -> None:
        self.offset = offset
        self.offset_term = offset_term
        self.entries: list[Entry] = entries if entries is not None else []
        self.stable = offset + len(self.entries)
        self.committed = max(committed, offset)
        self.applied = offset if applied is None else applied

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, index: int) -> int | None:
        """Term of the entry at `index`, or None when compacted or beyond the end."""
        k = index - self.offset - 1
        if k < 0:
            return self.offset_term if k == -1 else None
        entries = self.entries
        return entries[k].term if k < len(entries) else None

    def entry(self, index: int) -> Entry | None:
        k = index - self.offset - 1
        if 0 <= k < len(self.entries):
            return self.entries[k]
        return None

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: a candidate's log at least as up to date as ours."""
        my_term = self.last_term
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi (caller keeps lo > offset)."""
        base = self.offset + 1
        return self.entries[lo - base : hi - base]

    def find_conflict(self, prev_index: int, ents: Sequence[Entry]) -> int:
        """Position in `ents` (which follow prev_index) of the first entry we lack.

        Matching entries form a prefix of the overlap (log matching, §5.3), so
        one comparison settles the common case and bisection the rest.
        """
        overlap = min(self.last_index - prev_index, len(ents))
        if overlap <= 0:
            return 0
        base = prev_index - self.offset  # entries[base + k] has ents[k]'s index
        mine = self.entries
        if mine[base + overlap - 1].term == ents[overlap - 1].term:
            return overlap
        lo, hi = 0, overlap - 1  # ents[hi] is known to conflict
        while lo < hi:
            mid = (lo + hi) // 2
            if mine[base + mid].term == ents[mid].term:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest i <= index whose term is <= `term` (never below offset).

        Terms never decrease along a log, so this is a bisection; it drives the
        fast backtracking of a rejected append.
        """
        index = min(index, self.last_index)
        if index <= self.offset:
            return self.offset
        hi = index - self.offset  # consider entries[:hi]
        k = bisect_right(self.entries, term, 0, hi, key=_TERM)
        return self.offset + k

    def truncate_after(self, index: int) -> None:
        if index < self.committed:
            raise LogError(f"truncating at {index} below commit {self.committed}")
        del self.entries[index - self.offset :]
        if self.stable > index:
            self.stable = index

    def append(self, ents: Sequence[Entry]) -> None:
        self.entries.extend(ents)

    def unstable(self) -> list[Entry]:
        return self.entries[self.stable - self.offset :]

    def stable_to(self, index: int, term: int) -> None:
        if index > self.stable and self.term(index) == term:
            self.stable = index

    def commit_to(self, index: int) -> bool:
        if index > self.committed:
            if index > self.last_index:
                raise LogError(f"commit {index} beyond last index {self.last_index}")
            self.committed = index
            return True
        return False

    def next_committed(self) -> list[Entry]:
        lo = max(self.applied, self.offset)
        return self.entries[lo - self.offset : self.committed - self.offset]

    def compact(self, index: int) -> None:
        """Drop entries up to `index`; it must already be applied and persisted."""
        if index <= self.offset:
            return
        if index > self.applied or index > self.stable:
            raise LogError(f"compacting to {index} past applied/stable")
        term = self.term(index)
        assert term is not None
        del self.entries[: index - self.offset]
        self.offset = index
        self.offset_term = term

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        self.entries = []
        self.offset = snap.index
        self.offset_term = snap.term
        self.committed = snap.index
        self.applied = snap.index
        self.stable = snap.index
