"""Where time comes from, in two kinds.

``monotonic()`` measures durations: heartbeat expiry, restart delays, stop
grace periods, timeouts and debounces. It never jumps. ``wall()`` is for
timestamps people read and objects record (created_at, status times); it may
jump when the machine's clock is set. Code reads time only through these two,
so a test can make the wall clock jump and check that no duration moves.
"""

from __future__ import annotations

import threading
import time


def monotonic() -> float:
    return time.monotonic()


def wall() -> float:
    return time.time()


def sleep(seconds: float) -> None:
    """Wait ``seconds`` on the monotonic clock. Not ``time.sleep``, which is an
    absolute ``clock_nanosleep`` that wall-clock shims such as libfaketime
    (the chaos harness's clock jumps) break with EINVAL."""
    if seconds > 0:
        threading.Event().wait(seconds)
