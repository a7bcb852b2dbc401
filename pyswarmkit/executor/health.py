"""Health checks, as Docker runs them: when to probe a task, what a probe's
result means, and when a task turns healthy or unhealthy. Pure: times are
arguments, and whoever drives it runs the probes and kills those it is told
have outlived their timeout.

Docker's rules (daemon/health.go), kept here:
- a task starts out ``starting``; its first probe runs one interval after it
  started, and each next one an interval after the previous one ended;
- a probe that exits 0 makes the task ``healthy`` and resets the failing streak;
- any other result (a non-zero exit, a probe that outlived its timeout)
  adds one to the streak, except a failure of a probe that began within the
  start period while the task has never been healthy; ``retries`` failures in
  a row make it ``unhealthy``;
- an unhealthy task that passes a probe is healthy again.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from pyswarmkit.api.objects import HealthConfig

# Docker's defaults for a zero setting.
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_PERIOD = 0.0
# Docker refuses durations below this (other than 0, which means the default).
MIN_DURATION = 0.001

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


def probe_argv(check: HealthConfig) -> list[str] | None:
    """What a probe runs, or None when the check is off or left to an image."""
    test = list(check.test)
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])] if len(test) > 1 else None
    if test[0] == "CMD":
        return test[1:] or None
    return None


def disabled(check: HealthConfig) -> bool:
    """``--no-healthcheck``: not even an image's own check runs."""
    return check.test[:1] == ("NONE",)


@dataclass(frozen=True, slots=True)
class Policy:
    """A check's settings with Docker's defaults filled in."""

    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = DEFAULT_START_PERIOD

    @classmethod
    def of(cls, check: HealthConfig) -> Policy:
        return cls(
            interval=check.interval or DEFAULT_INTERVAL,
            timeout=check.timeout or DEFAULT_TIMEOUT,
            retries=check.retries if check.retries > 0 else DEFAULT_RETRIES,
            start_period=check.start_period or DEFAULT_START_PERIOD,
        )


@dataclass(frozen=True, slots=True)
class Probe:
    """One run of a task's check; ``seq`` tells a late result from a current one."""

    task_id: str
    seq: int


@dataclass(slots=True)
class _State:
    policy: Policy
    started: float
    status: str = STARTING
    streak: int = 0
    seq: int = 0
    next_at: float = 0.0
    # The probe handed out and not yet answered, and when it began running
    # (None while it waits for a free runner: its timeout has not started).
    running: int = 0
    began: float | None = None


@dataclass(slots=True)
class Step:
    """What to do now: probes to run, probes to kill (their timeout passed),
    and tasks whose health changed, as (task ID, new status)."""

    run: list[Probe] = field(default_factory=list)
    kill: list[Probe] = field(default_factory=list)
    changes: list[tuple[str, str]] = field(default_factory=list)


class Checks:
    """The health of every checked task on a node."""

    def __init__(self) -> None:
        self._tasks: dict[str, _State] = {}
        # (when, task ID): probes due and timeouts ending; stale entries are skipped.
        self._timers: list[tuple[float, str]] = []

    def add(self, task_id: str, policy: Policy, started: float) -> None:
        state = _State(policy, started, next_at=started + policy.interval)
        self._tasks[task_id] = state
        heapq.heappush(self._timers, (state.next_at, task_id))

    def remove(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    def status(self, task_id: str) -> str | None:
        state = self._tasks.get(task_id)
        return None if state is None else state.status

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def next_wake(self) -> float | None:
        """When ``step`` next has something to do, if ever (until a result comes)."""
        while self._timers:
            when, task_id = self._timers[0]
            if self._wanted(task_id, when):
                return when
            heapq.heappop(self._timers)
        return None

    def _wanted(self, task_id: str, when: float) -> bool:
        state = self._tasks.get(task_id)
        if state is None:
            return False
        if state.running:
            return state.began is not None and state.began + state.policy.timeout == when
        return state.next_at == when

    def step(self, now: float) -> Step:
        out = Step()
        while self._timers and self._timers[0][0] <= now:
            when, task_id = heapq.heappop(self._timers)
            if not self._wanted(task_id, when):
                continue
            state = self._tasks[task_id]
            if state.running:
                # Outlived its timeout: killed, and counted as a failure.
                out.kill.append(Probe(task_id, state.running))
                change = self._finish(task_id, state, False, now)
                if change is not None:
                    out.changes.append(change)
            else:
                state.seq += 1
                state.running = state.seq
                state.began = None
                out.run.append(Probe(task_id, state.seq))
        return out

    def queued(self) -> int:
        """Probes handed out that have not begun."""
        return sum(1 for s in self._tasks.values() if s.running and s.began is None)

    def drop_probes(self, now: float) -> None:
        """Forget every probe handed out and not answered (whoever ran them
        is gone): each such task is probed again an interval from ``now``,
        and a late answer is ignored."""
        for task_id, state in self._tasks.items():
            if state.running:
                state.running = 0
                state.began = None
                state.next_at = now + state.policy.interval
                heapq.heappush(self._timers, (state.next_at, task_id))

    def began(self, probe: Probe, now: float) -> None:
        """The probe's process started: its timeout runs from now."""
        state = self._tasks.get(probe.task_id)
        if state is None or state.running != probe.seq or state.began is not None:
            return
        state.began = now
        heapq.heappush(self._timers, (now + state.policy.timeout, probe.task_id))

    def result(self, probe: Probe, ok: bool, now: float) -> tuple[str, str] | None:
        """A probe ended (``ok``: it exited 0). Returns the task's new status
        if it changed. A probe already timed out, or of a removed task, is ignored."""
        state = self._tasks.get(probe.task_id)
        if state is None or state.running != probe.seq:
            return None
        return self._finish(probe.task_id, state, ok, now)

    def _finish(self, task_id: str, state: _State, ok: bool, now: float) -> tuple[str, str] | None:
        began = state.began if state.began is not None else now
        state.running = 0
        state.began = None
        state.next_at = now + state.policy.interval
        heapq.heappush(self._timers, (state.next_at, task_id))
        before = state.status
        if ok:
            state.streak = 0
            state.status = HEALTHY
        elif not (state.status == STARTING and began - state.started < state.policy.start_period):
            state.streak += 1
            if state.streak >= state.policy.retries:
                state.status = UNHEALTHY
        return (task_id, state.status) if state.status != before else None
