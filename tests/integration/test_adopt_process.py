"""The process executor takes back, with real processes, what a previous run on
the same state dir left: running tasks keep running (and writing their logs),
their exit is seen though they are not its children, and a reused pid or a
finished task is never mistaken for a running one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import alive, children_of, wait_until

from pyswarmkit.api.objects import ContainerSpec, Task, TaskSpec
from pyswarmkit.executor.base import EXIT_UNKNOWN
from pyswarmkit.executor.process import ProcessController, ProcessExecutor, start_time

pytestmark = pytest.mark.integration


def task(*argv: str) -> Task:
    container = ContainerSpec(command=argv[:1], args=argv[1:])
    return Task(id=f"t{time.monotonic_ns()}", spec=TaskSpec(container=container))


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def reap(pid: int) -> None:
    """Our own children (the first run was this process) are reaped here."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def started_by_a_previous_run(tmp_path: Path, *argv: str) -> tuple[ProcessController, int]:
    """A task started as the first run would, then forgotten as a SIGKILL
    would forget it: its controller is dropped, its process runs on."""
    first = ProcessExecutor(tmp_path, "node-1")
    ctl = first.controller(task(*argv))
    ctl.prepare()
    return ctl, ctl.start()


def test_a_running_task_is_adopted_and_keeps_writing_its_log(tmp_path: Path) -> None:
    old, pid = started_by_a_previous_run(
        tmp_path, "sh", "-c", "while :; do echo tick; sleep 0.05; done"
    )
    try:
        (found,) = ProcessExecutor(tmp_path, "node-1").recover()
        assert (found.task_id, found.pid) == (old.task.id, pid)
        ctl = found.controller
        assert ctl.poll() is None
        out = ctl.log_files()[0]
        size = out.stat().st_size
        wait_until(lambda: out.stat().st_size > size, what="the adopted task writing on")
        # Not its child (in a real restart): its exit is seen through /proc,
        # a zombie counting as exited.
        ctl.shutdown()
        wait_until(lambda: ctl.poll() is not None, what="exit")
        assert ctl.poll() == EXIT_UNKNOWN
        ctl.remove()
        assert not old.workdir.exists()
    finally:
        kill_group(pid)
        reap(pid)


def test_a_task_that_ended_meanwhile_is_found_gone_and_its_group_stopped(
    tmp_path: Path,
) -> None:
    # The leader exits at once; a member of its group runs on.
    old, pid = started_by_a_previous_run(tmp_path, "sh", "-c", "sleep 1000 & exit 0")
    wait_until(lambda: old.poll() is not None, what="the leader exits")
    members = [p for p in _all_pids() if _pgid(p) == pid]
    assert members
    try:
        (found,) = ProcessExecutor(tmp_path, "node-1").recover()
        assert (found.task_id, found.pid) == (old.task.id, 0)
        wait_until(lambda: not any(alive(p) for p in members), what="the member stopped")
        found.controller.remove()
        assert not old.workdir.exists()
    finally:
        kill_group(pid)


def test_a_reused_pid_is_neither_adopted_nor_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        workdir = tmp_path / "worker" / "tasks" / "old"
        workdir.mkdir(parents=True)
        started = start_time(other.pid)
        assert started is not None
        # The record says the pid belonged to a process that started earlier.
        (workdir / "pid").write_text(f"{other.pid} {started - 1}\n")
        (found,) = ProcessExecutor(tmp_path, "node-1").recover()
        assert (found.task_id, found.pid) == ("old", 0)
        found.controller.terminate()
        found.controller.remove()
        assert other.poll() is None
        assert not workdir.exists()
    finally:
        other.kill()
        other.wait(10)


def test_a_task_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    """No parent-death signal any more: the node's death leaves its tasks for
    the next run to adopt."""
    import threading

    pids: list[int] = []

    def starter() -> None:
        pids.append(started_by_a_previous_run(tmp_path, "sleep", "1000")[1])

    thread = threading.Thread(target=starter)
    thread.start()
    thread.join(10)
    try:
        assert pids
        # Long enough for a parent-death SIGKILL to land, were one armed.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not alive(pids[0]), timeout=0.5, what="")
        assert alive(pids[0])
        assert [p for p, _ in children_of(os.getpid()) if p == pids[0]]
    finally:
        kill_group(pids[0])
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pids[0], 0)


def _all_pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1
