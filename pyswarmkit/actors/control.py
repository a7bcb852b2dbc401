"""Answers control API requests: reads from the store, writes through it, and
keeps the ring of recently committed batches ``events.since`` reads."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import ControlRequest, Transact
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import Internal, SwarmError, Unavailable
from pyswarmkit.control.events import EventRing
from pyswarmkit.control.handlers import Handlers, Outcome, Reply, events_since
from pyswarmkit.metrics import Metrics
from pyswarmkit.store.memory import EventBatch, MemoryStore

log = logging.getLogger(__name__)


def ok(value: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": value}


def failed(err: SwarmError) -> dict[str, Any]:
    return {"ok": False, "error": err.to_wire()}


@dataclass(frozen=True, slots=True)
class Committed:
    """A batch the store committed, and when (wall clock, read as it committed)."""

    batch: EventBatch
    wall: float


class ControlActor(GuardedActor):
    name = "control"

    def __init__(
        self,
        registry: Registry,
        store: MemoryStore,
        handlers: Handlers,
        ring: EventRing | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__()
        self.metrics = metrics
        self.registry = registry
        self.store = store
        self.handlers = handlers
        # Starts empty: a restarted control actor knows only what commits from then on.
        self.events = ring or EventRing()
        self._unwatch: Callable[[], None] | None = None

    def on_start(self) -> None:
        ref = self.actor_ref

        def committed(batch: EventBatch) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(Committed(batch, clock.wall()))

        self._unwatch = self.store.watch(committed)

    def on_stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()

    def handle(self, message: Any) -> Any:
        if isinstance(message, Committed):
            self.events.record(message.batch, message.wall)
        elif isinstance(message, ControlRequest):
            self._request(message)
        return None

    def _request(self, req: ControlRequest) -> None:
        try:
            outcome: Outcome
            if req.method == "events.since":
                outcome = events_since(self.events, req.body)
            else:
                outcome = self.handlers.handle(self.store, req.method, req.body)
        except SwarmError as err:
            self._answer(req, failed(err))
            return
        except Exception as exc:
            log.exception("control request %s failed", req.method)
            self._answer(req, failed(Internal(f"{req.method} failed: {exc}")))
            return
        if isinstance(outcome, Reply):
            self._answer(req, ok(outcome.value))
            return

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            if err is not None:
                self._answer(req, failed(err))
                return
            try:
                result = outcome.result(batch)
            except Exception as exc:
                self._answer(req, failed(Internal(f"{req.method} failed: {exc}")))
                return
            self._answer(req, ok(result))

        if not self.registry.tell("store", Transact(outcome.build, clock.wall(), done)):
            self._answer(
                req, failed(Unavailable("the store is not running: is the node shutting down?"))
            )

    def _answer(self, req: ControlRequest, reply: dict[str, Any]) -> None:
        if self.metrics is not None:
            code = "ok" if reply.get("ok") else str(reply.get("error", {}).get("code", ""))
            self.metrics.control_request(req.method, code)
        answer(req, reply)


def answer(req: ControlRequest, reply: dict[str, Any]) -> None:
    """Send a reply; one that cannot be encoded becomes an internal error, so a
    bad object never takes the control actor down with it."""
    try:
        req.reply(reply)
    except Exception as exc:
        log.exception("reply to %s could not be sent", req.method)
        try:
            req.reply(failed(Internal(f"{req.method}: the reply could not be encoded: {exc}")))
        except Exception:
            log.exception("error reply to %s could not be sent either", req.method)
