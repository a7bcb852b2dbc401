"""Drives task controllers: carries out the agent's commands, polls running
tasks on each tick, and enforces stop grace periods with SIGKILL."""

from __future__ import annotations

import logging
import time
from typing import Any

import pykka

from pyswarmkit.actors.messages import ExecutorEvent, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Command
from pyswarmkit.executor.base import Controller, Executor, ExecutorError

log = logging.getLogger(__name__)

# On node shutdown, how long to wait for all tasks together before SIGKILL.
SHUTDOWN_WAIT_LIMIT = 10.0


class ExecutorActor(pykka.ThreadingActor):
    name = "executor"

    def __init__(self, registry: Registry, executor: Executor) -> None:
        super().__init__()
        self.registry = registry
        self.executor = executor
        self.controllers: dict[str, Controller] = {}
        self.running: set[str] = set()
        # task id -> when SIGKILL follows the SIGTERM already sent.
        self.kill_at: dict[str, float] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Command):
            self._command(message, time.time())
        elif isinstance(message, Tick):
            self._poll(message.now)
        return None

    def _command(self, cmd: Command, now: float) -> None:
        tid = cmd.task.id
        if cmd.op == "prepare":
            ctl = self.executor.controller(cmd.task)
            self.controllers[tid] = ctl
            self._run(tid, "prepared", ctl.prepare)
        elif cmd.op == "start":
            ctl_or_none = self.controllers.get(tid)
            if ctl_or_none is None:
                return
            try:
                pid = ctl_or_none.start()
            except ExecutorError as exc:
                self._tell(ExecutorEvent("started", tid, err=str(exc)))
                return
            self.running.add(tid)
            self._tell(ExecutorEvent("started", tid, pid=pid))
        elif cmd.op == "shutdown":
            ctl_or_none = self.controllers.get(tid)
            if ctl_or_none is not None and tid in self.running:
                ctl_or_none.shutdown()
                self.kill_at[tid] = now + cmd.task.spec.container.stop_grace_period
        elif cmd.op == "remove":
            ctl_or_none = self.controllers.pop(tid, None)
            self.running.discard(tid)
            self.kill_at.pop(tid, None)
            if ctl_or_none is not None:
                ctl_or_none.remove()

    def _run(self, tid: str, kind: str, step: Any) -> None:
        try:
            step()
        except ExecutorError as exc:
            self._tell(ExecutorEvent(kind, tid, err=str(exc)))
            return
        self._tell(ExecutorEvent(kind, tid))

    def _poll(self, now: float) -> None:
        for tid in list(self.running):
            ctl = self.controllers[tid]
            code = ctl.poll()
            if code is not None:
                self.running.discard(tid)
                self.kill_at.pop(tid, None)
                self._tell(ExecutorEvent("exited", tid, exit_code=code))
            elif tid in self.kill_at and now >= self.kill_at[tid]:
                log.info("task %s ignored SIGTERM for its grace period: killing it", tid)
                del self.kill_at[tid]
                ctl.terminate()

    def _tell(self, event: ExecutorEvent) -> None:
        self.registry.tell("agent", event)

    def on_stop(self) -> None:
        """Stop every task: SIGTERM to all, a bounded wait, then SIGKILL."""
        for tid in self.running:
            self.controllers[tid].shutdown()
        deadline = time.monotonic() + SHUTDOWN_WAIT_LIMIT
        while self.running and time.monotonic() < deadline:
            for tid in list(self.running):
                if self.controllers[tid].poll() is not None:
                    self.running.discard(tid)
            time.sleep(0.05)
        for ctl in self.controllers.values():
            ctl.remove()
        self.controllers.clear()
        self.running.clear()
