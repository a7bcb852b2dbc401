"""Answers control API requests: reads from the store, writes through it."""

from __future__ import annotations

import logging
from typing import Any

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import ControlRequest, Transact
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import Internal, SwarmError, Unavailable
from pyswarmkit.control.handlers import Handlers, Reply
from pyswarmkit.store.memory import EventBatch, MemoryStore

log = logging.getLogger(__name__)


def ok(value: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": value}


def failed(err: SwarmError) -> dict[str, Any]:
    return {"ok": False, "error": err.to_wire()}


class ControlActor(GuardedActor):
    name = "control"

    def __init__(self, registry: Registry, store: MemoryStore, handlers: Handlers) -> None:
        super().__init__()
        self.registry = registry
        self.store = store
        self.handlers = handlers

    def handle(self, message: Any) -> Any:
        if isinstance(message, ControlRequest):
            self._request(message)
        return None

    def _request(self, req: ControlRequest) -> None:
        try:
            outcome = self.handlers.handle(self.store, req.method, req.body)
        except SwarmError as err:
            answer(req, failed(err))
            return
        except Exception as exc:
            log.exception("control request %s failed", req.method)
            answer(req, failed(Internal(f"{req.method} failed: {exc}")))
            return
        if isinstance(outcome, Reply):
            answer(req, ok(outcome.value))
            return

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            if err is not None:
                answer(req, failed(err))
                return
            try:
                result = outcome.result(batch)
            except Exception as exc:
                answer(req, failed(Internal(f"{req.method} failed: {exc}")))
                return
            answer(req, ok(result))

        if not self.registry.tell("store", Transact(outcome.build, clock.wall(), done)):
            answer(req, failed(Unavailable("the store is not running: is the node shutting down?")))


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
