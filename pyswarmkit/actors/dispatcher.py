"""Carries agent messages to the dispatcher core and its answers back, and
its store writes to the store."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pykka

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor, watch_store
from pyswarmkit.actors.messages import Committed, Deliver, StoreEvents, Tick, Transact
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.api.protocol import Error
from pyswarmkit.dispatcher.core import Dispatcher, Effects, Outgoing, Write
from pyswarmkit.metrics import Metrics
from pyswarmkit.store.memory import EventBatch, MemoryStore
from pyswarmkit.transport.bus import Bus, Envelope

log = logging.getLogger(__name__)


class DispatcherActor(GuardedActor):
    name = "dispatcher"

    def __init__(
        self, registry: Registry, store: MemoryStore, bus: Bus, metrics: Metrics | None = None
    ) -> None:
        super().__init__()
        self.metrics = metrics
        self._missed = 0
        self.registry = registry
        self.store = store
        self.bus = bus
        # The heartbeat period comes from the cluster object (read in start, followed after).
        self.core = Dispatcher()
        self._cancel_watch: Any = None
        # Messages dropped because they arrived after their deadline.
        self.expired = 0

    def on_start(self) -> None:
        ref = self.actor_ref
        self._cancel_watch = watch_store(self.store, ref)
        self._carry_out(self.core.start(self.store, clock.monotonic()))

    def on_stop(self) -> None:
        if self._cancel_watch is not None:
            self._cancel_watch()
        if self.metrics is not None:
            self.metrics.dispatcher_sessions.set(0)

    def handle(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            self._delivered(message)
        elif isinstance(message, StoreEvents):
            self.core.observe(message.batch)
        elif isinstance(message, Tick):
            stalls = self.core.stalls
            fx = self.core.tick(self.store, message.now)
            if self.core.stalls != stalls:
                log.warning(
                    "the dispatcher did not run for %.1fs (this process was stopped or "
                    "starved): the nodes' silence meanwhile does not count against them",
                    self.core.last_stall,
                )
            self._carry_out(fx)
            self._count()
        elif isinstance(message, Committed):
            self._committed(message)
        return None

    def _count(self) -> None:
        if self.metrics is None:
            return
        self.metrics.dispatcher_sessions.set(len(self.core.sessions))
        missed, self._missed = self.core.missed - self._missed, self.core.missed
        if missed:
            self.metrics.heartbeat_misses.inc(missed)

    def _delivered(self, msg: Deliver) -> None:
        env = msg.envelope
        now = clock.monotonic()
        if env.expired(now):
            self.expired += 1
            log.debug("dropped %s from %s: past its deadline", env.kind, env.source)
            return
        try:
            fx = self.core.handle(env.source, env.body, msg.addr, now, env.id)
        except SwarmError as err:
            log.warning("refused %s from %s: %s", env.kind, env.source, err)
            session_id = getattr(env.body, "session_id", "")
            error = Error.of(err, env.kind, session_id)
            self._send(Outgoing(env.source, error, env.id))
            return
        self._carry_out(fx)

    def _committed(self, message: Committed) -> None:
        write = message.context
        if message.error is None:
            if isinstance(write, Write):
                for out in write.then:
                    self._send(out)
            return
        log.warning("dispatcher write refused: %s", message.error)
        if isinstance(write, Write) and write.node_id:
            error = Error.of(message.error, write.request, write.session_id)
            self._send(Outgoing(write.node_id, error))

    def _carry_out(self, fx: Effects) -> None:
        for write in fx.writes:
            self._transact(write)
        for out in fx.replies:
            self._send(out)

    def _transact(self, write: Write) -> None:
        ref = self.actor_ref
        report = bool(write.then or write.node_id)

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            if err is not None or report:
                # A dispatcher stopped since (leadership lost, the node stopping)
                # has nobody left to tell.
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.tell(Committed(batch, err, write))

        self.registry.tell("store", Transact(write.build, clock.wall(), done))

    def _send(self, out: Outgoing) -> None:
        # Past the session grace the agent has registered afresh (or is gone),
        # and whatever this says has been said again since.
        env = Envelope(
            self.registry.node_id,
            out.node_id,
            "agent",
            out.body,
            reply_to=out.reply_to,
            deadline=clock.monotonic() + self.core.grace,
        )
        self.bus.send(env)
