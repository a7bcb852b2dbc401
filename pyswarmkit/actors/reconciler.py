"""The shape shared by the orchestrator and scheduler actors: on a tick, if the
core has work, take one batch of decisions and propose it; one batch in flight
at a time, so the core never decides twice on what is not yet committed."""

from __future__ import annotations

import logging
from typing import Any

import pykka

from pyswarmkit.actors.messages import Committed, Propose, StoreEvents, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

log = logging.getLogger(__name__)


class ReconcilerActor(pykka.ThreadingActor):
    name = "reconciler"

    def __init__(self, registry: Registry, store: MemoryStore) -> None:
        super().__init__()
        self.registry = registry
        self.store = store
        self.busy = False
        self._cancel_watch: Any = None

    def on_start(self) -> None:
        ref = self.actor_ref
        self._cancel_watch = self.store.watch(lambda batch: ref.tell(StoreEvents(batch)))
        self.reset()

    def on_stop(self) -> None:
        if self._cancel_watch is not None:
            self._cancel_watch()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StoreEvents):
            self.observe(message.batch)
        elif isinstance(message, Tick):
            if not self.busy and self.due(message.now):
                self._decide(message.now, message.wall)
        elif isinstance(message, Committed):
            self.busy = False
            if message.error is not None:
                self.refused(message.context, message.error)
        return None

    def _decide(self, now: float, wall: float) -> None:
        changes = self.decide(now, wall)
        if not changes:
            return
        self.busy = True
        ref = self.actor_ref

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            ref.tell(Committed(batch, err, changes))

        if not self.registry.tell("store", Propose(changes, wall, done)):
            self.busy = False

    # Subclasses fill these in.
    def reset(self) -> None:
        raise NotImplementedError

    def observe(self, batch: EventBatch) -> None:
        raise NotImplementedError

    def due(self, now: float) -> bool:
        raise NotImplementedError

    def decide(self, now: float, wall: float) -> list[Change]:
        """One batch of decisions; ``now`` is monotonic, ``wall`` for timestamps."""
        raise NotImplementedError

    def refused(self, changes: list[Change], error: SwarmError) -> None:
        raise NotImplementedError
