"""The proposer seam: the one path by which change batches become committed.

A proposer takes a batch and calls ``on_done`` once the batch has been applied
to the store (or refused). In a one-manager swarm without Raft, ``LocalProposer``
commits at once; the Raft-backed proposer replaces it without callers noticing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pyswarmkit.api.errors import SwarmError
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

Done = Callable[[EventBatch | None, SwarmError | None], None]


class Proposer(Protocol):
    def propose(self, changes: Sequence[Change], now: float, on_done: Done) -> None: ...


class LocalProposer:
    """Commits each batch immediately at the next index."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def propose(self, changes: Sequence[Change], now: float, on_done: Done) -> None:
        index = self.store.index + 1
        try:
            batch = self.store.apply(changes, index, now)
        except SwarmError as err:
            on_done(None, err)
            return
        on_done(batch, None)
