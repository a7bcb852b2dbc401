"""The process executor reports exits as they happen (pidfds), so the executor
actor never polls it: no tick is needed for an exit to reach the agent."""

from __future__ import annotations

import os
import queue
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import wait_until

from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Command, Commands
from pyswarmkit.api.objects import ContainerSpec, Task, TaskSpec
from pyswarmkit.executor import pidwatch
from pyswarmkit.executor.process import ProcessExecutor
from tests.integration.test_executor_batches import Collector

pytestmark = pytest.mark.integration


def test_an_exit_reaches_the_agent_without_any_tick(tmp_path: Path) -> None:
    registry = Registry("n")
    collector = Collector.start()
    registry.add("agent", collector)
    actor = ExecutorActor.start(registry, ProcessExecutor(tmp_path, "n"))
    task = Task(id="t1", spec=TaskSpec(container=ContainerSpec(command=("sh", "-c", "exit 5"))))
    try:
        actor.tell(Commands((Command("prepare", task), Command("start", task))))

        def exited() -> bool:
            return any(
                e.kind == "exited" and e.exit_code == 5
                for b in collector.proxy().batches.get()
                for e in b.events
            )

        wait_until(exited, timeout=10, what="the exit, with no tick sent")
    finally:
        actor.stop()
        collector.stop()


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "fallback"])
def test_pid_watch_reports_once(monkeypatch: pytest.MonkeyPatch, pidfds: bool) -> None:
    if not pidfds:

        def refuse(pid: int) -> int:
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(os, "pidfd_open", refuse)
    seen: queue.Queue[tuple[str, int, str]] = queue.Queue()
    watch = pidwatch.PidWatch()
    watch.start(lambda key, code, err: seen.put((key, code, err)))
    proc = subprocess.Popen(["sleep", "1000"])
    try:
        watch.add("a", proc.pid, proc.poll)
        with pytest.raises(queue.Empty):
            seen.get(timeout=0.3)
        proc.terminate()
        assert seen.get(timeout=10) == ("a", -15, "")
        with pytest.raises(queue.Empty):
            seen.get(timeout=0.3)
    finally:
        proc.kill()
        proc.wait()
        watch.close()


def test_a_process_gone_before_it_is_added_is_reported_at_once() -> None:
    seen: queue.Queue[tuple[str, int, str]] = queue.Queue()
    watch = pidwatch.PidWatch()
    watch.start(lambda key, code, err: seen.put((key, code, err)))
    proc = subprocess.Popen(["true"])
    proc.wait()
    try:
        watch.add("b", proc.pid, proc.poll)
        assert seen.get(timeout=5) == ("b", 0, "")
    finally:
        watch.close()


def test_without_pidfds_processes_are_checked_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "pidfd_open", refuse)
    monkeypatch.setattr(pidwatch, "FALLBACK_SLICE", 2)
    checked: list[str] = []
    seen: queue.Queue[str] = queue.Queue()
    watch = pidwatch.PidWatch()
    watch.start(lambda key, code, err: seen.put(key))
    done: set[str] = set()

    def check(key: str) -> Callable[[], int | None]:
        def run() -> int | None:
            checked.append(key)
            return 0 if key in done else None

        return run

    try:
        for key in "abcde":
            watch.add(key, 1, check(key))
        checked.clear()
        wait_until(lambda: len(checked) >= 10, timeout=10, what="rounds of checks")
        # Two a round, every one in turn.
        assert set(checked[:10]) == set("abcde")
        done.add("d")
        assert seen.get(timeout=10) == "d"
    finally:
        watch.close()


def test_in_turn_takes_a_slice_and_wraps() -> None:
    keys = list("abcde")
    part, turn = pidwatch.in_turn(keys, 0, 2)
    assert part == ["a", "b"]
    part, turn = pidwatch.in_turn(keys, turn, 2)
    assert part == ["c", "d"]
    part, turn = pidwatch.in_turn(keys, turn, 2)
    assert part == ["e", "a"]
    assert pidwatch.in_turn(keys, 7, 10) == (keys, 0)
