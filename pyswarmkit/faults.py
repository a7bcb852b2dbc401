"""Faults injected into one node's remote traffic and disk, for the chaos harness.

Off unless the process starts with ``PYSWARMKIT_FAULTS`` in its environment
(nothing a peer sends can turn it on, and ``swarmd`` logs a warning when it is
on). The value is ``key=value`` pairs separated by commas:

- ``seed=N``: the faults' random sequence (a seeded run replays);
- ``drop=P``, ``dup=P``, ``delay=P``: the chance that an outgoing message is
  lost, sent twice, or held back (and so reordered) by up to ``delay_max=S``
  seconds (default 0.5);
- ``file=PATH``: a file whose content ``isolate`` cuts the node off from
  every other (everything in and out is dropped) until it says otherwise,
  and whose content ``calm`` stops the random faults, read at most every
  ``CHECK_EVERY`` seconds: a network partition, and its end, on demand;
- ``fsync_delay=S``: every sync of the Raft log waits S seconds more (a
  slow disk).

Pure: decisions come from the seeded generator and the ``now`` passed in; the
bus reads the file through ``refresh``.
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
from dataclasses import dataclass
from typing import Any

ENV = "PYSWARMKIT_FAULTS"
CHECK_EVERY = 0.2


@dataclass(frozen=True, slots=True)
class FaultSpec:
    seed: int = 0
    drop: float = 0.0
    dup: float = 0.0
    delay: float = 0.0
    delay_max: float = 0.5
    file: str = ""
    fsync_delay: float = 0.0

    def __str__(self) -> str:
        parts = [f"drop {self.drop:g}", f"dup {self.dup:g}", f"delay {self.delay:g}"]
        if self.file:
            parts.append(f"partitions from {self.file}")
        if self.fsync_delay:
            parts.append(f"fsync delay {self.fsync_delay:g}s")
        return ", ".join(parts)


def parse(text: str) -> FaultSpec:
    """``text`` as the environment variable holds it; ValueError saying what is wrong."""
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{ENV}: {part!r} is not key=value")
        if key == "file":
            values[key] = value
        elif key == "seed":
            values[key] = int(value)
        elif key in ("drop", "dup", "delay", "delay_max", "fsync_delay"):
            number = float(value)
            if not 0 <= number <= (60 if key in ("delay_max", "fsync_delay") else 1):
                raise ValueError(f"{ENV}: {key}={value} is out of range")
            values[key] = number
        else:
            raise ValueError(
                f"{ENV}: unknown key {key!r}: use seed, drop, dup, delay, delay_max, file"
            )
    return FaultSpec(**values)


def from_env() -> FaultSpec | None:
    text = os.environ.get(ENV, "")
    return parse(text) if text else None


def fsync_delay() -> float:
    """The slow disk the environment asks for (0: none; a bad value is the
    transport's to report)."""
    try:
        spec = from_env()
    except ValueError:
        return 0.0
    return 0.0 if spec is None else spec.fsync_delay


class Faults:
    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.isolated = False
        self.calm = False
        self._held: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._next_check = 0.0
        self.dropped = 0
        self.duplicated = 0
        self.delayed = 0

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def outgoing(self, item: Any, now: float) -> list[Any]:
        """What to send now in place of ``item``: nothing (lost or held), it,
        or it twice."""
        if self.isolated:
            self.dropped += 1
            return []
        if self.calm:
            return [item]
        spec, roll = self.spec, self.rng.random()
        if roll < spec.drop:
            self.dropped += 1
            return []
        roll -= spec.drop
        if roll < spec.dup:
            self.duplicated += 1
            return [item, item]
        roll -= spec.dup
        if roll < spec.delay:
            self.delayed += 1
            release = now + self.rng.uniform(0, spec.delay_max)
            heapq.heappush(self._held, (release, next(self._order), item))
            return []
        return [item]

    def due(self, now: float) -> list[Any]:
        """Held messages whose time has come, oldest release first."""
        out = []
        while self._held and self._held[0][0] <= now:
            out.append(heapq.heappop(self._held)[2])
        if self.isolated:
            self.dropped += len(out)
            return []
        return out

    def incoming(self) -> bool:
        """Whether a message from another node gets through."""
        if self.isolated:
            self.dropped += 1
            return False
        return True

    def refresh(self, now: float) -> None:
        """Read the partition file, at most every CHECK_EVERY seconds."""
        if not self.spec.file or now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY
        try:
            with open(self.spec.file) as f:
                text = f.read().strip()
        except OSError:
            text = ""
        self.isolated = text == "isolate"
        self.calm = text == "calm"
