"""Runs a scheduling core on the leader.

Besides the node's ticks, the actor wakes itself when the core's debounce
ends (``wake_at``), so a committed batch of new tasks is placed a few ms
after it is ingested rather than at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pyswarmkit import clock
from pyswarmkit.actors.messages import Tick
from pyswarmkit.actors.reconciler import ReconcilerActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.metrics import Metrics
from pyswarmkit.scheduler.base import SchedulerCore
from pyswarmkit.scheduler.core import Scheduler
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

log = logging.getLogger(__name__)


def default_core() -> SchedulerCore:
    return Scheduler()


class Waker:
    """A thread that sends ``Tick`` once the monotonic clock reaches the
    earliest time asked for with ``at``. It keeps no other state: asking again
    for a later time than the one pending changes nothing."""

    def __init__(self, tell: Callable[[Tick], Any], name: str) -> None:
        self._tell = tell
        self._cond = threading.Condition()
        self._when: float | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def at(self, when: float) -> None:
        with self._cond:
            if self._when is None or when < self._when:
                self._when = when
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._when is None:
                    self._cond.wait()
                    continue
                delay = self._when - clock.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                self._when = None
                self._cond.release()
                try:
                    self._tell(Tick(clock.monotonic(), clock.wall()))
                except Exception:  # the actor is gone: nothing left to wake
                    log.debug("scheduler waker: tell failed", exc_info=True)
                finally:
                    self._cond.acquire()


# A new leader places nothing for up to this long while nodes that were READY
# have not registered with it yet (they do within a couple of seconds of an
# election: an agent turns as soon as its connection to the old leader drops).
SETTLE = 5.0


class SchedulerActor(ReconcilerActor):
    name = "scheduler"

    def __init__(
        self,
        registry: Registry,
        store: MemoryStore,
        core: SchedulerCore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(registry, store)
        self.core = core or default_core()
        self.metrics = metrics
        self.waker: Waker | None = None
        # The first reset is a new leader's: it lets the nodes come back first.
        self._settle = SETTLE

    def on_start(self) -> None:
        self.waker = Waker(self.actor_ref.tell, f"scheduler-waker-{self.registry.node_id}")
        self.waker.start()
        super().on_start()
        self._arm()

    def on_stop(self) -> None:
        super().on_stop()
        if self.waker is not None:
            self.waker.stop()

    def on_receive(self, message: Any) -> Any:
        try:
            return super().on_receive(message)
        finally:
            self._arm()

    def _arm(self) -> None:
        """Ask to be woken when the core has work due, unless a batch of its
        decisions is still in flight (its commit wakes us again)."""
        if self.waker is None or getattr(self, "busy", False):
            return
        if self._stale:
            # Backing off after a core failure: the core is not asked (it may
            # be broken), and the next try is at the back-off's time, not in a
            # loop of wake-ups that each return at once.
            self.waker.at(self._retry_at)
            return
        when = self.core.wake_at()
        if when is not None:
            self.waker.at(when)

    def reset(self) -> None:
        settle, self._settle = self._settle, 0.0
        with self.store.reading():
            self.core.reset(self.store.nodes(), self.store.tasks(), clock.monotonic(), settle)

    def observe(self, batch: EventBatch) -> None:
        # Read at ingestion, not taken from the last tick: the debounce
        # starts when the batch arrives.
        self.core.observe(batch, clock.monotonic())

    def due(self, now: float) -> bool:
        return self.core.due(now)

    def decide(self, now: float, wall: float) -> list[Change]:
        if self.metrics is None:
            return self.core.schedule(now, wall)
        started = clock.monotonic()
        changes = self.core.schedule(now, wall)
        self.metrics.scheduler_pass(clock.monotonic() - started, len(changes))
        return changes

    def refused(self, changes: list[Change], error: SwarmError) -> None:
        log.debug("scheduler batch refused: %s", error)
        self.core.rejected(changes)
