"""A worker restarted with a --join-addr other than its last manager's: the
manager there is found by its first answer, not taken for the one the node
reported to before (whose ID it would address, and whose messages the manager
at the new address drops as not its own). Found by the chaos harness."""

from __future__ import annotations

import signal

import pytest
from cluster import Swarm, free_port, join_managers, node_rows
from helpers import wait_until

pytestmark = pytest.mark.e2e


def test_a_worker_restarted_with_another_managers_address_registers(swarm: Swarm) -> None:
    ports = {"node-1": swarm.port, "node-2": free_port()}
    swarm.init()
    swarm.ctl("cluster", "update", "default", "--heartbeat-period", "1s")
    worker_token, manager_token = swarm.tokens()
    join_managers(swarm, manager_token, ports, "node-2")
    swarm.join_workers(worker_token, "worker-1")

    # Killed, and started again pointing at the other manager (which does not lead).
    proc = swarm.procs["worker-1"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_until(
        lambda: "DOWN" in node_rows(swarm, "node-1").get("worker-1", []),
        timeout=30,
        what="worker-1 DOWN",
    )
    swarm.start("worker-1", "--join-addr", f"127.0.0.1:{ports['node-2']}")
    wait_until(
        lambda: "READY" in node_rows(swarm, "node-1").get("worker-1", []),
        timeout=30,
        what="worker-1 READY again",
    )
    assert "not this node" not in swarm.log("node-2")
