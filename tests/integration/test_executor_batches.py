"""The executor actor takes the agent's commands as one message, answers with
one message of events, and polls running tasks in slices."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest
from helpers import wait_until

from pyswarmkit.actors import executor as executor_module
from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.messages import ExecutorEvents, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Command, Commands
from pyswarmkit.api.objects import Task
from pyswarmkit.executor.sim import SimExecutor

pytestmark = pytest.mark.integration


class Collector(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[ExecutorEvents] = []
        self.lock = threading.Lock()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ExecutorEvents):
            with self.lock:
                self.batches.append(message)
        return None


def _start() -> tuple[pykka.ActorRef[Any], pykka.ActorRef[Any]]:
    registry = Registry("n")
    collector = Collector.start()
    registry.add("agent", collector)
    return ExecutorActor.start(registry, SimExecutor("n")), collector


def test_a_batch_of_commands_is_answered_by_one_batch_of_events_in_order() -> None:
    actor, collector = _start()
    try:
        tasks = [Task(id=f"t{i}") for i in range(3)]
        bad = Command("prepare", None)  # type: ignore[arg-type]
        cmds = [Command("prepare", t) for t in tasks[:2]] + [bad, Command("prepare", tasks[2])]
        cmds += [Command("start", t) for t in tasks]
        actor.tell(Commands(tuple(cmds)))
        batches = wait_until(lambda: collector.proxy().batches.get(), what="events")
        assert len(batches) == 1
        seen = [(e.kind, e.task_id) for e in batches[0].events]
        assert seen == [("prepared", t.id) for t in tasks] + [("started", t.id) for t in tasks]
        assert actor.is_alive()
        assert actor.proxy().failures.get() == 1
    finally:
        actor.stop()
        collector.stop()


def test_running_tasks_are_polled_in_slices_and_stopping_ones_every_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(executor_module, "POLL_SLICE", 2)
    registry = Registry("n")
    out: list[ExecutorEvents] = []
    # Driven directly, without a thread: what each tick polls is the point.
    actor = ExecutorActor(registry, SimExecutor("n"))
    actor._flush = lambda: (out.append(ExecutorEvents(tuple(actor._out))), actor._out.clear())  # type: ignore[method-assign]
    tasks = [Task(id=f"t{i}") for i in range(5)]
    actor.handle(Commands(tuple(Command(op, t) for t in tasks for op in ("prepare", "start"))))
    polled: list[str] = []
    for ctl in actor.controllers.values():
        ctl.poll = lambda tid=ctl.task.id: polled.append(tid)  # type: ignore[method-assign]
    actor.handle(Tick(1.0, 1.0))
    assert len(polled) == 2
    actor.handle(Tick(2.0, 2.0))
    actor.handle(Tick(3.0, 3.0))
    assert sorted(polled) == [t.id for t in tasks]  # each once in a round of three ticks

    # A task told to stop is polled on every tick until it has exited.
    stopping = actor.controllers["t4"]
    del stopping.poll  # type: ignore[attr-defined]
    actor.handle(Command("shutdown", tasks[4]))
    out.clear()
    actor.handle(Tick(4.0, 4.0))
    exited = [e for batch in out for e in batch.events if e.kind == "exited"]
    assert [e.task_id for e in exited] == ["t4"]
    assert "t4" not in actor.running and "t4" not in actor.stopping
