"""Drives task controllers: carries out the agent's commands, learns of exits
(from the executor, or by polling running tasks on ticks), and sends SIGKILL
when a stop outlasts its grace period.

Polling, for an executor without ``watch`` (the sim executor): tasks being
stopped are polled on every tick; the others in turn, at most ``POLL_SLICE`` a
tick. Polling every controller every tick costs O(tasks)
per tick, which at 100 000 tasks is most of a core. The price is latency for a
task that exits by itself: it is noticed within ceil(running / POLL_SLICE)
ticks (one tick up to 2000 running tasks, 50 ticks at 100 000).

An executor whose steps may block (``blocking = True``: the Docker executor,
whose every step is a call to the engine, and a pull may take minutes) has them
run in a pool of ``POOL_SIZE`` threads, so one slow task never holds up the
others or a stop deadline; a task's own steps still run in order, and their
outcomes come back to this actor as messages. An executor with ``watch``
reports exits itself (pidfds for processes, the event stream for Docker) and
is never polled.

The events of one handled message go to the agent as one ``ExecutorEvents``.

At start the actor takes back the tasks a previous run of the node left (see
``Executor.recover``): those still running are polled like any other, and the
agent learns of them all through one ``Inventory`` before it registers."""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import ExecutorEvent, ExecutorEvents, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Command, Commands
from pyswarmkit.executor.base import Controller, Executor, ExecutorError
from pyswarmkit.executor.stops import StopDeadlines

log = logging.getLogger(__name__)

# On node shutdown, how long to wait for all tasks together before SIGKILL.
SHUTDOWN_WAIT_LIMIT = 10.0
# Running tasks polled per tick besides those being stopped.
POLL_SLICE = 2000
# Threads running the steps of an executor whose steps block (pulls, engine calls).
POOL_SIZE = 8

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class InventoryRequest:
    """The agent asks which tasks this executor took back at start. The answer
    goes to ``reply_to``: the asking agent may not be in the registry yet."""

    reply_to: pykka.ActorRef[Any]


@dataclass(frozen=True, slots=True)
class StepDone:
    """A step of a task ran in the pool; ``finish`` hands its outcome on."""

    task_id: str
    finish: Callable[[], None]


@dataclass(frozen=True, slots=True)
class TaskExited:
    """An executor that watches its tasks saw one exit."""

    task_id: str
    exit_code: int
    err: str = ""


@dataclass(frozen=True, slots=True)
class TaskHealth:
    """An executor that runs health checks saw a task turn healthy or unhealthy."""

    task_id: str
    status: str


# The cause Docker gives a task its health check failed (its "dockerexec:" prefix aside).
UNHEALTHY = "unhealthy container"


@dataclass(frozen=True, slots=True)
class Inventory:
    """The tasks a previous run left: running ones (id to pid), and those whose
    process is gone."""

    running: dict[str, int]
    gone: frozenset[str]


