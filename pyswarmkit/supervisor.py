"""Keeps a node's actors alive, or ends the node: never half of one.

Actors are started from factories, in groups: a group is restarted whole when
one of its members stops without being asked (a failure in pykka itself, a
``stop`` from outside, a crash in ``on_start``). The agent and the executor are
one group, since a new agent knows nothing of the tasks an old executor runs.
Each group may be restarted ``limit`` times within ``window`` seconds; one
more stop and the supervisor hands the node one line naming the actor, and the
node stops (``swarmd`` then exits non-zero with that line).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pykka

from pyswarmkit import clock
from pyswarmkit.actors.registry import Registry

log = logging.getLogger(__name__)

Factory = Callable[[], pykka.ActorRef[Any]]
# How long one actor may take to stop (the executor waits up to 10 s for tasks).
STOP_TIMEOUT = 30.0


class RestartBudget:
    """At most ``limit`` restarts of a group within any ``window`` seconds.
    Pure: the caller passes monotonic ``now``."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: dict[str, deque[float]] = {}

    def allow(self, name: str, now: float) -> bool:
        """Whether ``name`` may restart at ``now``; an allowed restart is counted."""
        times = self._times.setdefault(name, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def forget(self, name: str) -> None:
        self._times.pop(name, None)


@dataclass
class Group:
    name: str
    # (actor name, factory), in start order; stopped in the reverse order.
    members: Sequence[tuple[str, Factory]]
    refs: dict[str, pykka.ActorRef[Any]] = field(default_factory=dict)


class Supervisor:
    def __init__(
        self,
        registry: Registry,
        on_fatal: Callable[[str], None],
        limit: int = 5,
        window: float = 60.0,
        interval: float = 0.1,
    ) -> None:
        self.registry = registry
        self.on_fatal = on_fatal
        self.budget = RestartBudget(limit, window)
        self.interval = interval
        # Restarts so far, by actor that stopped; tests and logs read it.
        self.restarts: dict[str, int] = {}
        self._groups: dict[str, Group] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"supervisor-{registry.node_id}", daemon=True
        )

    # --- groups --------------------------------------------------------------

    def start_group(self, name: str, members: Sequence[tuple[str, Factory]]) -> None:
        """Start every member (in order), register it, and watch it from now on."""
        group = Group(name, list(members))
        with self._lock:
            if name in self._groups:
                raise RuntimeError(f"actor group {name} is already running")
            self._start_members(group)
            self._groups[name] = group

    def stop_group(self, name: str) -> None:
        """Stop a group on purpose: it is no longer watched, then stopped."""
        with self._lock:
            group = self._groups.pop(name, None)
            self.budget.forget(name)
        if group is not None:
            self._stop_members(group)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._groups)

    def _start_members(self, group: Group) -> None:
        try:
            for actor, factory in group.members:
                ref = factory()
                group.refs[actor] = ref
                self.registry.add(actor, ref)
        except BaseException:
            self._stop_members(group)
            raise

    def _stop_members(self, group: Group) -> None:
        for actor, _ in reversed(group.members):
            ref = group.refs.pop(actor, None)
            if ref is None:
                continue
            # Only unregister our own ref: a restart may have put a new one there.
            if self.registry.get(actor) is ref:
                self.registry.remove(actor)
            try:
                ref.stop(block=True, timeout=STOP_TIMEOUT)
            except pykka.Timeout:
                log.warning("actor %s did not stop within %g s", actor, STOP_TIMEOUT)

    # --- watching ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            fatal = self.check(clock.monotonic())
            if fatal is not None:
                self.on_fatal(fatal)
                return

    def check(self, now: float) -> str | None:
        """Restart every group with a stopped member; returns the line that
        ends the node when a group has used up its restarts."""
        with self._lock:
            for group in list(self._groups.values()):
                dead = [a for a, ref in group.refs.items() if not ref.is_alive()]
                if not dead or self._stop.is_set():
                    continue
                actor = dead[0]
                # On a fatal stop the group stays listed: the node's stop takes
                # it down with the others, its dead member's name included.
                if not self.budget.allow(group.name, now):
                    limit, window = self.budget.limit, self.budget.window
                    return (
                        f"the {actor} actor stopped again after {limit} restarts "
                        f"within {window:g} s: stopping the node"
                    )
                self.restarts[actor] = self.restarts.get(actor, 0) + 1
                log.error("the %s actor stopped; restarting %s", actor, _members(group))
                self._stop_members(group)
                try:
                    self._start_members(group)
                except Exception as exc:
                    return f"the {actor} actor could not be restarted: {exc}"
        return None


def _members(group: Group) -> str:
    names = [a for a, _ in group.members]
    return names[0] if len(names) == 1 else " and ".join(names)
