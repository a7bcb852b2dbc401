"""The process executor's probe runner with real probes: a probe's exit 0
makes a task healthy, and one that outlives its timeout is killed, group and
all, and counts as a failure."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import alive, wait_until

from pyswarmkit import clock
from pyswarmkit.executor.health import Policy
from pyswarmkit.executor.probes import ProbeRunner, Target

pytestmark = pytest.mark.integration


@pytest.fixture
def runner() -> Iterator[tuple[ProbeRunner, queue.Queue[tuple[str, str]]]]:
    changes: queue.Queue[tuple[str, str]] = queue.Queue()
    r = ProbeRunner(pool_size=2)
    r.start(lambda tid, status: changes.put((tid, status)))
    yield r, changes
    r.close()


def shell(cmd: str, cwd: Path | None = None) -> Target:
    return Target(["/bin/sh", "-c", cmd], dict(os.environ), str(cwd) if cwd else None)


def test_passing_probe_makes_the_task_healthy(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r, changes = runner
    (tmp_path / "ok").touch()
    r.add(
        "t1",
        Policy(interval=0.1, timeout=5, retries=1),
        shell("test -f ok", tmp_path),
        clock.monotonic(),
    )
    assert changes.get(timeout=10) == ("t1", "healthy")
    (tmp_path / "ok").unlink()
    assert changes.get(timeout=10) == ("t1", "unhealthy")


def test_probe_outliving_its_timeout_is_killed_and_fails(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r, changes = runner
    pids = tmp_path / "pids"
    # The probe leaves a child behind in its group: both must go.
    cmd = f"sleep 30 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    started = time.monotonic()
    r.add("t1", Policy(interval=0.1, timeout=0.3, retries=1), shell(cmd), clock.monotonic())
    assert changes.get(timeout=10) == ("t1", "unhealthy")
    assert time.monotonic() - started < 5
    first = [int(p) for p in pids.read_text().split()[:2]]
    wait_until(lambda: not any(alive(p) for p in first), timeout=10, what="the probe's group gone")
    r.remove("t1")


def test_removing_a_task_kills_its_running_probe(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r, changes = runner
    pid_file = tmp_path / "pid"
    cmd = f"echo $$ > {pid_file}; exec sleep 30"
    r.add("t1", Policy(interval=0.05, timeout=60, retries=1), shell(cmd), clock.monotonic())
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", what="probe runs")
    pid = int(pid_file.read_text())
    r.remove("t1")
    wait_until(lambda: not alive(pid), timeout=10, what="the probe killed")
    assert "t1" not in r
    assert changes.empty()


def test_a_restarted_runner_probes_again(tmp_path: Path) -> None:
    """A runner started again (its executor actor restarted) kills the probes
    in flight and drops those waiting; every task is probed again."""
    changes: queue.Queue[tuple[str, str]] = queue.Queue()
    r = ProbeRunner(pool_size=1)
    r.start(lambda tid, status: changes.put((tid, status)))
    try:
        hang = tmp_path / "hang"
        policy = Policy(interval=0.05, timeout=60, retries=5)
        cmd = f"if [ -f {hang} ]; then exit 0; fi; touch {hang}; exec sleep 30"
        r.add("slow", policy, shell(cmd), clock.monotonic())
        wait_until(hang.exists, what="the slow probe running")
        # Waits behind the slow probe for the only runner thread.
        r.add("quick", policy, shell("true"), clock.monotonic())
        wait_until(lambda: r.queued() == 1, what="the quick probe waiting for a thread")
        r.start(lambda tid, status: changes.put((tid, status)))
        got = {changes.get(timeout=10), changes.get(timeout=10)}
        assert got == {("slow", "healthy"), ("quick", "healthy")}
    finally:
        r.close()


def test_hanging_probes_of_one_service_do_not_hold_up_another_tasks_check(
    tmp_path: Path,
) -> None:
    changes: queue.Queue[tuple[str, str]] = queue.Queue()
    r = ProbeRunner()
    r.start(lambda tid, status: changes.put((tid, status)))
    try:
        hang = Policy(interval=0.05, timeout=60, retries=1)
        for i in range(8):
            r.add(f"slow{i}", hang, shell("sleep 60"), clock.monotonic())
        wait_until(lambda: r.queued() == 0, timeout=10, what="every slow probe running")
        started = time.monotonic()
        r.add(
            "quick", Policy(interval=0.05, timeout=5, retries=1), shell("true"), clock.monotonic()
        )
        assert changes.get(timeout=10) == ("quick", "healthy")
        # Well before any slow probe's 60 s timeout could free a thread.
        assert time.monotonic() - started < 10
    finally:
        r.close()
