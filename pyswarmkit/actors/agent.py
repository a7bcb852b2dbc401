"""Carries messages between the agent core, the dispatcher (over the bus) and
this node's executor."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.executor import Inventory, InventoryRequest
from pyswarmkit.actors.messages import Deliver, ExecutorEvent, ExecutorEvents, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.actors.renewer import RenewNow
from pyswarmkit.agent.core import REGISTER_RETRY, Agent, Commands, Effects
from pyswarmkit.api.objects import NodeDescription
from pyswarmkit.api.protocol import Body, Error, Leave, Register, Registered
from pyswarmkit.ca.authz import REMOVED
from pyswarmkit.transport.bus import Bus, Envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ManagerDown:
    """The transport's connection to manager ``node_id`` dropped."""

    node_id: str


class AgentActor(GuardedActor):
    name = "agent"

    def __init__(
        self,
        registry: Registry,
        bus: Bus,
        manager_id: str,
        description: NodeDescription,
        on_removed: Callable[[str], None] | None = None,
        connect: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.bus = bus
        self.manager_id = manager_id
        # Makes sure a manager is reachable at an address before the agent
        # turns to it (a worker dials it; a manager already does).
        self.connect = connect
        # Called once, with the manager's words, when it says this node was
        # removed from the swarm: the node stops (nothing it sends is heard).
        self.on_removed = on_removed
        self.removed = False
        self.core = Agent(description, random.Random(), awaiting_inventory=True)
        # Messages dropped because they arrived after their deadline, or not from the manager.
        self.dropped = 0

    def on_start(self) -> None:
        # The executor (started first in this group) answers with what a
        # previous run left; the core registers only after that.
        if not self.registry.tell("executor", InventoryRequest(self.actor_ref)):
            # No executor to ask (an agent on its own): nothing was left.
            self.core.inventory({}, set())

    def on_stop(self) -> None:
        if self.core.session_id:
            self._send(Leave(self.core.session_id), clock.monotonic())

    def handle(self, message: Any) -> Any:
        if isinstance(message, Tick):
            self._carry_out(self.core.tick(message.now), message.now)
        elif isinstance(message, ExecutorEvents):
            fx = Effects()
            for ev in message.events:
                # One bad event must not cost the others their turn.
                try:
                    self._executor_event(ev, fx)
                except Exception as exc:
                    self.failures += 1
                    self.log_failure(ev, exc)
            self._carry_out(fx, clock.monotonic())
        elif isinstance(message, ExecutorEvent):
            fx = Effects()
            self._executor_event(message, fx)
            self._carry_out(fx, clock.monotonic())
        elif isinstance(message, Deliver):
            self._delivered(message)
        elif isinstance(message, ManagerDown):
            if message.node_id == self.manager_id:
                log.info("the connection to manager %s dropped", message.node_id)
                now = clock.monotonic()
                self._carry_out(self.core.manager_gone(now), now)
        elif isinstance(message, Inventory):
            # The core registers on the next tick, not now: ticks come through
            # the node's registry, so by then this actor is in it and the
            # dispatcher's answer has somewhere to go (an answer lost here
            # left a session open that nothing heartbeat, and the node DOWN).
            self.core.inventory(message.running, message.gone)
        return None

    def _executor_event(self, ev: ExecutorEvent, fx: Effects) -> None:
        """Feed one executor event to the core, adding what it asks for to ``fx``."""
        wall = clock.wall()
        if ev.kind == "prepared":
            more = self.core.prepared(ev.task_id, ev.err, wall)
            fx.commands.extend(more.commands)
            fx.messages.extend(more.messages)
        elif ev.kind in ("started", "waiting"):
            # "waiting": started, and running only once its health check passes.
            self.core.started(ev.task_id, ev.pid, ev.err, wall, ev.kind == "waiting")
        elif ev.kind == "healthy":
            self.core.healthy(ev.task_id, wall)
        elif ev.kind == "exited":
            self.core.exited(ev.task_id, ev.exit_code, wall, ev.err)

    def _delivered(self, msg: Deliver) -> None:
        env = msg.envelope
        now = clock.monotonic()
        if not self.manager_id and env.source:
            # Dialed by address alone (a restart with another --join-addr):
            # the first manager to answer is this node's manager.
            self._switch(env.source)
        if env.source != self.manager_id:
            self.dropped += 1
            log.warning("ignored %s from %s: not this node's manager", env.kind, env.source)
            return
        if env.expired(now):
            self.dropped += 1
            log.debug("dropped %s from %s: past its deadline", env.kind, env.source)
            return
        body = env.body
        if isinstance(body, Error):
            if body.code == "permission_denied" and body.message == REMOVED:
                self._removed(body.message)
                return
            log.warning("dispatcher refused %s: %s", body.request or "a request", body.message)
        fx = self.core.receive(body, now, clock.wall())
        if isinstance(body, Registered) and self.core.session_id == body.session_id:
            log.info("registered with dispatcher on %s", env.source)
        self._carry_out(fx, now)

    def _removed(self, message: str) -> None:
        if self.removed:
            return
        self.removed = True
        # Saying goodbye on stop would only be refused again.
        self.core.session_id = ""
        if self.on_removed is not None:
            self.on_removed(message)

    def _carry_out(self, fx: Effects, now: float) -> None:
        if fx.switch_to or fx.switch_manager:
            self._switch(fx.switch_to)
        if fx.renew_certificate:
            self.registry.tell("renewer", RenewNow())
        if fx.commands:
            self.registry.tell("executor", Commands(tuple(fx.commands)))
        for m in fx.messages:
            self._send(m, now)

    def _switch(self, to: str) -> None:
        """Turn to the manager ``to``, or to the next one the dispatcher named."""
        known = {m.node_id: m.addr for m in self.core.managers}
        if not to:
            order = sorted(known)
            if not order:
                return
            at = order.index(self.manager_id) if self.manager_id in order else -1
            to = order[(at + 1) % len(order)]
        if to == self.manager_id:
            return
        addr = known.get(to, "")
        if self.connect is not None:
            try:
                self.connect(to, addr)
            except Exception as exc:
                log.warning("cannot turn to manager %s at %s: %s", to, addr, exc)
                return
        log.info("turning to manager %s%s", to, f" at {addr}" if addr else "")
        self.manager_id = to

    def _send(self, body: Body, now: float) -> None:
        # Past this, a newer request of the same kind is on its way: answering is useless.
        ttl = REGISTER_RETRY if isinstance(body, Register) else self.core.heartbeat_period
        env = Envelope(
            self.registry.node_id, self.manager_id, "dispatcher", body, deadline=now + ttl
        )
        self.bus.send(env)
