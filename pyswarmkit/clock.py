"""Where time comes from, in two kinds.

``monotonic()`` measures durations: heartbeat expiry, restart delays, stop
grace periods, timeouts and debounces. It never jumps. ``wall()`` is for
timestamps people read and objects record (created_at, status times); it may
jump when the machine's clock is set. Code reads time only through these two,
so a test can make the wall clock jump and check that no duration moves.
"""

from __future__ import annotations

import time


def monotonic() -> float:
    return time.monotonic()


def wall() -> float:
    return time.time()
