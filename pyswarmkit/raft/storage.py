"""What a RaftNode is built from, and the simplest storage (memory only).

A storage hands the core its state once, at start-up (`load`), and then
receives what each Ready asks to persist. `DurableStorage` (in `durable.py`)
is the real one; `MemoryStorage` keeps the same contract without a disk, for
tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from .messages import EMPTY_HARD_STATE, Entry, HardState, Snapshot


class LoadedState(NamedTuple):
    hard_state: HardState
    snapshot: Snapshot | None
    # Contiguous; the first one is at most snapshot.index + 1.
    entries: list[Entry]

    @property
    def is_empty(self) -> bool:
        return self.hard_state == EMPTY_HARD_STATE and self.snapshot is None and not self.entries


EMPTY_STATE = LoadedState(EMPTY_HARD_STATE, None, [])


class StateSource(Protocol):
    def load(self) -> LoadedState: ...


class Storage(StateSource, Protocol):
    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Queue a Ready's state for writing (entries may overwrite a suffix)."""

    def sync(self) -> None:
        """Make everything saved so far durable (one fsync for the group)."""

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Persist a snapshot the application took; durable on return."""

    def compact(self, index: int) -> None:
        """Allow entries up to `index` to be discarded (a snapshot covers them)."""

    def close(self) -> None: ...


class MemoryStorage:
    """Keeps what a durable storage would, in memory; survives node restarts only."""

    def __init__(self) -> None:
        self.hard_state = EMPTY_HARD_STATE
        self.snapshot: Snapshot | None = None
        self.offset = 0
        self.entries: list[Entry] = []

    def load(self) -> LoadedState:
        return LoadedState(self.hard_state, self.snapshot, list(self.entries))

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        if snapshot is not None:
            self.snapshot = snapshot
            self.offset = snapshot.index
            self.entries = []
        if entries:
            first = entries[0].index
            if self.entries:
                del self.entries[first - self.entries[0].index :]
            else:
                self.offset = first - 1
            self.entries.extend(entries)
        if hard_state is not None:
            self.hard_state = hard_state

    def sync(self) -> None:
        pass

    def save_snapshot(self, snapshot: Snapshot) -> None:
        if self.snapshot is None or snapshot.index > self.snapshot.index:
            self.snapshot = snapshot

    def compact(self, index: int) -> None:
        if self.entries and index >= self.entries[0].index:
            del self.entries[: index - self.entries[0].index + 1]

    def close(self) -> None:
        pass
