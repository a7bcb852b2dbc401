"""One actor drives many agent cores: each agent registers, runs what it is
assigned on its own sim controllers and reports under its own node ID, as a
swarmd worker does."""

from __future__ import annotations

from typing import Any

import pytest

from pyswarmkit.actors.messages import Deliver, Tick
from pyswarmkit.api.objects import NodeDescription, Task
from pyswarmkit.api.protocol import Assignments, Register, Registered, UpdateTaskStatus
from pyswarmkit.api.states import TaskState
from pyswarmkit.bench.host import AddAgent, AgentHost
from pyswarmkit.transport.bus import Envelope

pytestmark = pytest.mark.unit

MANAGER = "manager-1"


class Recording:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    def send(self, envelope: Envelope, **kw: Any) -> bool:
        self.sent.append(envelope)
        return True

    def take(self) -> list[Envelope]:
        out, self.sent = self.sent, []
        return out


def deliver(host: AgentHost, node: str, body: Any) -> None:
    host.handle(Deliver(Envelope(MANAGER, node, "agent", body), "127.0.0.1"))


def test_each_agent_registers_runs_and_reports_as_itself() -> None:
    bus = Recording()
    host = AgentHost(bus)  # type: ignore[arg-type]
    for name in ("a", "b"):
        host.handle(AddAgent(name, MANAGER, NodeDescription(hostname=f"host-{name}")))
    host.handle(Tick(1.0, 1000.0))
    registers = bus.take()
    assert sorted(e.source for e in registers) == ["a", "b"]
    assert all(isinstance(e.body, Register) and e.dest_node == MANAGER for e in registers)
    for e in registers:
        assert isinstance(e.body, Register)
        deliver(host, e.source, Registered(e.body.token, f"s-{e.source}", 5.0))
    bus.take()

    task = Task(id="t1", node_id="a", desired_state=TaskState.RUNNING)
    deliver(host, "a", Assignments("s-a", True, 0, 1, (task,)))
    # Prepared and started on the sim executor at once; reported on the next tick.
    assert host.agents["a"].runner.controllers["t1"].running
    host.handle(Tick(1.2, 1000.2))
    reports = [e for e in bus.take() if isinstance(e.body, UpdateTaskStatus)]
    assert [e.source for e in reports] == ["a"]
    body = reports[0].body
    assert isinstance(body, UpdateTaskStatus) and body.session_id == "s-a"
    assert [(u.task_id, u.status.state) for u in body.updates] == [("t1", TaskState.RUNNING)]

    # A stop is carried out at once too: the sim task exits, reported SHUTDOWN.
    stop = Task(id="t1", node_id="a", desired_state=TaskState.SHUTDOWN)
    deliver(host, "a", Assignments("s-a", False, 1, 2, (stop,)))
    host.handle(Tick(1.4, 1000.4))
    reports = [e for e in bus.take() if isinstance(e.body, UpdateTaskStatus)]
    assert [u.status.state for e in reports for u in e.body.updates] == [TaskState.SHUTDOWN]  # type: ignore[union-attr]


def test_messages_not_from_the_manager_or_for_no_agent_are_dropped() -> None:
    bus = Recording()
    host = AgentHost(bus)  # type: ignore[arg-type]
    host.handle(AddAgent("a", MANAGER, NodeDescription(hostname="host-a")))
    host.handle(Deliver(Envelope("intruder", "a", "agent", Registered(1, "s", 5.0)), "x"))
    deliver(host, "nobody", Registered(1, "s", 5.0))
    assert host.dropped == 2
    assert host.agents["a"].core.session_id == ""
