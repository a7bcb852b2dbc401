"""The worker's side: keep a session with the dispatcher, run what is assigned
through the executor, and report every state a task reaches until the
dispatcher acknowledges it.

Pure: the agent actor feeds it decoded dispatcher messages, executor events,
monotonic ``now`` (for its timers) and wall time (for the statuses it
records), and carries out the effects it returns. The protocol's rules are in
``api/protocol.py``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from pyswarmkit.api.objects import (
    Config,
    ContainerStatus,
    NodeDescription,
    Secret,
    Task,
    TaskStatus,
)
from pyswarmkit.api.protocol import (
    Assignments,
    AssignmentsRequest,
    Body,
    Error,
    Heartbeat,
    HeartbeatAck,
    ManagerAddr,
    Message,
    Register,
    Registered,
    StatusUpdate,
    UpdateTaskStatus,
    UpdateTaskStatusAck,
)
from pyswarmkit.api.states import TaskState
from pyswarmkit.executor.base import EXIT_UNKNOWN
from pyswarmkit.executor.taskfiles import TaskFile, resolve

# A registration with no answer is tried again after this long.
REGISTER_RETRY = 2.0
# A status report with no acknowledgement is sent again after this long.
REPORT_RETRY = 2.0
# ...but not while acknowledgements of other reports keep arriving (the
# dispatcher is working through a backlog: at 100 000 tasks one batch of reports
# takes longer than REPORT_RETRY to commit, and resending adds to the backlog),
# unless it has waited this long.
REPORT_RETRY_MAX = 10.0
# A request for a full assignment set with no answer is repeated after this long.
RESYNC_RETRY = 1.0
HEARTBEAT_JITTER = 0.1
# A session whose manager has said nothing for this many heartbeat periods is
# over (the dispatcher's side gives up on the node after the same silence).
SILENCE_PERIODS = 3


@dataclass(frozen=True, slots=True)
class Command:
    """Work for the executor: prepare, start, shutdown or remove one task, or
    adopt (the spec of a task taken back from a previous run). A prepare
    carries the secret and config files the task gets."""

    op: str
    task: Task
    files: tuple[TaskFile, ...] = ()


@dataclass(frozen=True, slots=True)
class Commands:
    """The commands one agent step produced, in order, sent as one message."""

    commands: tuple[Command, ...]


@dataclass(slots=True)
class Effects:
    commands: list[Command] = field(default_factory=list)
    messages: list[Body] = field(default_factory=list)
    # Turn to another manager before sending: this one stopped answering
    # ("" with True: the next known manager), or it named the leader.
    switch_manager: bool = False
    switch_to: str = ""
    # The node's role changed: its certificate must be renewed now.
    renew_certificate: bool = False


@dataclass(slots=True)
class Entry:
    task: Task
    state: TaskState
    started: bool = False
    stopping: bool = False
    pid: int = 0
    # The last status reached, error and exit code included, to report again
    # whole when a new session starts.
    status: TaskStatus | None = None


class Agent:
    def __init__(
        self, description: NodeDescription, rng: random.Random, awaiting_inventory: bool = False
    ) -> None:
        self.description = description
        self.rng = rng
        # Until the executor says which tasks a previous run left, the agent
        # does not register: an assignment set read without that knowledge
        # would start a second copy of a task that still runs.
        self.inventory_known = not awaiting_inventory
        # Tasks a previous run left: still running (id to pid), and gone. Each
        # is taken back when an assignment names it; the first full set stops
        # every one it does not name.
        self.adopted: dict[str, int] = {}
        self.gone: set[str] = set()
        self.session_id = ""
        # Names this attempt to get a session; a new one after each lost session.
        self.token = self._new_token()
        self.heartbeat_period = 5.0
        self.next_heartbeat = 0.0
        self.register_sent_at: float | None = None
        self.tasks: dict[str, Entry] = {}
        # Reports the dispatcher has not acknowledged: the newest per task.
        self.pending: dict[str, TaskStatus] = {}
        # Of those, the ones to send at the next tick; and when each was last sent.
        self.unsent: set[str] = set()
        self.sent_at: dict[str, float] = {}
        self.next_resend = 0.0
        # When the last acknowledgement of a report arrived.
        self.last_ack_at = -math.inf
        # The assignment sequence held in this session (0: no set yet).
        self.seq = 0
        self.full_requested_at: float | None = None
        # When the manager last said anything in this session.
        self.last_heard = -math.inf
        # Every manager of the swarm, as the dispatcher last said.
        self.managers: tuple[ManagerAddr, ...] = ()
        # The secrets and configs the assigned tasks need, as the dispatcher
        # sent them: in memory only, never written to the state dir.
        self.secrets: dict[str, Secret] = {}
        self.configs: dict[str, Config] = {}

    def _new_token(self) -> int:
        return self.rng.getrandbits(62) + 1

    # --- time ------------------------------------------------------------

    def tick(self, now: float) -> Effects:
        fx = Effects()
        if not self.inventory_known:
            return fx
        if not self.session_id:
            if self.register_sent_at is None or now - self.register_sent_at >= REGISTER_RETRY:
                # No answer to the last try: perhaps another manager leads now.
                fx.switch_manager = self.register_sent_at is not None
                self.register_sent_at = now
                fx.messages.append(Register(self.token, self.description))
            return fx
        if now - self.last_heard > SILENCE_PERIODS * self.heartbeat_period:
            self._register_elsewhere(now, fx)
            return fx
        if now >= self.next_heartbeat:
            self._schedule_heartbeat(now)
            fx.messages.append(Heartbeat(self.session_id))
        if now >= self.next_resend:
            self.next_resend = now + REPORT_RETRY
            if now - self.last_ack_at >= REPORT_RETRY:
                due = now - REPORT_RETRY
            else:
                due = now - REPORT_RETRY_MAX
            self.unsent.update(t for t in self.pending if self.sent_at.get(t, -math.inf) <= due)
        if self.unsent:
            updates = tuple(StatusUpdate(t, self.pending[t]) for t in sorted(self.unsent))
            for t in self.unsent:
                self.sent_at[t] = now
            self.unsent.clear()
            fx.messages.append(UpdateTaskStatus(self.session_id, updates))
        return fx

    def _schedule_heartbeat(self, now: float) -> None:
        jitter = self.rng.uniform(-HEARTBEAT_JITTER, HEARTBEAT_JITTER) * self.heartbeat_period
        self.next_heartbeat = now + self.heartbeat_period + jitter

    def inventory(self, running: dict[str, int], gone: set[str] | frozenset[str]) -> None:
        """What the executor took back from a previous run of this node."""
        self.adopted = dict(running)
        self.gone = set(gone)
        self.inventory_known = True

    # --- dispatcher messages ---------------------------------------------------

    def receive(self, msg: Message, now: float, wall: float) -> Effects:
        """One message from the dispatcher."""
        if self.session_id:
            self.last_heard = now
        if isinstance(msg, Registered):
            self.registered(msg, now, wall)
        elif isinstance(msg, HeartbeatAck):
            return self.heartbeat_ack(msg, now)
        elif isinstance(msg, Assignments):
            return self.assignments(msg, now, wall)
        elif isinstance(msg, UpdateTaskStatusAck):
            self.acknowledged(msg, now)
        elif isinstance(msg, Error):
            return self.refused(msg)
        return Effects()

    def registered(self, msg: Registered, now: float, wall: float) -> None:
        if msg.token != self.token or msg.session_id == self.session_id:
            return  # an answer to an older attempt, or a duplicate
        self.session_id = msg.session_id
        self._set_period(msg.heartbeat_period)
        self.last_heard = now
        if msg.managers:
            self.managers = msg.managers
        self.register_sent_at = None
        self.seq = 0
        self.full_requested_at = None
        self._schedule_heartbeat(now)
        # A new session may follow a lost one: tell the dispatcher everything again.
        for tid, entry in self.tasks.items():
            if tid not in self.pending:
                self.pending[tid] = entry.status or self._status(entry, entry.state, "", wall)
        self.unsent = set(self.pending)

    def heartbeat_ack(self, msg: HeartbeatAck, now: float) -> Effects:
        fx = Effects()
        before = self.heartbeat_period
        self._set_period(msg.heartbeat_period)
        if msg.managers:
            self.managers = msg.managers
        if self.session_id and self.heartbeat_period < before:
            # The dispatcher now expires this session three new periods after this
            # beat; the next one, planned on the old period, could come too late.
            planned = self.next_heartbeat
            self._schedule_heartbeat(now)
            self.next_heartbeat = min(planned, self.next_heartbeat)
        if self.session_id and msg.assignments_seq > self.seq:
            self._request_full(now, fx)
        fx.renew_certificate = msg.renew_certificate
        return fx

    def _set_period(self, period: float) -> None:
        # A period that is not a positive number would stop heartbeats or spin.
        if math.isfinite(period) and period > 0:
            self.heartbeat_period = period

    def acknowledged(self, msg: UpdateTaskStatusAck, now: float = -math.inf) -> None:
        if msg.acked:
            self.last_ack_at = max(self.last_ack_at, now)
        for ack in msg.acked:
            status = self.pending.get(ack.task_id)
            if status is not None and status.state <= ack.state:
                self._forget_report(ack.task_id)

    def refused(self, msg: Error) -> Effects:
        fx = Effects()
        if msg.code == "not_found" and self.session_id and msg.session_id == self.session_id:
            self.session_lost()
        elif msg.code == "unavailable" and msg.leader:
            # A manager that does not lead: register with the one it names, now.
            self.session_lost()
            fx.switch_to = msg.leader
            if msg.leader_addr and all(m.node_id != msg.leader for m in self.managers):
                self.managers = (*self.managers, ManagerAddr(msg.leader, msg.leader_addr))
        elif msg.code == "unavailable" and self.session_id:
            # This manager cannot serve the session (it lost its leadership, or
            # left the managers) and knows no leader: try the next manager.
            self.session_lost()
            fx.switch_manager = True
        return fx

    def manager_gone(self, now: float) -> Effects:
        """The connection to this session's manager dropped (its process died):
        turn to another manager and register there now, as after three silent
        heartbeat periods, without waiting them out."""
        fx = Effects()
        if self.inventory_known:
            self._register_elsewhere(now, fx)
        return fx

    def _register_elsewhere(self, now: float, fx: Effects) -> None:
        """End the session, turn to another manager and register there."""
        self.session_lost()
        self.register_sent_at = now
        fx.switch_manager = True
        fx.messages.append(Register(self.token, self.description))

    def session_lost(self) -> None:
        self.session_id = ""
        self.token = self._new_token()
        self.register_sent_at = None

    def assignments(self, msg: Assignments, now: float, wall: float) -> Effects:
        fx = Effects()
        if msg.session_id != self.session_id or not self.session_id:
            return fx
        if msg.full:
            if msg.results_in <= self.seq:
                return fx  # older than what is held
            keep = {t.id for t in msg.tasks}
            removed = [tid for tid in self.tasks if tid not in keep]
            self.full_requested_at = None
            self._drop_unassigned(keep, fx)
        elif msg.applies_to == self.seq:
            removed = list(msg.removed)
        elif msg.applies_to < self.seq:
            return fx  # a duplicate or a late one: already applied or superseded
        else:
            self._request_full(now, fx)  # a set was lost
            return fx
        self.seq = msg.results_in
        self._hold(msg)
        for tid in removed:
            entry = self.tasks.pop(tid, None)
            self._forget_report(tid)
            if entry is not None:
                fx.commands.append(Command("remove", entry.task))
        for task in msg.tasks:
            self._assign(task, wall, fx)
        return fx

    def _hold(self, msg: Assignments) -> None:
        """Take the set's secrets and configs before its tasks, which may need
        them: a full set names all the node needs, an incremental one what it
        adds and what it drops."""
        if msg.full:
            self.secrets = {}
            self.configs = {}
        for sid in msg.removed_secrets:
            self.secrets.pop(sid, None)
        for cid in msg.removed_configs:
            self.configs.pop(cid, None)
        self.secrets.update((s.id, s) for s in msg.secrets)
        self.configs.update((c.id, c) for c in msg.configs)

    def _drop_unassigned(self, keep: set[str], fx: Effects) -> None:
        """A full set names every task this node should hold: a task left by a
        previous run that it does not name was removed or rescheduled while
        the node was away, and must not run on beside its replacement."""
        for tid in [t for t in self.adopted if t not in keep]:
            del self.adopted[tid]
            fx.commands.append(Command("remove", Task(id=tid)))
        for tid in [t for t in self.gone if t not in keep]:
            self.gone.discard(tid)
            fx.commands.append(Command("remove", Task(id=tid)))

    def _request_full(self, now: float, fx: Effects) -> None:
        if self.full_requested_at is None or now - self.full_requested_at >= RESYNC_RETRY:
            self.full_requested_at = now
            fx.messages.append(AssignmentsRequest(self.session_id))

    def _forget_report(self, tid: str) -> None:
        self.pending.pop(tid, None)
        self.unsent.discard(tid)
        self.sent_at.pop(tid, None)

    def _assign(self, task: Task, wall: float, fx: Effects) -> None:
        entry = self.tasks.get(task.id)
        if entry is None and task.id in self.adopted:
            entry = self._adopt(task, self.adopted.pop(task.id), wall, fx)
            if entry is None:
                return
        if entry is None:
            if task.status.state.terminal:
                if task.id in self.gone:
                    # A task that ended before the restart: what it left (its
                    # output, for `logs`) stays while the store keeps the task,
                    # and goes when its assignment does, as for any task.
                    self.gone.discard(task.id)
                    self.tasks[task.id] = Entry(task, task.status.state, status=task.status)
                return
            if task.status.state > TaskState.ASSIGNED:
                self._lost(task, wall)
                return
            entry = Entry(task, TaskState.ASSIGNED)
            self.tasks[task.id] = entry
            # Recorded but never started by the previous run: start it now.
            self.gone.discard(task.id)
            if task.desired_state <= TaskState.RUNNING:
                self._move(entry, TaskState.ACCEPTED, "accepted", wall)
                self._move(entry, TaskState.PREPARING, "preparing", wall)
                files, missing = resolve(task, self.secrets, self.configs)
                if missing:
                    # Removed since the service named it: the task cannot run here.
                    err = "; ".join(missing)
                    self._move(entry, TaskState.REJECTED, "preparing failed", wall, err)
                    return
                fx.commands.append(Command("prepare", task, files))
        entry.task = task
        if task.desired_state > TaskState.RUNNING:
            self._stop(entry, wall, fx)
        else:
            self._start_if_wanted(entry, wall, fx)

    def _adopt(self, task: Task, pid: int, wall: float, fx: Effects) -> Entry | None:
        """A task whose process a previous run of this node started and which
        still runs: take it over as running rather than start a second copy,
        and report it RUNNING again (under its pid) to the new session."""
        if task.status.state.terminal:
            # The manager already counts it ended (and may have replaced it).
            fx.commands.append(Command("remove", task))
            return None
        entry = Entry(task, TaskState.STARTING, started=True, pid=pid)
        self.tasks[task.id] = entry
        if task.spec.container.healthcheck.test[:1] in (("CMD",), ("CMD-SHELL",)):
            # Its executor knew only its ID: with the spec it checks its health again.
            fx.commands.append(Command("adopt", task))
        entry.status = self._status(entry, TaskState.RUNNING, "running (adopted)", wall)
        entry.state = TaskState.RUNNING
        self.pending[task.id] = entry.status
        self.unsent.add(task.id)
        return entry

    def _lost(self, task: Task, wall: float) -> None:
        """A task this node took on before, whose process is gone: the agent
        and its executor were restarted, and the task ended meanwhile (or its
        record too was lost). A task never runs twice under one ID, so report
        it ended and let the orchestrator replace it per its restart policy."""
        entry = Entry(task, task.status.state)
        self.tasks[task.id] = entry
        if task.id in self.gone:
            self.gone.discard(task.id)
            err = "task lost: its process ended while the node's agent was down"
        else:
            err = "task lost: the node's agent restarted while it ran"
        if task.desired_state > TaskState.RUNNING:
            self._move(entry, TaskState.SHUTDOWN, "shutdown", wall)
        else:
            self._move(entry, TaskState.FAILED, "failed", wall, err)

    def _start_if_wanted(self, entry: Entry, wall: float, fx: Effects) -> None:
        """Start a prepared task once the manager wants it running: a task may
        wait prepared while its desired state is READY (e.g. a restart delay)."""
        if (
            entry.state == TaskState.READY
            and not entry.started
            and not entry.stopping
            and entry.task.desired_state == TaskState.RUNNING
        ):
            entry.started = True
            self._move(entry, TaskState.STARTING, "starting", wall)
            fx.commands.append(Command("start", entry.task))

    def _stop(self, entry: Entry, wall: float, fx: Effects) -> None:
        if entry.state.terminal or entry.stopping:
            return
        if entry.started:
            entry.stopping = True
            fx.commands.append(Command("shutdown", entry.task))
        else:
            self._move(entry, TaskState.SHUTDOWN, "shutdown", wall)

    # --- executor events -------------------------------------------------------

    def prepared(self, task_id: str, err: str, wall: float) -> Effects:
        fx = Effects()
        entry = self.tasks.get(task_id)
        if entry is None or entry.state.terminal:
            return fx
        if err:
            self._move(entry, TaskState.REJECTED, "preparing failed", wall, err)
            return fx
        self._move(entry, TaskState.READY, "prepared", wall)
        self._start_if_wanted(entry, wall, fx)
        return fx

    def started(
        self, task_id: str, pid: int, err: str, wall: float, wait_healthy: bool = False
    ) -> None:
        """``wait_healthy``: the task has a health check, and stays STARTING
        until it passes (``healthy``), as Docker's swarm mode does."""
        entry = self.tasks.get(task_id)
        if entry is None or entry.state.terminal:
            return
        if err:
            self._move(entry, TaskState.FAILED, "starting failed", wall, err)
            return
        entry.pid = pid
        if not wait_healthy:
            self._move(entry, TaskState.RUNNING, "started", wall)

    def healthy(self, task_id: str, wall: float) -> None:
        """The task's health check passed: a task waiting for it now runs."""
        entry = self.tasks.get(task_id)
        if entry is None or not entry.started or entry.stopping:
            return
        if entry.state == TaskState.STARTING:
            self._move(entry, TaskState.RUNNING, "started", wall)

    def exited(self, task_id: str, exit_code: int, wall: float, err: str = "") -> None:
        """``err``: the engine's own words on why the task ended, if it has any."""
        entry = self.tasks.get(task_id)
        if entry is None and task_id in self.adopted:
            # Taken back from a previous run, and ended before any assignment
            # named it: when one does, it is reported lost, not RUNNING.
            del self.adopted[task_id]
            self.gone.add(task_id)
            return
        if entry is None or entry.state.terminal:
            return
        if entry.stopping:
            self._move(entry, TaskState.SHUTDOWN, "shutdown", wall, exit_code=exit_code)
        elif err:
            self._move(entry, TaskState.FAILED, "failed", wall, f"task: {err}", exit_code)
        elif exit_code == EXIT_UNKNOWN:
            # Only the previous run, its parent, could learn how it ended.
            err = "task: exited after being adopted from a previous run; exit code unknown"
            self._move(entry, TaskState.FAILED, "failed", wall, err, exit_code)
        elif exit_code == 0:
            self._move(entry, TaskState.COMPLETE, "finished", wall, exit_code=exit_code)
        else:
            err = f"task: non-zero exit ({exit_code})"
            self._move(entry, TaskState.FAILED, "failed", wall, err, exit_code)

    # --- bookkeeping -------------------------------------------------------

    def _status(
        self,
        entry: Entry,
        state: TaskState,
        message: str,
        wall: float,
        err: str = "",
        exit_code: int = 0,
    ) -> TaskStatus:
        return TaskStatus(
            timestamp=wall,
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
        wall: float,
        err: str = "",
        exit_code: int = 0,
    ) -> None:
        if state <= entry.state:
            return
        entry.state = state
        entry.status = self._status(entry, state, message, wall, err, exit_code)
        tid = entry.task.id
        self.pending[tid] = entry.status
        self.unsent.add(tid)
