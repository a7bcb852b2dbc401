"""A worker killed under its tasks: the manager marks it DOWN after three
missed heartbeats, its tasks run elsewhere, and when it comes back no slot
runs twice."""

from __future__ import annotations

import signal
import time

import pytest
from cluster import Swarm, task_nodes
from helpers import wait_until

pytestmark = pytest.mark.e2e


def status(swarm: Swarm, name: str) -> str:
    for line in swarm.ctl("node", "ls").splitlines()[2:]:
        cols = line.split()
        if len(cols) > 3 and cols[1] == name:
            return cols[3]
    return ""


def running_slots(swarm: Swarm) -> list[str]:
    return sorted(task_nodes(swarm, "web"))


@pytest.mark.parametrize("period", ["1s", "5s"])
def test_a_killed_worker_goes_down_and_its_tasks_run_elsewhere(swarm: Swarm, period: str) -> None:
    swarm.init()
    if period != "5s":
        swarm.ctl("cluster", "update", "default", "--heartbeat-period", period)
    token, _ = swarm.tokens()
    swarm.join_workers(token, "node-2", "node-3")
    swarm.sleepers("web", 6)
    wait_until(
        lambda: (
            sorted(task_nodes(swarm, "web").values()).count("node-3") == 2
            and len(task_nodes(swarm, "web")) == 6
        ),
        timeout=60,
        what="six tasks, two on node-3",
    )

    if period == "1s":
        # Draining a worker moves its tasks to the others within seconds.
        drained_at = time.monotonic()
        swarm.ctl("node", "drain", "node-2")
        assert swarm.rows()["node-2"][4] == "DRAIN"
        wait_until(
            lambda: (
                len(task_nodes(swarm, "web")) == 6
                and "node-2" not in task_nodes(swarm, "web").values()
            ),
            timeout=30,
            what="node-2's tasks moved to node-1 and node-3",
        )
        print(f"\ndrain: 6/6 off node-2 after {time.monotonic() - drained_at:.1f}s")
        swarm.ctl("node", "activate", "node-2")
        assert swarm.rows()["node-2"][4] == "ACTIVE"

    killed_at = time.monotonic()
    swarm.procs["node-3"].send_signal(signal.SIGKILL)
    swarm.procs["node-3"].wait(10)
    wait_until(lambda: status(swarm, "node-3") == "DOWN", timeout=60, what="node-3 DOWN")
    down_after = time.monotonic() - killed_at
    assert "heartbeat failure" in swarm.ctl("node", "inspect", "node-3")
    wait_until(
        lambda: (
            len(task_nodes(swarm, "web")) == 6 and "node-3" not in task_nodes(swarm, "web").values()
        ),
        timeout=60,
        what="all six running on node-1 and node-2",
    )
    recovered_after = time.monotonic() - killed_at
    print(
        f"\nheartbeat {period}: DOWN after {down_after:.1f}s, 6/6 again after "
        f"{recovered_after:.1f}s"
    )

    # It comes back: READY again, its old tasks are not run a second time.
    swarm.start("node-3")
    wait_until(lambda: status(swarm, "node-3") == "READY", timeout=60, what="node-3 READY again")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        slots = running_slots(swarm)
        assert len(slots) == len(set(slots)) == 6, slots
        time.sleep(0.2)
