"""One thread per node that sends ``Tick(now, wall)`` to the actors that keep time.
Cores never read the clock; this is where time comes from.

The ticker follows the node: it ticks those of its actors that are registered
right now, so leader-only actors are ticked while they run and never after."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from pyswarmkit import clock
from pyswarmkit.actors.messages import Tick
from pyswarmkit.actors.registry import Registry

log = logging.getLogger(__name__)


class Ticker:
    def __init__(self, registry: Registry, names: Iterable[str], interval: float) -> None:
        self.registry = registry
        # In tick order; only those currently in the registry are ticked.
        self.names = tuple(names)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ticker-{registry.node_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    def ticked(self) -> list[str]:
        """The actors the next tick goes to."""
        running = set(self.registry.names())
        return [n for n in self.names if n in running]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                tick = Tick(clock.monotonic(), clock.wall())
                for name in self.ticked():
                    self.registry.tell(name, tick)
            except Exception:
                # Time must keep coming: a node whose ticker died would look alive
                # and never expire, restart or retry anything again.
                log.exception("ticking failed; ticking on")
