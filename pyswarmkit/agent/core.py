"""The worker's side: keep a session with the dispatcher, run what is assigned
through the executor, and report every state a task reaches.

Pure: the agent actor feeds it dispatcher messages, executor events and ticks,
and carries out the effects it returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pyswarmkit.api.objects import ContainerStatus, NodeDescription, Task, TaskStatus
from pyswarmkit.api.states import TaskState

# A registration with no answer is tried again after this long.
REGISTER_RETRY = 2.0
HEARTBEAT_JITTER = 0.1


@dataclass(frozen=True, slots=True)
class Command:
    """Work for the executor: prepare, start, shutdown or remove one task."""

    op: str
    task: Task


@dataclass(frozen=True, slots=True)
class Message:
    """A message for the dispatcher."""

    method: str
    body: dict[str, Any]


@dataclass(slots=True)
class Effects:
    commands: list[Command] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


@dataclass(slots=True)
class Entry:
    task: Task
    state: TaskState
    started: bool = False
    stopping: bool = False
    pid: int = 0
    # The last status reported, error and exit code included, to send again
    # whole when a new session starts.
    status: TaskStatus | None = None


class Agent:
    def __init__(self, description: NodeDescription, rng: random.Random, addr: str = "") -> None:
        self.description = description
        # The address managers should reach this node at, sent on registration.
        self.addr = addr
        self.rng = rng
        self.session_id = ""
        self.heartbeat_period = 5.0
        self.next_heartbeat = 0.0
        self.register_sent_at: float | None = None
        self.tasks: dict[str, Entry] = {}
        self.reports: dict[str, TaskStatus] = {}

    # --- time ------------------------------------------------------------

    def tick(self, now: float) -> Effects:
        fx = Effects()
        if not self.session_id:
            if self.register_sent_at is None or now - self.register_sent_at >= REGISTER_RETRY:
                self.register_sent_at = now
                fx.messages.append(
                    Message("register", {"description": self.description, "addr": self.addr})
                )
            return fx
        if now >= self.next_heartbeat:
            self._schedule_heartbeat(now)
            fx.messages.append(Message("heartbeat", {"session_id": self.session_id}))
        if self.reports:
            updates = sorted(self.reports.items())
            self.reports = {}
            fx.messages.append(
                Message("update_task_status", {"session_id": self.session_id, "updates": updates})
            )
        return fx

    def _schedule_heartbeat(self, now: float) -> None:
        jitter = self.rng.uniform(-HEARTBEAT_JITTER, HEARTBEAT_JITTER) * self.heartbeat_period
        self.next_heartbeat = now + self.heartbeat_period + jitter

    # --- dispatcher messages ---------------------------------------------------

    def registered(self, session_id: str, heartbeat_period: float, now: float) -> None:
        self.session_id = session_id
        self.heartbeat_period = heartbeat_period
        self.register_sent_at = None
        self._schedule_heartbeat(now)
        # A new session may follow a lost one: tell the dispatcher everything again.
        for tid, entry in self.tasks.items():
            if tid not in self.reports:
                self.reports[tid] = entry.status or self._status(entry, entry.state, "", now)

    def session_lost(self) -> None:
        self.session_id = ""
        self.register_sent_at = None

    def assignments(
        self, session_id: str, full: bool, tasks: list[Task], removed: list[str], now: float
    ) -> Effects:
        fx = Effects()
        if session_id != self.session_id:
            return fx
        if full:
            keep = {t.id for t in tasks}
            removed = [tid for tid in self.tasks if tid not in keep]
        for tid in removed:
            entry = self.tasks.pop(tid, None)
            self.reports.pop(tid, None)
            if entry is not None:
                fx.commands.append(Command("remove", entry.task))
        for task in tasks:
            self._assign(task, now, fx)
        return fx

    def _assign(self, task: Task, now: float, fx: Effects) -> None:
        entry = self.tasks.get(task.id)
        if entry is None:
            if task.status.state.terminal:
                return
            entry = Entry(task, TaskState.ASSIGNED)
            self.tasks[task.id] = entry
            if task.desired_state <= TaskState.RUNNING:
                self._move(entry, TaskState.ACCEPTED, "accepted", now)
                self._move(entry, TaskState.PREPARING, "preparing", now)
                fx.commands.append(Command("prepare", task))
        entry.task = task
        if task.desired_state > TaskState.RUNNING:
            self._stop(entry, now, fx)

    def _stop(self, entry: Entry, now: float, fx: Effects) -> None:
        if entry.state.terminal or entry.stopping:
            return
        if entry.started:
            entry.stopping = True
            fx.commands.append(Command("shutdown", entry.task))
        else:
            self._move(entry, TaskState.SHUTDOWN, "shutdown", now)

    # --- executor events -------------------------------------------------------

    def prepared(self, task_id: str, err: str, now: float) -> Effects:
        fx = Effects()
        entry = self.tasks.get(task_id)
        if entry is None or entry.state.terminal:
            return fx
        if err:
            self._move(entry, TaskState.REJECTED, "preparing failed", now, err)
            return fx
        self._move(entry, TaskState.READY, "prepared", now)
        if entry.task.desired_state <= TaskState.RUNNING and not entry.stopping:
            entry.started = True
            self._move(entry, TaskState.STARTING, "starting", now)
            fx.commands.append(Command("start", entry.task))
        return fx

    def started(self, task_id: str, pid: int, err: str, now: float) -> None:
        entry = self.tasks.get(task_id)
        if entry is None or entry.state.terminal:
            return
        if err:
            self._move(entry, TaskState.FAILED, "starting failed", now, err)
            return
        entry.pid = pid
        self._move(entry, TaskState.RUNNING, "started", now)

    def exited(self, task_id: str, exit_code: int, now: float) -> None:
        entry = self.tasks.get(task_id)
        if entry is None or entry.state.terminal:
            return
        if entry.stopping:
            self._move(entry, TaskState.SHUTDOWN, "shutdown", now, exit_code=exit_code)
        elif exit_code == 0:
            self._move(entry, TaskState.COMPLETE, "finished", now, exit_code=exit_code)
        else:
            err = f"task: non-zero exit ({exit_code})"
            self._move(entry, TaskState.FAILED, "failed", now, err, exit_code)

    # --- bookkeeping -------------------------------------------------------

    def _status(
        self,
        entry: Entry,
        state: TaskState,
        message: str,
        now: float,
        err: str = "",
        exit_code: int = 0,
    ) -> TaskStatus:
        return TaskStatus(
            timestamp=now,
            state=state,
            message=message or entry.task.status.message,
            err=err,
            container=ContainerStatus(pid=entry.pid, exit_code=exit_code),
        )

    def _move(
        self,
        entry: Entry,
        state: TaskState,
        message: str,
        now: float,
        err: str = "",
        exit_code: int = 0,
    ) -> None:
        if state <= entry.state:
            return
        entry.state = state
        entry.status = self._status(entry, state, message, now, err, exit_code)
        self.reports[entry.task.id] = entry.status
