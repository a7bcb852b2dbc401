"""One thread per node that sends ``Tick(now, wall)`` to the actors that keep time.
Cores never read the clock; this is where time comes from."""

from __future__ import annotations

import threading

from pyswarmkit import clock
from pyswarmkit.actors.messages import Tick
from pyswarmkit.actors.registry import Registry


class Ticker:
    def __init__(self, registry: Registry, names: list[str], interval: float) -> None:
        self.registry = registry
        self.names = names
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ticker-{registry.node_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            tick = Tick(clock.monotonic(), clock.wall())
            for name in self.names:
                self.registry.tell(name, tick)
