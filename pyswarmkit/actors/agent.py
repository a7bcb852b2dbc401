"""Carries messages between the agent core, the dispatcher (over the bus) and
this node's executor."""

from __future__ import annotations

import logging
import random
from typing import Any

import pykka

from pyswarmkit import clock
from pyswarmkit.actors.messages import Deliver, ExecutorEvent, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Agent, Effects
from pyswarmkit.api.objects import NodeDescription, Task
from pyswarmkit.transport.bus import Bus, Envelope

log = logging.getLogger(__name__)


class AgentActor(pykka.ThreadingActor):
    name = "agent"

    def __init__(
        self, registry: Registry, bus: Bus, manager_id: str, description: NodeDescription, addr: str
    ) -> None:
        super().__init__()
        self.registry = registry
        self.bus = bus
        self.manager_id = manager_id
        self.core = Agent(description, random.Random(), addr)

    def on_stop(self) -> None:
        if self.core.session_id:
            self._send("leave", {"session_id": self.core.session_id})

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Tick):
            self._carry_out(self.core.tick(message.now))
        elif isinstance(message, ExecutorEvent):
            self._executor_event(message, clock.monotonic())
        elif isinstance(message, Deliver):
            try:
                self._dispatcher_message(message, clock.monotonic())
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("bad %s message from %s: %s", message.method, message.source, exc)
        return None

    def _executor_event(self, ev: ExecutorEvent, now: float) -> None:
        if ev.kind == "prepared":
            self._carry_out(self.core.prepared(ev.task_id, ev.err, now))
        elif ev.kind == "started":
            self.core.started(ev.task_id, ev.pid, ev.err, now)
        elif ev.kind == "exited":
            self.core.exited(ev.task_id, ev.exit_code, now)

    def _dispatcher_message(self, msg: Deliver, now: float) -> None:
        body = msg.body
        if msg.method == "registered":
            self.core.registered(str(body["session_id"]), float(body["heartbeat_period"]), now)
            log.info("registered with dispatcher on %s", msg.source)
        elif msg.method == "heartbeat_ack":
            self.core.heartbeat_period = float(body["heartbeat_period"])
        elif msg.method == "assignments":
            tasks = [t for t in body["tasks"] if isinstance(t, Task)]
            removed = [str(t) for t in body["removed"]]
            fx = self.core.assignments(
                str(body["session_id"]), bool(body["full"]), tasks, removed, now
            )
            self._carry_out(fx)
        elif msg.method == "error":
            log.warning("dispatcher refused %s: %s", body.get("request"), body.get("message"))
            if body.get("code") == "not_found":
                self.core.session_lost()

    def _carry_out(self, fx: Effects) -> None:
        for cmd in fx.commands:
            self.registry.tell("executor", cmd)
        for m in fx.messages:
            self._send(m.method, m.body)

    def _send(self, method: str, body: dict[str, Any]) -> None:
        self.bus.send(Envelope(self.registry.node_id, self.manager_id, "dispatcher", method, body))
