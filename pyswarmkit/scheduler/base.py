"""What the scheduler actor needs from a scheduling core.

The actor feeds store events in, asks for decisions on its ticks, proposes the
decisions as one batch, and reports a refused batch back so the core can undo
the bookkeeping it did for it. Cores are pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from pyswarmkit.api.objects import Node, Task
from pyswarmkit.store.memory import Change, EventBatch


class SchedulerCore(Protocol):
    def reset(
        self, nodes: Iterable[Node], tasks: Iterable[Task], now: float, settle: float = 0.0
    ) -> None:
        """Start over from a full view of the store (on start and on leadership gain)."""

    def observe(self, batch: EventBatch, now: float) -> None:
        """Take in one committed batch of store events."""

    def due(self, now: float) -> bool:
        """Whether ``schedule`` has work worth doing now (debounced)."""

    def wake_at(self) -> float | None:
        """When ``due`` turns true if no other event comes (monotonic): None
        without work, ``-inf`` when due already. The actor wakes itself then."""

    def schedule(self, now: float, wall: float | None = None) -> list[Change]:
        """Decide placements for pending tasks; the changes form one batch.
        ``now`` is monotonic; ``wall`` (default ``now``) stamps the task statuses."""

    def rejected(self, changes: Sequence[Change]) -> None:
        """The batch from ``schedule`` was refused; forget what it assumed."""
