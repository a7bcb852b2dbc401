"""Each task records its pid and start time, and leaves no directory behind
once removed. (What a new run does with those records: test_adopt_process.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import wait_until

from pyswarmkit.api.objects import ContainerSpec, Task, TaskSpec
from pyswarmkit.executor.process import ProcessExecutor, start_time

pytestmark = pytest.mark.integration


def task(*argv: str) -> Task:
    container = ContainerSpec(command=argv[:1], args=argv[1:])
    return Task(id=f"t{time.monotonic_ns()}", spec=TaskSpec(container=container))


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
