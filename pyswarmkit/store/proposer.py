"""The proposer seam: the one path by which change batches become committed.

A proposer takes a batch and calls ``on_done`` once the batch has been applied
to the store (or refused). ``LocalProposer`` commits at once (in-process test
nodes, benchmarks of the cores); a manager's proposer hands the batch to its
Raft member, which calls ``on_done`` once the batch is committed and applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pyswarmkit.api.errors import SwarmError
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

Done = Callable[[EventBatch | None, SwarmError | None], None]


class StaleWrite(SwarmError):
    """A batch refused because it was built from state that other writes
    changed before it committed. The proposer that built it builds it again
    from the new state; it never reaches a user."""

    def __init__(self, cause: SwarmError) -> None:
        super().__init__(cause.message)
        self.cause = cause
        self.code = cause.code  # type: ignore[misc]


class Proposer(Protocol):
    def propose(
        self, changes: Sequence[Change], now: float, on_done: Done, built_at: int | None = None
    ) -> None: ...

    def flush(self) -> None:
        """Hand on what ``propose`` may hold back: the store actor calls it
        whenever its mailbox runs empty."""


class LocalProposer:
    """Commits each batch immediately at the next index."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def propose(
        self, changes: Sequence[Change], now: float, on_done: Done, built_at: int | None = None
    ) -> None:
        index = self.store.index + 1
        try:
            batch = self.store.apply(changes, index, now)
        except SwarmError as err:
            on_done(None, err)
            return
        on_done(batch, None)

    def flush(self) -> None:
        pass
