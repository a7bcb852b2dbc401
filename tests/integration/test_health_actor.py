"""The executor actor with the process executor's health checks: a checked
task is reported waiting, then healthy; an unhealthy one is stopped and its
exit carries the cause; a probe that hangs delays no other task's stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until

from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.messages import ExecutorEvent
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Command, Commands
from pyswarmkit.api.objects import ContainerSpec, HealthConfig, Task, TaskSpec
from pyswarmkit.executor.process import ProcessExecutor
from tests.integration.test_executor_batches import Collector

pytestmark = pytest.mark.integration


def task(tid: str, probe: str = "", **check: Any) -> Task:
    health = HealthConfig(test=("CMD-SHELL", probe), **check) if probe else HealthConfig()
    container = ContainerSpec(command=("sleep", "1000"), healthcheck=health)
    return Task(id=tid, spec=TaskSpec(container=container))


def events(collector: Any) -> list[ExecutorEvent]:
    return [e for b in collector.proxy().batches.get() for e in b.events]


def seen(collector: Any, kind: str, tid: str) -> ExecutorEvent | None:
    return next((e for e in events(collector) if e.kind == kind and e.task_id == tid), None)


def test_health_through_the_executor_actor(tmp_path: Path) -> None:
    registry = Registry("n")
    collector = Collector.start()
    registry.add("agent", collector)
    actor = ExecutorActor.start(registry, ProcessExecutor(tmp_path, "n"))
    probing = tmp_path / "probing"
    hangs = task("hangs", f"touch {probing}; exec sleep 30", interval=0.05, timeout=60)
    good = task("good", "true", interval=0.05)
    bad = task("bad", "exit 1", interval=0.05, retries=2)
    plain = task("plain")
    try:
        for t in (hangs, good, bad, plain):
            actor.tell(Commands((Command("prepare", t), Command("start", t))))
        wait_until(lambda: seen(collector, "started", "plain") is not None, what="plain started")
        for tid in ("hangs", "good", "bad"):
            wait_until(lambda tid=tid: seen(collector, "waiting", tid), what=f"{tid} waiting")
        wait_until(lambda: seen(collector, "healthy", "good"), what="good healthy")

        def unhealthy_exit() -> bool:
            e = seen(collector, "exited", "bad")
            return e is not None and e.err == "non-zero exit (143): unhealthy container"

        wait_until(unhealthy_exit, timeout=10, what="bad stopped as unhealthy")

        # With a probe hanging, another task's stop is carried out at once.
        wait_until(probing.exists, what="the hanging probe running")
        actor.tell(Command("shutdown", plain))
        wait_until(lambda: seen(collector, "exited", "plain"), timeout=3, what="plain stopped")
        assert seen(collector, "healthy", "hangs") is None
        assert seen(collector, "exited", "hangs") is None
    finally:
        actor.stop()
        collector.stop()
