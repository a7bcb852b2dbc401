"""The one rule every actor follows: a message that makes a handler raise is
logged, with the message, and the actor goes on serving the next one.

Subclasses implement ``handle`` instead of pykka's ``on_receive``. An actor
that stops anyway (a failure in pykka itself, a ``stop`` from outside) is the
node's supervisor's business: it restarts it or ends the node.
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

log = logging.getLogger(__name__)

# Messages can hold whole batches; the log gets their start.
_SHOWN = 300


def shown(message: Any) -> str:
    text = repr(message)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


class GuardedActor(pykka.ThreadingActor):
    name = "actor"
    # Handler failures so far; tests and the supervisor read it.
    failures = 0

    def on_receive(self, message: Any) -> Any:
        try:
            return self.handle(message)
        except Exception:
            self.failures += 1
            log.exception("%s failed on %s; carrying on", self.name, shown(message))
            return None

    def handle(self, message: Any) -> Any:
        raise NotImplementedError
