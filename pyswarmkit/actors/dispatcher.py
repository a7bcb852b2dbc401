"""Carries agent messages to the dispatcher core and its answers back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from pyswarmkit import clock
from pyswarmkit.actors.messages import Committed, Deliver, StoreEvents, Tick, Transact
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.dispatcher.core import Dispatcher, Effects
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.transport.bus import Bus, Envelope

log = logging.getLogger(__name__)


class DispatcherActor(pykka.ThreadingActor):
    name = "dispatcher"

    def __init__(
        self, registry: Registry, store: MemoryStore, bus: Bus, heartbeat_period: float
    ) -> None:
        super().__init__()
        self.registry = registry
        self.store = store
        self.bus = bus
        self.core = Dispatcher(heartbeat_period)
        self._cancel_watch: Any = None

    def on_start(self) -> None:
        ref = self.actor_ref
        self._cancel_watch = self.store.watch(lambda batch: ref.tell(StoreEvents(batch)))

    def on_stop(self) -> None:
        if self._cancel_watch is not None:
            self._cancel_watch()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            try:
                now = clock.monotonic()
                fx = self.core.handle(message.source, message.method, message.body, now)
            except SwarmError as err:
                log.warning("refused %s from %s: %s", message.method, message.source, err)
                self._send(message.source, "error", {"request": message.method, **err.to_wire()})
                return None
            self._carry_out(fx, clock.monotonic())
        elif isinstance(message, StoreEvents):
            self.core.observe(message.batch)
        elif isinstance(message, Tick):
            self._carry_out(self.core.tick(self.store, message.now), message.now)
        elif isinstance(message, Committed) and message.error is not None:
            log.warning("dispatcher write refused: %s", message.error)
        return None

    def _carry_out(self, fx: Effects, now: float) -> None:
        for build in fx.writes:
            self._transact(build, now)
        for out in fx.replies:
            self._send(out.node_id, out.method, out.body)

    def _transact(self, build: Callable[[MemoryStore], Sequence[Change]], now: float) -> None:
        ref = self.actor_ref

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            if err is not None:
                ref.tell(Committed(batch, err))

        self.registry.tell("store", Transact(build, now, done))

    def _send(self, node_id: str, method: str, body: dict[str, Any]) -> None:
        self.bus.send(Envelope(self.registry.node_id, node_id, "agent", method, body))
