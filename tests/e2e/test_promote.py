"""Promote a worker to manager and demote the leader: each node restarts as
what it now is, its tasks run on, and `node ls` shows Manager Status as it
goes."""

from __future__ import annotations

import pytest
from cluster import Swarm, ctl, free_port, join_managers, leader, node_rows, task_pids
from helpers import alive, wait_until

pytestmark = pytest.mark.e2e


def manager_status(swarm: Swarm, via: str, name: str) -> str:
    cols = node_rows(swarm, via).get(name, [])
    if len(cols) > 5:
        return " ".join(cols[5:])
    return ""


def test_a_worker_promoted_and_the_leader_demoted(swarm: Swarm) -> None:
    swarm.init()
    # Long enough that node-2's restart as a manager (seconds on a loaded
    # machine) does not make it DOWN, which would move its tasks away.
    swarm.ctl("cluster", "update", "default", "--heartbeat-period", "4s")
    token, _ = swarm.tokens()
    port = free_port()
    # Workers listen on nothing; this one is told where to listen once it manages.
    swarm.join("node-2", token, "--listen-remote-api", f"127.0.0.1:{port}")
    wait_until(lambda: "node-2" in swarm.ready(), timeout=60, what="node-2 READY")
    swarm.sleepers("web", 4)
    wait_until(lambda: len(task_pids(swarm, "node-2")) == 2, timeout=60, what="2 tasks on node-2")
    pids = task_pids(swarm, "node-2")
    assert manager_status(swarm, "node-1", "node-2") == ""

    swarm.ctl("node", "promote", "node-2")
    wait_until(
        lambda: manager_status(swarm, "node-1", "node-2") == "REACHABLE",
        timeout=60,
        what="node-2 a reachable manager",
    )
    assert manager_status(swarm, "node-1", "node-1") == "REACHABLE *"
    assert "restarting swarmd as one" in swarm.log("node-2")
    # Its tasks ran on through the restart and were taken back (reported
    # RUNNING again once its agent registers, which may follow REACHABLE).
    wait_until(
        lambda: task_pids(swarm, "node-2") == pids, timeout=30, what="node-2's tasks taken back"
    )
    assert all(alive(p) for p in pids.values())

    # The leader is demoted: leadership moves to node-2 first.
    swarm.ctl("node", "demote", "node-1")
    wait_until(lambda: leader(swarm, "node-2") == "node-2", timeout=60, what="node-2 leads")
    wait_until(
        lambda: (
            manager_status(swarm, "node-2", "node-1") == ""
            and "node-1" in [n for n, c in node_rows(swarm, "node-2").items() if "READY" in c]
        ),
        timeout=60,
        what="node-1 a ready worker",
    )
    wait_until(
        lambda: ctl(swarm, "node-2", "service", "ls").stdout.split()[-1:] == ["4/4"],
        timeout=60,
        what="4/4 after the changes",
    )
    assert task_pids(swarm, "node-2") == pids

    # The last manager stays one.
    refused = ctl(swarm, "node-2", "node", "demote", "node-2")
    assert refused.returncode != 0
    assert "attempting to demote the last manager of the swarm" in refused.stderr


def test_a_worker_promoted_while_another_manager_leads(swarm: Swarm) -> None:
    """The worker joined through node-1 (its --join-addr, given again when it
    restarts as a manager); node-2 or node-3 leads by the time it is promoted.
    It must find the leader to become a member, as it does when node-1 leads."""
    swarm.init()
    swarm.ctl("cluster", "update", "default", "--heartbeat-period", "2s")
    worker_token, manager_token = swarm.tokens()
    ports = {"node-2": free_port(), "node-3": free_port()}
    join_managers(swarm, manager_token, ports, "node-2", "node-3")
    swarm.join("node-4", worker_token, "--listen-remote-api", f"127.0.0.1:{free_port()}")
    wait_until(lambda: "node-4" in swarm.ready(), timeout=60, what="node-4 READY")
    # Leadership moves off node-1, which comes back as a follower.
    swarm.procs["node-1"].kill()
    swarm.procs["node-1"].wait(10)
    wait_until(lambda: leader(swarm, "node-2") in ("node-2", "node-3"), timeout=60, what="a leader")
    leads = leader(swarm, "node-2")
    swarm.start("node-1", "--listen-control-api", swarm.socket, "--listen-remote-api", swarm.addr)
    wait_until(
        lambda: manager_status(swarm, leads, "node-1") == "REACHABLE",
        timeout=60,
        what="node-1 back, a follower",
    )

    ctl(swarm, leads, "node", "promote", "node-4")
    wait_until(
        lambda: manager_status(swarm, leads, "node-4") == "REACHABLE",
        timeout=60,
        what="node-4 a reachable manager",
    )
    assert "restarting swarmd as one" in swarm.log("node-4")
    # A member: its own copy of the store shows the whole swarm, and it leads not.
    wait_until(lambda: len(node_rows(swarm, "node-4")) == 4, timeout=60, what="node-4's node ls")
    assert leader(swarm, "node-4") == leads
