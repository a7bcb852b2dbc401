"""The manager killed under its workers and started again: the workers keep
their tasks running throughout, find the manager again by themselves, and the
swarm comes back from the manager's Raft log with the same tasks, nothing
started twice."""

from __future__ import annotations

import signal
import time

import pytest
from cluster import Swarm, task_nodes
from helpers import alive, children_of, wait_until

pytestmark = pytest.mark.e2e


def sleeps_under(pid: int) -> set[int]:
    return {child for child, argv in children_of(pid) if argv[:1] == ["sleep"]}


def task_ids(swarm: Swarm) -> set[str]:
    out = swarm.ctl("task", "ls")
    return {line.split()[0] for line in out.splitlines()[2:] if "RUNNING" in line}


def test_a_killed_manager_comes_back_and_its_workers_keep_their_tasks(swarm: Swarm) -> None:
    swarm.init()
    swarm.ctl("cluster", "update", "default", "--heartbeat-period", "1s")
    token, _ = swarm.tokens()
    swarm.join_workers(token, "node-2", "node-3")
    swarm.sleepers("web", 6)
    wait_until(lambda: len(task_nodes(swarm, "web")) == 6, timeout=60, what="6 running")
    placed = task_nodes(swarm, "web")
    before_ids = task_ids(swarm)
    workers = {name: swarm.procs[name].pid for name in ("node-2", "node-3")}
    worker_tasks = {name: sleeps_under(pid) for name, pid in workers.items()}
    manager_tasks = sleeps_under(swarm.procs["node-1"].pid)
    assert sum(len(p) for p in worker_tasks.values()) + len(manager_tasks) == 6

    swarm.procs["node-1"].send_signal(signal.SIGKILL)
    swarm.procs["node-1"].wait(10)
    # Longer than three heartbeats: the workers are cut off, and keep running.
    time.sleep(4)
    for name, pid in workers.items():
        assert swarm.procs[name].poll() is None, f"{name} exited without its manager"
        assert sleeps_under(pid) == worker_tasks[name]
    assert all(alive(p) for p in manager_tasks)

    swarm.start("node-1", "--listen-control-api", swarm.socket, "--listen-remote-api", swarm.addr)
    wait_until(
        lambda: sorted(swarm.ready()) == ["node-1", "node-2", "node-3"],
        timeout=60,
        what="all three READY again",
    )
    wait_until(lambda: len(task_nodes(swarm, "web")) == 6, timeout=60, what="6 running again")
    # Hold for a few heartbeats: nothing is replaced, nothing runs twice.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert task_nodes(swarm, "web") == placed
        time.sleep(0.3)
    assert task_ids(swarm) == before_ids
    for name, pid in workers.items():
        assert sleeps_under(pid) == worker_tasks[name], f"{name}'s tasks were restarted"
    assert all(alive(p) for p in manager_tasks), "the manager's own tasks were not kept"
    assert "left running by a previous run" in swarm.log("node-1")
