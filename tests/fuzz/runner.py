"""Runs a surface over ``count`` inputs from a seed and counts what happened.

Input ``i`` of seed ``S`` for a surface comes from its own generator, seeded
with ``(S, surface)`` and advanced ``i`` inputs, so any one input can be made
again without running the others (``replay``). An input that takes longer
than ``SLOW_SECONDS`` counts as a crash (a hang in the making); with
``watchdog`` an alarm also interrupts one that never returns.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.fuzz.corpus import corpus
from tests.fuzz.mutator import MSGPACK, TOML, YAML, Mutator
from tests.fuzz.surfaces import Surface, surfaces

# Seconds of this thread's CPU time (wall time says more about the machine's
# load than about the input).
SLOW_SECONDS = 2.0
# Wall seconds before the watchdog interrupts an input that never returns.
HANG_SECONDS = 60


class Hang(Exception):
    """An input ran past ``HANG_SECONDS``."""


@dataclass
class Crash:
    surface: str
    seed: int
    index: int
    data: bytes
    error: str
    trace: str = ""

    def report(self) -> str:
        shown = self.data if len(self.data) <= 4096 else self.data[:4096]
        more = "" if shown is self.data else f" ... ({len(self.data)} bytes in all)"
        return (
            f"CRASH surface={self.surface} seed={self.seed} index={self.index}: {self.error}\n"
            f"  replay: python -m tests.fuzz --surface {self.surface} --seed {self.seed} "
            f"--replay {self.index}\n"
            f"  input ({len(self.data)} bytes, hex): {shown.hex()}{more}\n{self.trace}"
        )


@dataclass
class Result:
    surface: str
    seed: int
    inputs: int = 0
    typed: int = 0
    accepted: int = 0
    seconds: float = 0.0
    crashes: list[Crash] = field(default_factory=list)
    # The most frequent refusals, to see what the inputs reach.
    reasons: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"{self.surface:<9} {self.inputs:>8} {self.typed:>8} {self.accepted:>9} "
            f"{len(self.crashes):>8} {self.seconds:>9.1f}"
        )


HEADER = f"{'surface':<9} {'inputs':>8} {'typed':>8} {'accepted':>9} {'crashes':>8} {'seconds':>9}"


def mutator(name: str, seed: int) -> Mutator:
    rng = random.Random(f"{seed}:{name}")
    structure = {"topology": TOML, "compose": YAML}.get(name, MSGPACK)
    return Mutator(rng, corpus(name), structure)


def inputs(name: str, seed: int, count: int, start: int = 0) -> Iterator[tuple[int, bytes]]:
    m = mutator(name, seed)
    for i in range(start + count):
        data = m.input()
        if i >= start:
            yield i, data


@contextlib.contextmanager
def _alarm(on: bool) -> Iterator[None]:
    if not on or threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(_sig: int, _frame: object) -> None:
        raise Hang(f"no answer within {HANG_SECONDS} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one(surface: Surface, data: bytes, watchdog: bool = False) -> tuple[str, BaseException | None]:
    """("accepted" | "typed" | "crash", the exception)."""
    started = time.thread_time()
    try:
        with _alarm(watchdog):
            surface.run(data)
    except Exception as exc:
        spent = time.thread_time() - started
        if surface.is_typed(exc) and spent < SLOW_SECONDS:
            return "typed", exc
        if surface.is_typed(exc):
            return "crash", Hang(f"refused, but only after {spent:.1f} s of CPU: {exc}")
        return "crash", exc
    spent = time.thread_time() - started
    if spent >= SLOW_SECONDS:
        return "crash", Hang(f"accepted, but only after {spent:.1f} s of CPU")
    return "accepted", None


def run(
    name: str, count: int, seed: int, *, watchdog: bool = False, max_crashes: int = 20
) -> Result:
    surface = surfaces()[name]
    result = Result(name, seed)
    began = time.perf_counter()
    surface.reset()
    for i, data in inputs(name, seed, count):
        if surface.reset_every and i and i % surface.reset_every == 0:
            surface.reset()
        outcome, exc = one(surface, data, watchdog)
        result.inputs += 1
        if outcome == "accepted":
            result.accepted += 1
        elif outcome == "typed":
            result.typed += 1
            key = type(exc).__name__ + ": " + str(exc)[:40]
            result.reasons[key] = result.reasons.get(key, 0) + 1
        else:
            assert exc is not None
            trace = "".join(traceback.format_exception(exc)[-6:])
            crash = Crash(name, seed, i, data, f"{type(exc).__name__}: {exc}"[:500], trace)
            result.crashes.append(crash)
            if len(result.crashes) >= max_crashes:
                break
    result.seconds = time.perf_counter() - began
    return result


def replay(name: str, seed: int, index: int) -> tuple[str, BaseException | None, bytes]:
    """Input ``index`` of ``seed`` again, from the state a run gives it: the
    surface's state is rebuilt from the inputs since its last reset."""
    surface = surfaces()[name]
    surface.reset()
    first = index - index % surface.reset_every if surface.reset_every else index
    outcome: tuple[str, BaseException | None] = ("accepted", None)
    data = b""
    for _i, data in inputs(name, seed, index - first + 1, start=first):
        outcome = one(surface, data)
    return outcome[0], outcome[1], data
