"""A task adopted from a previous run has its health checked again once its
spec is known: an unhealthy one is stopped and reported with the cause."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until

from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Command
from pyswarmkit.api.objects import ContainerSpec, HealthConfig, Task, TaskSpec
from pyswarmkit.executor.process import ProcessExecutor
from tests.integration.test_executor_batches import Collector

pytestmark = pytest.mark.integration


def test_an_adopted_unhealthy_task_is_stopped(tmp_path: Path) -> None:
    check = HealthConfig(test=("CMD-SHELL", "exit 1"), interval=0.05, retries=1)
    container = ContainerSpec(command=("sleep", "1000"), healthcheck=check)
    task = Task(id="t1", spec=TaskSpec(container=container))
    # Started by a previous run of the node, which then died without stopping it.
    first = ProcessExecutor(tmp_path, "n").controller(task)
    first.prepare()
    pid = first.start()
    registry = Registry("n")
    collector = Collector.start()
    registry.add("agent", collector)
    actor: Any = ExecutorActor.start(registry, ProcessExecutor(tmp_path, "n"))
    try:
        actor.tell(Command("adopt", task))

        def stopped() -> bool:
            return any(
                e.kind == "exited" and e.task_id == "t1" and e.err == "unhealthy container"
                for b in collector.proxy().batches.get()
                for e in b.events
            )

        wait_until(stopped, timeout=10, what="the adopted task stopped as unhealthy")
    finally:
        actor.stop()
        collector.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