class ExecutorActor(GuardedActor):
    name = "executor"

    def __init__(self, registry: Registry, executor: Executor) -> None:
        super().__init__()
        self.registry = registry
        self.executor = executor
        self.controllers: dict[str, Controller] = {}
        self.running: set[str] = set()
        self.stops = StopDeadlines()
        # Tasks being stopped: polled on every tick until they exit.
        self.stopping: set[str] = set()
        # The running tasks still to poll in this round, and where the round is.
        self._round: list[str] = []
        self._at = 0
        # Events of the message being handled, sent to the agent together.
        self._out: list[ExecutorEvent] = []
        self.inventory = Inventory({}, frozenset())
        # An executor whose steps block gets a pool; its tasks' next steps
        # wait here while one is in flight.
        self.pool: ThreadPoolExecutor | None = None
        if getattr(executor, "blocking", False):
            self.pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="executor-step")
        self._busy: dict[str, deque[tuple[Command, float]]] = {}
        # Exits reported while the task's start was still in flight.
        self._early: dict[str, tuple[int, str]] = {}
        # An executor with ``watch`` reports exits itself: nothing is polled.
        self.watched = callable(getattr(executor, "watch", None))
        # Tasks stopped because their health check failed, and health news of
        # tasks whose start was still in flight.
        self._unhealthy: set[str] = set()
        self._early_health: dict[str, str] = {}

    def on_start(self) -> None:
        try:
            found = self.executor.recover()
        except Exception:
            # Unreadable records must not keep the node from starting.
            log.exception("taking back the tasks of a previous run failed")
            found = []
        for f in found:
            self.controllers[f.task_id] = f.controller
            if f.pid:
                self.running.add(f.task_id)
        self.inventory = Inventory(
            {f.task_id: f.pid for f in found if f.pid},
            frozenset(f.task_id for f in found if not f.pid),
        )
        # Before the exits' watch, whose first look may find health news too.
        watch_health = getattr(self.executor, "watch_health", None)
        if callable(watch_health):
            health_ref = self.actor_ref

            def health(task_id: str, status: str) -> None:
                with contextlib.suppress(pykka.ActorDeadError):
                    health_ref.tell(TaskHealth(task_id, status))

            watch_health(health)
        # After taking back: the watch's first look covers what died meanwhile.
        if self.watched:
            me = self.actor_ref

            def exited(task_id: str, code: int, err: str) -> None:
                with contextlib.suppress(pykka.ActorDeadError):
                    me.tell(TaskExited(task_id, code, err))

            self.executor.watch(exited)  # type: ignore[attr-defined]

    def handle(self, message: Any) -> Any:
        try:
            if isinstance(message, Commands):
                now = clock.monotonic()
                for cmd in message.commands:
                    # One bad command must not cost the others their turn.
                    try:
                        self._command(cmd, now)
                    except Exception as exc:
                        self.failures += 1
                        self.log_failure(cmd, exc)
            elif isinstance(message, Command):
                self._command(message, clock.monotonic())
            elif isinstance(message, Tick):
                self._poll(message.now)
            elif isinstance(message, StepDone):
                self._step_done(message)
            elif isinstance(message, TaskExited):
                self._exited(message.task_id, message.exit_code, message.err)
            elif isinstance(message, TaskHealth):
                self._health(message.task_id, message.status, clock.monotonic())
            elif isinstance(message, InventoryRequest):
                with contextlib.suppress(pykka.ActorDeadError):
                    message.reply_to.tell(self.inventory)
        finally:
            self._flush()
        return None

    def _flush(self) -> None:
        if self._out:
            events, self._out = tuple(self._out), []
            self.registry.tell("agent", ExecutorEvents(events))

    def _outcome(self, tid: str, kind: str, step: Callable[[], R]) -> tuple[R | None, str]:
        """Run one controller step; any failure becomes the task's error, never
        this actor's death (which would orphan every task it runs)."""
        try:
            return step(), ""
        except ExecutorError as exc:
            return None, str(exc)
        except Exception as exc:
            log.exception("executor %s of task %s failed", kind, tid)
            return None, f"{kind} failed: {type(exc).__name__}: {exc}"

    def _run(
        self,
        tid: str,
        kind: str,
        step: Callable[[], R],
        done: Callable[[R | None, str], None],
    ) -> None:
        """Run ``step`` and hand its outcome to ``done`` on this actor's
        thread: at once for a quick executor, through the pool for one that
        blocks. A task's steps run one after another, in the order given."""
        if self.pool is None:
            result, err = self._outcome(tid, kind, step)
            done(result, err)
            return
        self._busy[tid] = deque()
        me = self.actor_ref

        def work() -> None:
            result, err = self._outcome(tid, kind, step)
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(StepDone(tid, lambda: done(result, err)))

        self.pool.submit(work)

    def _step_done(self, message: StepDone) -> None:
        try:
            message.finish()
        finally:
            waiting = self._busy.pop(message.task_id, None)
            while waiting and message.task_id not in self._busy:
                cmd, now = waiting.popleft()
                self._command(cmd, now)
            if waiting and message.task_id in self._busy:
                # The next step is in flight: the rest wait behind it.
                self._busy[message.task_id].extend(waiting)

    def _command(self, cmd: Command, now: float) -> None:
        tid = cmd.task.id
        if tid in self._busy:
            self._busy[tid].append((cmd, now))
            return
        if cmd.op == "prepare":

            def prepare() -> Controller:
                ctl = self.executor.controller(cmd.task, cmd.files)
                ctl.prepare()
                return ctl

            def prepared(ctl: Controller | None, err: str) -> None:
                if ctl is None:
                    self._tell(ExecutorEvent("prepared", tid, err=err))
                    return
                self.controllers[tid] = ctl
                self._tell(ExecutorEvent("prepared", tid))

            self._run(tid, "prepared", prepare, prepared)
        elif cmd.op == "start":
            found = self.controllers.get(tid)
            if found is None:
                return

            def started(pid: int | None, err: str) -> None:
                if pid is None:
                    self._early.pop(tid, None)
                    self._early_health.pop(tid, None)
                    self._tell(ExecutorEvent("started", tid, err=err))
                    return
                self.running.add(tid)
                # A task with a health check runs only once the check passes.
                waiting = bool(getattr(found, "awaits_health", False))
                self._tell(ExecutorEvent("waiting" if waiting else "started", tid, pid=pid))
                health = self._early_health.pop(tid, None)
                if health is not None:
                    self._health(tid, health, clock.monotonic())
                early = self._early.pop(tid, None)
                if early is not None:
                    self._exited(tid, *early)

            self._run(tid, "started", found.start, started)
        elif cmd.op == "shutdown":
            found = self.controllers.get(tid)
            if found is not None and tid in self.running:
                self._run(tid, "shutdown", found.shutdown, self._ignore)
                self.stops.start(tid, now, cmd.task.spec.container.stop_grace_period)
                self.stopping.add(tid)
        elif cmd.op == "adopt":
            found = self.controllers.get(tid)
            take_over = getattr(found, "take_over", None)
            if tid in self.running and callable(take_over):
                task = cmd.task
                self._run(tid, "adopt", lambda: take_over(task), self._ignore)
        elif cmd.op == "remove":
            if tid in self.inventory.running and tid in self.running:
                log.warning(
                    "stopping task %s left running by a previous run: "
                    "it is no longer assigned to this node",
                    tid,
                )
            found = self.controllers.pop(tid, None)
            self.running.discard(tid)
            self.stopping.discard(tid)
            self.stops.cancel(tid)
            self._unhealthy.discard(tid)
            self._early_health.pop(tid, None)
            if found is not None:
                self._run(tid, "remove", found.remove, self._ignore)

    @staticmethod
    def _ignore(result: object, err: str) -> None:
        """Stops and removals have no one to tell of a failure but the log."""
        if err:
            log.warning("executor step failed: %s", err)

    def _quietly(self, tid: str, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:
            log.exception("executor step for task %s failed", tid)

    def _poll(self, now: float) -> None:
        if not self.watched:
            for tid in list(self.stopping):
                self._poll_one(tid)
            for tid in self._next_slice():
                self._poll_one(tid)
        for tid in self.stops.pop_due(now):
            if tid in self.running:
                log.info("task %s ignored SIGTERM for its grace period: killing it", tid)
                if self.pool is None:
                    self._quietly(tid, self.controllers[tid].terminate)
                else:
                    # Not behind the task's other steps: a stop stuck there is why it is due.
                    self.pool.submit(self._quietly, tid, self.controllers[tid].terminate)

    def _next_slice(self) -> list[str]:
        """The next running tasks to poll in turn; a round starts over from a
        fresh list of the running tasks once the last one is done."""
        if self._at >= len(self._round):
            self._round = list(self.running)
            self._at = 0
        part = self._round[self._at : self._at + POLL_SLICE]
        self._at += POLL_SLICE
        return part

    def _poll_one(self, tid: str) -> None:
        if tid not in self.running:
            self.stopping.discard(tid)
            return
        code: int | None = None
        try:
            code = self.controllers[tid].poll()
        except Exception:
            log.exception("polling task %s failed", tid)
        if code is not None:
            self._exited(tid, code)

    def _health(self, tid: str, status: str, now: float) -> None:
        """A healthy task is reported (it may now count as RUNNING); an
        unhealthy one is stopped as a shutdown stops it, grace period and all,
        and its exit reported as a failure (Docker's swarm mode does the same)."""
        if tid not in self.running:
            if tid in self._busy:
                self._early_health[tid] = status
            return
        if status == "healthy":
            self._tell(ExecutorEvent("healthy", tid))
        elif status == "unhealthy" and tid not in self.stopping:
            log.info("task %s is unhealthy: stopping it", tid)
            self._unhealthy.add(tid)
            self._command(Command("shutdown", self.controllers[tid].task), now)

    def _exited(self, tid: str, code: int, err: str = "") -> None:
        if tid not in self.running:
            if tid in self._busy:
                # Its start is still finishing in the pool: a container that
                # exits at once is reported before the start's outcome arrives.
                self._early[tid] = (code, err)
            return
        if tid in self._unhealthy:
            self._unhealthy.discard(tid)
            # An adopted task's exit code is unknown (-1): only the cause is said.
            err = f"non-zero exit ({code}): {UNHEALTHY}" if code > 0 else UNHEALTHY
        self.running.discard(tid)
        self.stopping.discard(tid)
        self.stops.cancel(tid)
        self._tell(ExecutorEvent("exited", tid, exit_code=code, err=err))

    def _tell(self, event: ExecutorEvent) -> None:
        self._out.append(event)

    def on_stop(self) -> None:
        """Stop every task: SIGTERM to all, a bounded wait, then SIGKILL; keep
        what they leave (output, records, containers) for the next run."""
        if self.pool is not None:
            # Steps in flight finish first; their outcomes no longer matter.
            self.pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(self.executor, "close", None)
        if callable(close):
            self._quietly("*", close)
        for tid in self.running:
            self._quietly(tid, self.controllers[tid].shutdown)
        deadline = clock.monotonic() + SHUTDOWN_WAIT_LIMIT
        while self.running and clock.monotonic() < deadline:
            for tid in list(self.running):
                try:
                    exited = self.controllers[tid].poll() is not None
                except Exception:
                    exited = True
                if exited:
                    self.running.discard(tid)
            clock.sleep(0.05)
        for tid in self.running:
            self._quietly(tid, self.controllers[tid].terminate)
        # The tasks' secret files went as they stopped: now their tmpfs
        # directory can go too (the executor's close came before they stopped).
        files = getattr(self.executor, "task_files", None)
        if files is not None:
            self._quietly("*", files.close)
        # Stopped, not removed: a task's output and record stay, so its log
        # outlives a stop of swarmd and the next run finds it exited. Tasks
        # are removed when the manager drops them from the node's assignments.
        self.controllers.clear()
        self.running.clear()
        self.stopping.clear()
