"""Runs a scheduling core on the leader."""

from __future__ import annotations

import logging

from pyswarmkit.actors.reconciler import ReconcilerActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.scheduler.base import SchedulerCore
from pyswarmkit.scheduler.core import Scheduler
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

log = logging.getLogger(__name__)


def default_core() -> SchedulerCore:
    return Scheduler()


class SchedulerActor(ReconcilerActor):
    name = "scheduler"

    def __init__(
        self, registry: Registry, store: MemoryStore, core: SchedulerCore | None = None
    ) -> None:
        super().__init__(registry, store)
        self.core = core or default_core()
        self.now = 0.0

    def reset(self) -> None:
        with self.store.reading():
            self.core.reset(self.store.nodes(), self.store.tasks(), self.now)

    def observe(self, batch: EventBatch) -> None:
        self.core.observe(batch, self.now)

    def due(self, now: float) -> bool:
        self.now = now
        return self.core.due(now)

    def decide(self, now: float, wall: float) -> list[Change]:
        return self.core.schedule(now)

    def refused(self, changes: list[Change], error: SwarmError) -> None:
        log.debug("scheduler batch refused: %s", error)
        self.core.rejected(changes)
