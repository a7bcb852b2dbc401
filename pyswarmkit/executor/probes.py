"""Runs the process executor's health probes.

The schedule and the meaning of results are the pure core's
(executor/health.py); here one thread keeps time for it and a pool of up to
``POOL_SIZE`` threads runs the probes, each ``sh -c CMD`` (Docker's CMD-SHELL)
in its own process group with the task's environment and working directory. A
probe that outlives its timeout has its group killed and counts as a failure.
Nothing here runs on the executor actor's thread: a slow probe delays other
probes at worst, never a task's start or stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyswarmkit import clock
from pyswarmkit.executor.health import Checks, Policy, Probe

log = logging.getLogger(__name__)

# Probes that may run at once on a node; more wait their turn (their timeout
# starts when they do). A task has at most one probe running and a probe's
# thread only waits on its process, so the pool is sized for every task's
# probe at once: a service whose checks hang until their timeout must not
# hold other services' tasks in STARTING (threads are made as needed).
POOL_SIZE = 512

Report = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Target:
    """What a task's probe runs, and where."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None


class ProbeRunner:
    def __init__(self, pool_size: int = POOL_SIZE) -> None:
        self._cond = threading.Condition()
        self._checks = Checks()
        self._targets: dict[str, Target] = {}
        self._procs: dict[Probe, subprocess.Popen[bytes]] = {}
        self._report: Report | None = None
        self._pool_size = pool_size
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        return self._report is not None

    def start(self, report: Report) -> None:
        """Report each change of a task's health, ``report(task_id, status)``,
        from the runner's threads, until ``close``."""
        self.close()
        with self._cond:
            self._report = report
            self._stopped = False
            # A restarted runner: the probes of the one before were killed or never ran.
            self._checks.drop_probes(clock.monotonic())
        self._pool = ThreadPoolExecutor(self._pool_size, thread_name_prefix="health-probe")
        self._thread = threading.Thread(target=self._keep_time, name="health", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is None:
            return
        with self._cond:
            self._stopped = True
            for probe in list(self._procs):
                self._kill(probe)
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def add(self, task_id: str, policy: Policy, target: Target, started: float) -> None:
        with self._cond:
            self._targets[task_id] = target
            self._checks.add(task_id, policy, started)
            self._cond.notify_all()

    def remove(self, task_id: str) -> None:
        with self._cond:
            self._checks.remove(task_id)
            self._targets.pop(task_id, None)
            for probe in [p for p in self._procs if p.task_id == task_id]:
                self._kill(probe)

    def queued(self) -> int:
        """Probes handed to the pool that have not begun: waiting for a thread."""
        with self._cond:
            return self._checks.queued()

    def __contains__(self, task_id: str) -> bool:
        with self._cond:
            return task_id in self._checks

    def _keep_time(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = clock.monotonic()
                step = self._checks.step(now)
                for probe in step.kill:
                    self._kill(probe)
                pool = self._pool
                for probe in step.run:
                    target = self._targets.get(probe.task_id)
                    if target is not None and pool is not None:
                        pool.submit(self._probe, probe, target)
            self._tell(step.changes)
            with self._cond:
                if self._stopped:
                    return
                # Woken early by a new task or a probe's end: the schedule moved.
                wake = self._checks.next_wake()
                if wake is None:
                    self._cond.wait()
                else:
                    left = wake - clock.monotonic()
                    if left > 0:
                        self._cond.wait(left)

    def _probe(self, probe: Probe, target: Target) -> None:
        try:
            proc = subprocess.Popen(
                target.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=target.env,
                cwd=target.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("health check of task %s could not run: %s", probe.task_id, exc)
            with self._cond:
                self._checks.began(probe, clock.monotonic())
                change = self._checks.result(probe, False, clock.monotonic())
                self._cond.notify_all()
            self._tell([change] if change else [])
            return
        with self._cond:
            self._procs[probe] = proc
            self._checks.began(probe, clock.monotonic())
            self._cond.notify_all()
        code = proc.wait()
        with self._cond:
            self._procs.pop(probe, None)
            change = self._checks.result(probe, code == 0, clock.monotonic())
            self._cond.notify_all()
        # Whatever the probe left in its group goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._tell([change] if change else [])

    def _kill(self, probe: Probe) -> None:
        """Called with the lock held: the probe is still registered, so not yet reaped."""
        proc = self._procs.get(probe)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _tell(self, changes: list[tuple[str, str]]) -> None:
        report = self._report
        if report is None:
            return
        for task_id, status in changes:
            try:
                report(task_id, status)
            except Exception:
                log.exception("reporting the health of task %s failed", task_id)
