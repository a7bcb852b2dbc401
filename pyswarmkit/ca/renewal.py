"""When a node renews its certificate: a pure timer the renewer actor drives.

A renewal is due at a random point between 50 % and 80 % of the certificate's
validity (``certs.renewal_delay``), so the nodes of a swarm that joined
together do not all renew at once. A failed attempt is tried again after a
growing pause, never longer than ``RETRY_MAX``. ``scale`` shrinks every delay
(tests run a 30-minute certificate's life in seconds); it is 1 in real use.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pyswarmkit.ca.certs import renewal_delay

RETRY_FIRST = 5.0
RETRY_MAX = 300.0


@dataclass(slots=True)
class Renewal:
    rng: random.Random
    scale: float = 1.0
    # On the monotonic clock; infinity until a certificate is scheduled.
    due: float = math.inf
    in_flight: bool = False
    failures: int = 0

    def schedule(self, not_before: float, not_after: float, wall: float, now: float) -> float:
        """Plan the renewal of the certificate valid over [not_before, not_after]
        (wall seconds); returns the delay in seconds."""
        delay = renewal_delay(not_before, not_after, wall, self.rng) * self.scale
        self.due = now + delay
        self.in_flight = False
        self.failures = 0
        return delay

    def start(self, now: float) -> bool:
        """Whether an attempt should start now; if so it is in flight until
        ``succeeded`` or ``failed``."""
        if self.in_flight or now < self.due:
            return False
        self.in_flight = True
        return True

    def failed(self, now: float) -> float:
        """The attempt failed: the pause before the next one."""
        self.in_flight = False
        self.failures += 1
        pause: float = min(RETRY_MAX, RETRY_FIRST * 2.0 ** (self.failures - 1)) * self.scale
        self.due = now + pause
        return pause
