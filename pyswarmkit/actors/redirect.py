"""What answers for the dispatcher on a manager that does not lead: every
agent request gets ``unavailable`` naming the leader, so the agent turns to
it at once instead of waiting for its own timeouts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Deliver
from pyswarmkit.api.protocol import Error
from pyswarmkit.transport.bus import Bus, Envelope

REPLY_TTL = 5.0


class RedirectActor(GuardedActor):
    name = "dispatcher"

    def __init__(self, node_id: str, bus: Bus, leader: Callable[[], tuple[str, str]]) -> None:
        super().__init__()
        self.node_id = node_id
        self.bus = bus
        self.leader = leader
        self.redirected = 0

    def handle(self, message: Any) -> Any:
        if not isinstance(message, Deliver):
            return None
        env = message.envelope
        if isinstance(env.body, Error):
            return None
        leader, addr = self.leader()
        if leader and leader != self.node_id:
            text = f"this manager does not lead: the leader is {leader}"
        else:
            text = "the swarm has no leader: try again"
            leader, addr = "", ""
        self.redirected += 1
        reply = Error("unavailable", text, env.kind, "", leader, addr)
        self.bus.send(
            Envelope(
                self.node_id,
                env.source,
                "agent",
                reply,
                reply_to=env.id,
                deadline=clock.monotonic() + REPLY_TTL,
            )
        )
        return None
