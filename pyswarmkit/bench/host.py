"""Many worker agents in one process: one actor drives every agent core of
an agent host, each with its own sim executor, over one transport.

A real ``swarmd`` worker runs an agent actor and an executor actor, each a
thread, and a ticker thread. A thousand of those on two cores would spend
their time switching threads, not being agents. So one ``AgentHost`` actor
holds the pure cores of all its agents (``agent/core.py``'s ``Agent``, the
same class a real worker runs) and one ``SimRunner`` per agent carrying out
the executor commands on real sim controllers (``executor/sim.py``), and one
ticker ticks them all. What an agent sends the manager is what a real worker
sends, under its own node ID, over its own CurveZMQ connection.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Deliver, ExecutorEvent, Tick
from pyswarmkit.agent.core import REGISTER_RETRY, Agent, Command, Effects
from pyswarmkit.api.objects import NodeDescription
from pyswarmkit.api.protocol import Body, Error, Register
from pyswarmkit.ca.authz import REMOVED
from pyswarmkit.executor.sim import SimController, SimExecutor
from pyswarmkit.transport.bus import Envelope
from pyswarmkit.transport.zmq_bus import ZmqBus

log = logging.getLogger(__name__)

# A chain of executor steps (prepare -> start, shutdown -> exited) is followed
# this many rounds at most in one go; a sim task needs three.
MAX_ROUNDS = 8


class SimRunner:
    """What the executor actor does for one node, synchronously: sim
    controllers answer at once, so a command's outcome is known when it
    returns and needs no polling round trip."""

    def __init__(self, executor: SimExecutor) -> None:
        self.executor = executor
        self.controllers: dict[str, SimController] = {}

    def run(self, commands: list[Command]) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        for cmd in commands:
            tid = cmd.task.id
            if cmd.op == "prepare":
                ctl = self.executor.controller(cmd.task)
                ctl.prepare()
                self.controllers[tid] = ctl
                events.append(ExecutorEvent("prepared", tid))
            elif cmd.op == "start":
                found = self.controllers.get(tid)
                if found is not None:
                    events.append(ExecutorEvent("started", tid, pid=found.start()))
            elif cmd.op == "shutdown":
                found = self.controllers.get(tid)
                if found is not None:
                    found.shutdown()
                    code = found.poll()
                    if code is not None:
                        events.append(ExecutorEvent("exited", tid, exit_code=code))
            elif cmd.op == "remove":
                found = self.controllers.pop(tid, None)
                if found is not None:
                    found.remove()
        return events

    def __len__(self) -> int:
        return len(self.controllers)


@dataclass(slots=True)
class Hosted:
    """One agent of the host: its node ID, its core, its executor."""

    node_id: str
    core: Agent
    runner: SimRunner
    removed: bool = False


@dataclass(frozen=True, slots=True)
class AddAgent:
    """An agent that has joined: from now on it registers and runs tasks."""

    node_id: str
    manager_id: str
    description: NodeDescription
    seed: int = 0


class AgentHost(GuardedActor):
    name = "agent"

    def __init__(self, bus: ZmqBus) -> None:
        super().__init__()
        self.bus = bus
        # Learned from the first join: the manager every agent reports to.
        self.manager_id = ""
        self.agents: dict[str, Hosted] = {}
        # Messages dropped: past their deadline, or not from the manager.
        self.dropped = 0

    def handle(self, message: Any) -> Any:
        if isinstance(message, Tick):
            for hosted in self.agents.values():
                if not hosted.removed:
                    self._carry_out(hosted, hosted.core.tick(message.now), message.now)
        elif isinstance(message, Deliver):
            self._delivered(message)
        elif isinstance(message, AddAgent):
            self.manager_id = message.manager_id
            executor = SimExecutor(
                message.description.hostname,
                message.description.resources,
                dict(message.description.engine.labels),
            )
            # A sim executor leaves nothing behind: no inventory to wait for.
            core = Agent(message.description, random.Random(message.seed))
            self.agents[message.node_id] = Hosted(message.node_id, core, SimRunner(executor))
        return None

    def _delivered(self, msg: Deliver) -> None:
        env = msg.envelope
        hosted = self.agents.get(env.dest_node)
        now = clock.monotonic()
        if hosted is None or env.source != self.manager_id or env.expired(now):
            self.dropped += 1
            return
        body = env.body
        if isinstance(body, Error):
            if body.code == "permission_denied" and body.message == REMOVED:
                if not hosted.removed:
                    hosted.removed = True
                    log.warning("agent %s was removed from the swarm", hosted.node_id)
                return
            log.debug("dispatcher refused %s of %s: %s", body.request, hosted.node_id, body.message)
        self._carry_out(hosted, hosted.core.receive(body, now, clock.wall()), now)

    def _carry_out(self, hosted: Hosted, fx: Effects, now: float) -> None:
        """Run the core's commands through the node's executor and feed the
        outcomes back, until nothing more is asked; then send its messages."""
        core = hosted.core
        messages = list(fx.messages)
        commands = list(fx.commands)
        rounds = 0
        while commands and rounds < MAX_ROUNDS:
            rounds += 1
            wall = clock.wall()
            more: list[Command] = []
            for ev in hosted.runner.run(commands):
                if ev.kind == "prepared":
                    nxt = core.prepared(ev.task_id, ev.err, wall)
                    more.extend(nxt.commands)
                    messages.extend(nxt.messages)
                elif ev.kind == "started":
                    core.started(ev.task_id, ev.pid, ev.err, wall)
                elif ev.kind == "exited":
                    core.exited(ev.task_id, ev.exit_code, wall)
            commands = more
        for body in messages:
            self._send(hosted, body, now)

    def _send(self, hosted: Hosted, body: Body, now: float) -> None:
        # As the agent actor: past this, a newer request of the kind is on its way.
        ttl = REGISTER_RETRY if isinstance(body, Register) else hosted.core.heartbeat_period
        self.bus.send(
            Envelope(hosted.node_id, self.manager_id, "dispatcher", body, deadline=now + ttl)
        )
