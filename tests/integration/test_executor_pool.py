"""An executor whose steps block (the Docker executor: every step is a call to
the engine) has them run in the executor actor's pool, each task's in order;
an executor that reports exits itself is never polled."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from helpers import wait_until

from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.messages import Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Command, Commands
from pyswarmkit.api.objects import Task
from pyswarmkit.executor.sim import SimController, SimExecutor
from pyswarmkit.executor.taskfiles import TaskFile
from tests.integration.test_executor_batches import Collector

pytestmark = pytest.mark.integration


class SlowController(SimController):
    def __init__(self, task: Task, gate: threading.Event, order: list[str]) -> None:
        super().__init__(task)
        self.gate = gate
        self.order = order
        self.polls = 0

    def prepare(self) -> None:
        if self.task.id == "slow":
            # An image pull that takes its time.
            self.gate.wait(20)
        self.order.append(f"prepare {self.task.id}")

    def start(self) -> int:
        self.order.append(f"start {self.task.id}")
        super().start()
        return 1

    def remove(self) -> None:
        self.order.append(f"remove {self.task.id}")

    def poll(self) -> int | None:
        self.polls += 1
        return self.exit_code


class SlowExecutor(SimExecutor):
    blocking = True

    def __init__(self) -> None:
        super().__init__("n")
        self.gate = threading.Event()
        self.order: list[str] = []
        self.made: list[SlowController] = []
        self.notify: Callable[[str, int, str], None] | None = None

    def controller(self, task: Task, files: tuple[TaskFile, ...] = ()) -> SlowController:
        ctl = SlowController(task, self.gate, self.order)
        self.made.append(ctl)
        return ctl

    def watch(self, notify: Callable[[str, int, str], None]) -> None:
        self.notify = notify


def _events(collector: Any) -> list[tuple[str, str, int]]:
    return [
        (e.kind, e.task_id, e.exit_code) for b in collector.proxy().batches.get() for e in b.events
    ]


def test_a_slow_step_holds_up_no_other_task_and_a_tasks_steps_keep_their_order() -> None:
    registry = Registry("n")
    collector = Collector.start()
    registry.add("agent", collector)
    executor = SlowExecutor()
    actor = ExecutorActor.start(registry, executor)
    slow, fast = Task(id="slow"), Task(id="fast")
    try:
        actor.tell(Commands((Command("prepare", slow), Command("prepare", fast))))
        actor.tell(Commands((Command("start", fast), Command("remove", slow))))
        wait_until(lambda: ("started", "fast", 0) in _events(collector), what="fast started")
        assert ("prepared", "slow", 0) not in _events(collector)
        executor.gate.set()
        wait_until(lambda: "remove slow" in executor.order, what="slow removed")
        # The removal waited for the prepare it came after.
        assert executor.order.index("prepare slow") < executor.order.index("remove slow")
    finally:
        executor.gate.set()
        actor.stop()
        collector.stop()


def test_exits_come_from_the_executor_and_nothing_is_polled() -> None:
    registry = Registry("n")
    collector = Collector.start()
    registry.add("agent", collector)
    executor = SlowExecutor()
    actor = ExecutorActor.start(registry, executor)
    task = Task(id="t1")
    try:
        actor.tell(Commands((Command("prepare", task), Command("start", task))))
        wait_until(lambda: ("started", "t1", 0) in _events(collector), what="started")
        for i in range(3):
            actor.tell(Tick(float(i), float(i)))
        assert executor.notify is not None
        executor.notify("t1", 7, "")
        wait_until(lambda: ("exited", "t1", 7) in _events(collector), what="exit reported")
        assert executor.made[0].polls == 0
    finally:
        actor.stop()
        collector.stop()


class ExitsAtOnce(SlowExecutor):
    """Its task exits before its start has returned, as a container may."""

    def controller(self, task: Task, files: tuple[TaskFile, ...] = ()) -> SlowController:
        ctl = super().controller(task)
        inner = ctl.start

        def start() -> int:
            pid = inner()
            assert self.notify is not None
            # Told before the start's own outcome, which follows when this returns.
            self.notify(task.id, 3, "")
            return pid

        ctl.start = start  # type: ignore[method-assign]
        return ctl


def test_an_exit_reported_before_the_start_returned_is_kept() -> None:
    registry = Registry("n")
    collector = Collector.start()
    registry.add("agent", collector)
    executor = ExitsAtOnce()
    actor = ExecutorActor.start(registry, executor)
    task = Task(id="t1")
    try:
        actor.tell(Commands((Command("prepare", task), Command("start", task))))
        wait_until(lambda: ("exited", "t1", 3) in _events(collector), what="exit reported")
        kinds = [k for k, tid, _ in _events(collector) if tid == "t1"]
        assert kinds == ["prepared", "started", "exited"]
    finally:
        actor.stop()
        collector.stop()
