"""Task processes never outlive their node unnoticed, and leave no directory
behind once removed."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import alive, children_of, wait_until

from pyswarmkit.api.objects import ContainerSpec, Task, TaskSpec
from pyswarmkit.executor.process import ProcessController, ProcessExecutor, start_time

pytestmark = pytest.mark.integration


def task(*argv: str) -> Task:
    container = ContainerSpec(command=argv[:1], args=argv[1:])
    return Task(id=f"t{time.monotonic_ns()}", spec=TaskSpec(container=container))


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def test_remove_deletes_the_task_directory(tmp_path: Path) -> None:
    ex = ProcessExecutor(tmp_path, "node-1")
    ctl = ex.controller(task("sh", "-c", "echo hi"))
    ctl.prepare()
    ctl.start()
    wait_until(lambda: ctl.poll() is not None, what="exit")
    assert ctl.workdir.is_dir()
    assert (ctl.workdir / "stdout.log").read_text() == "hi\n"
    ctl.remove()
    assert not ctl.workdir.exists()
    assert list((tmp_path / "worker" / "tasks").iterdir()) == []


def test_a_task_records_its_pid_and_start_time(tmp_path: Path) -> None:
    ex = ProcessExecutor(tmp_path, "node-1")
    ctl = ex.controller(task("sleep", "1000"))
    ctl.prepare()
    pid = ctl.start()
    try:
        assert (ctl.workdir / "pid").read_text() == f"{pid} {start_time(pid)}\n"
    finally:
        ctl.remove()


def test_a_task_dies_with_the_thread_that_started_it(tmp_path: Path) -> None:
    """The node's death (the starting thread's end) takes its tasks along."""
    ex = ProcessExecutor(tmp_path, "node-1")
    ctl: list[ProcessController] = []
    pids: list[int] = []

    def starter() -> None:
        c = ex.controller(task("sleep", "1000"))
        c.prepare()
        pids.append(c.start())
        ctl.append(c)

    thread = threading.Thread(target=starter)
    thread.start()
    thread.join(10)
    try:
        # The Popen object still holds the child, so reap it to see it go.
        wait_until(lambda: ctl[0].poll() is not None, what="the task killed with its thread")
        assert ctl[0].poll() == 128 + signal.SIGKILL
    finally:
        kill_group(pids[0])
        ctl[0].remove()


def _previous_run_task(tasks_dir: Path, task_id: str, script: str) -> int:
    """A task process group as an earlier swarmd would have left it."""
    workdir = tasks_dir / task_id
    workdir.mkdir(parents=True)
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    (workdir / "pid").write_text(f"{proc.pid} {start_time(proc.pid)}\n")
    return proc.pid


def test_a_new_executor_stops_what_a_previous_run_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tasks_dir = tmp_path / "worker" / "tasks"
    leader = _previous_run_task(tasks_dir, "old1", "sleep 1000 & sleep 1000; wait")
    wait_until(lambda: len(children_of(leader)) == 2, what="the old task's children")
    members = [p for p, _ in children_of(leader)]
    # A group whose leader is gone but whose member runs on.
    orphaned = _previous_run_task(tasks_dir, "old2", "sleep 1000 & exit 0")
    wait_until(lambda: not alive(orphaned), what="the leader exits")
    stray = [int(e) for e in os.listdir("/proc") if e.isdigit() and _pgid(int(e)) == orphaned]
    assert stray
    try:
        with caplog.at_level(logging.WARNING):
            ProcessExecutor(tmp_path, "node-1")
        wait_until(
            lambda: not any(alive(p) for p in [leader, *members, *stray]),
            what="every leftover process stopped",
        )
        assert list(tasks_dir.iterdir()) == []
        logged = [r.getMessage() for r in caplog.records]
        assert sum("left running by a previous run" in m for m in logged) == 2
        assert any("old1" in m for m in logged) and any("old2" in m for m in logged)
    finally:
        kill_group(leader)
        kill_group(orphaned)


def test_a_reused_pid_is_never_killed(tmp_path: Path) -> None:
    tasks_dir = tmp_path / "worker" / "tasks"
    other = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        workdir = tasks_dir / "old"
        workdir.mkdir(parents=True)
        started = start_time(other.pid)
        assert started is not None
        # The record says the pid belonged to a process that started earlier.
        (workdir / "pid").write_text(f"{other.pid} {started - 1}\n")
        ProcessExecutor(tmp_path, "node-1")
        assert other.poll() is None
        assert not workdir.exists()
    finally:
        other.kill()
        other.wait(10)


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1
