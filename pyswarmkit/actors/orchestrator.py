"""Runs the replicated orchestrator core on the leader."""

from __future__ import annotations

import logging

from pyswarmkit import clock
from pyswarmkit.actors.reconciler import ReconcilerActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.orchestrator.replicated import ReplicatedOrchestrator
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

log = logging.getLogger(__name__)


class OrchestratorActor(ReconcilerActor):
    name = "orchestrator"

    def __init__(self, registry: Registry, store: MemoryStore) -> None:
        super().__init__(registry, store)
        self.core = ReplicatedOrchestrator()

    def reset(self) -> None:
        # Restart delays are rebuilt from the tasks' wall-clock creation times,
        # so the core needs both clocks read at the same moment.
        self.core.reset(self.store, clock.monotonic(), clock.wall())

    def observe(self, batch: EventBatch) -> None:
        self.core.observe(batch)

    def due(self, now: float) -> bool:
        return self.core.due(now)

    def decide(self, now: float, wall: float) -> list[Change]:
        return self.core.step(self.store, now, wall)

    def refused(self, changes: list[Change], error: SwarmError) -> None:
        # Somebody wrote first; the store is the truth, so look at it all again,
        # keeping the restart times this leader holds on its monotonic clock.
        log.debug("orchestrator batch refused: %s", error)
        self.core.reset(self.store, clock.monotonic(), clock.wall(), resync=True)
