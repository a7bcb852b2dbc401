"""Messages addressed to (node, actor). The agent and the dispatcher speak only
through a Bus, so moving them onto the network changes the bus, not them."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from pyswarmkit.actors.messages import Deliver
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api import codec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Envelope:
    source: str
    dest_node: str
    dest_actor: str
    method: str
    body: dict[str, Any]


class Bus(Protocol):
    def send(self, envelope: Envelope) -> bool:
        """Hand the message on; False if its destination is unknown right now."""


class LocalBus:
    """Delivers between nodes living in this process.

    Bodies go through the wire codec on the way, so nothing that could not
    cross a real network slips through in-process."""

    def __init__(self) -> None:
        self._nodes: dict[str, Registry] = {}
        self._lock = threading.Lock()
        self.dropped = 0

    def attach(self, registry: Registry) -> None:
        with self._lock:
            self._nodes[registry.node_id] = registry

    def detach(self, node_id: str) -> None:
        with self._lock:
            self._nodes.pop(node_id, None)

    def send(self, envelope: Envelope) -> bool:
        with self._lock:
            registry = self._nodes.get(envelope.dest_node)
        try:
            body = codec.unpackb(codec.packb(envelope.body))
        except (TypeError, ValueError, OverflowError) as exc:
            self.dropped += 1
            log.error(
                "dropped %s to %s: cannot encode it: %s", envelope.method, envelope.dest_node, exc
            )
            return False
        if registry is None or not registry.tell(
            envelope.dest_actor, Deliver(envelope.source, envelope.method, body)
        ):
            self.dropped += 1
            log.debug("no route to %s/%s", envelope.dest_node, envelope.dest_actor)
            return False
        return True
