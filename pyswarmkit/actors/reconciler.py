"""The shape shared by the orchestrator and scheduler actors: on a tick, if the
core has work, take one batch of decisions and propose it; one batch in flight
at a time, so the core never decides twice on what is not yet committed.

A core that raises does not take the actor with it: the failure is logged with
the message that caused it, the core is rebuilt from the store (the truth) on
a later tick, and while it keeps failing the tries back off, so a persistent
fault neither spins nor floods the log.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import pykka

from pyswarmkit.actors.base import GuardedActor, watch_store
from pyswarmkit.actors.messages import Committed, Propose, StoreEvents, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

log = logging.getLogger(__name__)

# After a failure the core is left alone this long, doubling while it keeps
# failing, up to BACKOFF_MAX; one good decision resets it.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0
# A proposal whose outcome has not come back after this long (monotonic
# seconds) is given up: the store may have lost it (restarted, or a leader
# change dropped it). The core is rebuilt from the store and carries on.
PROPOSAL_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Proposal:
    """What a Committed carries back: which proposal it answers, and its changes."""

    seq: int
    changes: list[Change]


class ReconcilerActor(GuardedActor):
    name = "reconciler"

    def __init__(self, registry: Registry, store: MemoryStore) -> None:
        super().__init__()
        self.registry = registry
        self.store = store
        self.busy = False
        self._cancel_watch: Any = None
        self._seq = 0
        self._busy_since = 0.0
        self._proposed_to: pykka.ActorRef[Any] | None = None
        # The core no longer matches the store (it raised): rebuild it first.
        self._stale = False
        self._backoff = 0.0
        self._retry_at = 0.0
        # The newest tick's monotonic time: failures outside a tick back off from it.
        self._now = 0.0

    def on_start(self) -> None:
        self._cancel_watch = watch_store(self.store, self.actor_ref)
        try:
            self.reset()
        except Exception as exc:
            self._failed("start", exc, "resetting")

    def on_stop(self) -> None:
        if self._cancel_watch is not None:
            self._cancel_watch()
            self._cancel_watch = None

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()

    def handle(self, message: Any) -> Any:
        if isinstance(message, StoreEvents):
            # A stale core is rebuilt from the store, which already holds this batch.
            if not self._stale:
                try:
                    self.observe(message.batch)
                except Exception as exc:
                    self._failed(message, exc, "observing")
        elif isinstance(message, Tick):
            self._tick(message)
        elif isinstance(message, Committed):
            self._committed(message)
        return None

    def _tick(self, tick: Tick) -> None:
        self._now = tick.now
        if self.busy and self.registry.get("store") is not self._proposed_to:
            # The store actor that had the proposal was replaced: it is lost.
            log.info("%s: the store restarted; looking at it again", self.name)
            self.busy = False
            self._stale = True
        elif self.busy and tick.now - self._busy_since > PROPOSAL_TIMEOUT:
            log.warning(
                "%s: no outcome for its proposal after %g s; looking at the store again",
                self.name,
                PROPOSAL_TIMEOUT,
            )
            self.busy = False
            self._stale = True
        if self.busy or tick.now < self._retry_at:
            return
        if self._stale:
            try:
                self.reset()
            except Exception as exc:
                self._failed(tick, exc, "resetting")
                return
            self._stale = False
        try:
            if self.due(tick.now):
                self._decide(tick.now, tick.wall)
        except Exception as exc:
            self._failed(tick, exc, "deciding")
            return
        self._backoff = 0.0

    def _committed(self, message: Committed) -> None:
        proposal = message.context
        if not isinstance(proposal, Proposal) or proposal.seq != self._seq or not self.busy:
            return  # the answer to a proposal given up on; the core was rebuilt since
        self.busy = False
        if message.error is not None:
            try:
                self.refused(proposal.changes, message.error)
            except Exception as exc:
                self._failed(message, exc, "handling a refusal")

    def _failed(self, message: Any, exc: Exception, doing: str) -> None:
        self.failures += 1
        self.log_failure(message, exc, doing)
        self._stale = True
        self._backoff = min(max(self._backoff * 2, BACKOFF_FIRST), BACKOFF_MAX)
        self._retry_at = self._now + self._backoff

    def _decide(self, now: float, wall: float) -> None:
        changes = self.decide(now, wall)
        if not changes:
            return
        self._seq += 1
        proposal = Proposal(self._seq, changes)
        self.busy = True
        self._busy_since = now
        ref = self.actor_ref

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(Committed(batch, err, proposal))

        self._proposed_to = self.registry.get("store")
        if not self.registry.tell("store", Propose(changes, wall, done)):
            # The store is being replaced; what the core decided is not
            # written, so it looks at the store again.
            self.busy = False
            self._stale = True

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
