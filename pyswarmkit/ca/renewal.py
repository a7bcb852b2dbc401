"""When a node renews its certificate: a pure timer the renewer actor drives.

A renewal is due at a random point between 50 % and 80 % of the certificate's
validity (``certs.renewal_delay``), so the nodes of a swarm that joined
together do not all renew at once. A failed attempt is tried again after a
growing pause, never longer than ``RETRY_MAX``.

A renewal is due when either clock says so: the monotonic one, which a clock
change does not move, or the wall clock, which also runs while the machine
sleeps (the monotonic clock does not) and so sees a certificate get old across
a suspend. A wall clock set forward wrongly costs one early renewal, no more:
the next one is planned from the new certificate's issue time, not from the
local clock. ``scale`` shrinks every delay
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
    # The same moment on the wall clock, as it read when the renewal was planned.
    due_wall: float = math.inf
    in_flight: bool = False
    failures: int = 0

    def schedule(
        self,
        not_before: float,
        not_after: float,
        wall: float,
        now: float,
        ca_now: float | None = None,
    ) -> float:
        """Plan the renewal of the certificate valid over [not_before, not_after]
        (wall seconds); returns the delay in seconds. ``ca_now`` is the CA's
        time now, as far as it is known (a certificate just received was issued
        now, whatever this machine's clock reads); without it, ``wall``."""
        ca_wall = wall if ca_now is None else ca_now
        delay = renewal_delay(not_before, not_after, ca_wall, self.rng) * self.scale
        self.due = now + delay
        self.due_wall = wall + delay
        self.in_flight = False
        self.failures = 0
        return delay

    def start(self, now: float, wall: float | None = None) -> bool:
        """Whether an attempt should start now; if so it is in flight until
        ``schedule`` or ``failed``."""
        wall_due = wall is not None and wall >= self.due_wall
        if self.in_flight or (now < self.due and not wall_due):
            return False
        self.in_flight = True
        return True

    def failed(self, now: float, wall: float | None = None) -> float:
        """The attempt failed: the pause before the next one."""
        self.in_flight = False
        self.failures += 1
        pause: float = min(RETRY_MAX, RETRY_FIRST * 2.0 ** (self.failures - 1)) * self.scale
        self.due = now + pause
        # Without a wall reading the pause is kept on the monotonic clock alone.
        self.due_wall = math.inf if wall is None else wall + pause
        return pause
