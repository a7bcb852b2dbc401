"""Runs the orchestrator cores on the leader: replicated services, global
services, jobs, and the constraint enforcer.

Each core decides on its own batch and they take turns, one batch in flight at
a time: a core always decides on a store that holds what the others decided
before it, so two cores never write the same task from the same version."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pyswarmkit import clock
from pyswarmkit.actors.reconciler import ReconcilerActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.orchestrator.constraint_enforcer import ConstraintEnforcer
from pyswarmkit.orchestrator.global_ import GlobalOrchestrator
from pyswarmkit.orchestrator.jobs import JobsOrchestrator
from pyswarmkit.orchestrator.replicated import ReplicatedOrchestrator
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Core:
    """One core as the actor drives it."""

    name: str
    reset: Callable[[bool], None]
    observe: Callable[[EventBatch], None]
    due: Callable[[float], bool]
    step: Callable[[float, float], list[Change]]


class OrchestratorActor(ReconcilerActor):
    name = "orchestrator"

    def __init__(self, registry: Registry, store: MemoryStore) -> None:
        super().__init__(registry, store)
        self.core = ReplicatedOrchestrator()
        self.global_core = GlobalOrchestrator()
        self.jobs = JobsOrchestrator()
        self.enforcer = ConstraintEnforcer()
        self.cores = [
            Core(
                "replicated",
                lambda resync: self.core.reset(
                    self.store, clock.monotonic(), clock.wall(), resync=resync
                ),
                self.core.observe,
                self.core.due,
                lambda now, wall: self.core.step(self.store, now, wall),
            ),
            Core(
                "global",
                lambda resync: self.global_core.reset(
                    self.store, clock.monotonic(), clock.wall(), resync=resync
                ),
                self.global_core.observe,
                self.global_core.due,
                lambda now, wall: self.global_core.step(self.store, now, wall),
            ),
            Core(
                "jobs",
                lambda resync: self.jobs.reset(
                    self.store, clock.monotonic(), clock.wall(), resync=resync
                ),
                self.jobs.observe,
                self.jobs.due,
                lambda now, wall: self.jobs.step(self.store, now, wall),
            ),
            Core(
                "constraint enforcer",
                lambda resync: self.enforcer.reset(self.store),
                self.enforcer.observe,
                lambda now: self.enforcer.due(),
                lambda now, wall: self.enforcer.step(self.store, wall),
            ),
        ]
        # The core after the one that last proposed goes first: none starves.
        self._turn = 0

    def reset(self) -> None:
        # Restart delays are rebuilt from the tasks' wall-clock creation times,
        # so the cores need both clocks read at the same moment.
        for core in self.cores:
            core.reset(False)

    def observe(self, batch: EventBatch) -> None:
        for core in self.cores:
            core.observe(batch)

    def due(self, now: float) -> bool:
        return any(core.due(now) for core in self.cores)

    def decide(self, now: float, wall: float) -> list[Change]:
        n = len(self.cores)
        for i in range(n):
            k = (self._turn + i) % n
            core = self.cores[k]
            if not core.due(now):
                continue
            changes = core.step(now, wall)
            if changes:
                self._turn = (k + 1) % n
                return changes
        return []

    def refused(self, changes: list[Change], error: SwarmError) -> None:
        # Somebody wrote first; the store is the truth, so look at it all again,
        # keeping the restart times the cores hold on this leader's monotonic clock.
        log.debug("orchestrator batch refused: %s", error)
        for core in self.cores:
            core.reset(True)
