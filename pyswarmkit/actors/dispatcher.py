"""Carries agent messages to the dispatcher core and its answers back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from pyswarmkit.actors.messages import Committed, Deliver, StoreEvents, Tick, Transact
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.api.objects import NodeDescription
from pyswarmkit.dispatcher.core import Dispatcher, task_status_changes
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
                self._agent_message(message, time.time())
            except SwarmError as err:
                self._send(message.source, "error", {"request": message.method, **err.to_wire()})
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("bad %s message from %s: %s", message.method, message.source, exc)
        elif isinstance(message, StoreEvents):
            self.core.observe(message.batch)
        elif isinstance(message, Tick):
            expired = self.core.expire(message.now)
            if expired:
                self._transact(
                    lambda store: self.core.mark_down(store, expired, "heartbeat failure"),
                    message.now,
                )
            for out in self.core.assignments(self.store):
                self._send(out.node_id, out.method, out.body)
        elif isinstance(message, Committed) and message.error is not None:
            log.warning("dispatcher write refused: %s", message.error)
        return None

    def _agent_message(self, msg: Deliver, now: float) -> None:
        node_id, body = msg.source, msg.body
        if msg.method == "register":
            description = body["description"]
            if not isinstance(description, NodeDescription):
                raise TypeError("register needs a node description")
            addr = str(body.get("addr", ""))
            session_id = self.core.open_session(node_id, now)
            self._transact(lambda store: self.core.register(store, node_id, description, addr), now)
            self._send(
                node_id,
                "registered",
                {"session_id": session_id, "heartbeat_period": self.core.heartbeat_period},
            )
        elif msg.method == "heartbeat":
            period = self.core.heartbeat(node_id, str(body["session_id"]), now)
            self._send(node_id, "heartbeat_ack", {"heartbeat_period": period})
        elif msg.method == "update_task_status":
            updates = [(str(tid), status) for tid, status in body["updates"]]
            self.core.update_task_status(node_id, str(body["session_id"]), now)
            self._transact(lambda store: task_status_changes(store, node_id, updates), now)
        elif msg.method == "leave":
            self.core.close_session(node_id)
            self._transact(
                lambda store: self.core.mark_down(store, [node_id], "node shut down"), now
            )
        else:
            log.warning("unknown dispatcher method %r from %s", msg.method, node_id)

    def _transact(self, build: Callable[[MemoryStore], Sequence[Change]], now: float) -> None:
        ref = self.actor_ref

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            if err is not None:
                ref.tell(Committed(batch, err))

        self.registry.tell("store", Transact(build, now, done))

    def _send(self, node_id: str, method: str, body: dict[str, Any]) -> None:
        self.bus.send(Envelope(self.registry.node_id, node_id, "agent", method, body))
