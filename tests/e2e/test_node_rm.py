"""`swarmctl node rm` as a user meets it: one manager and a worker that joined
it, each its own swarmd process; the removed worker's swarmd exits saying why."""

from __future__ import annotations

import re

import pytest
from cluster import Swarm
from helpers import wait_until

pytestmark = pytest.mark.e2e


def test_node_rm_refuses_bad_input_and_stops_the_removed_worker(swarm: Swarm) -> None:
    swarm.start(
        "node-1",
        "--listen-control-api",
        swarm.socket,
        "--listen-remote-api",
        swarm.addr,
        "--heartbeat-period",
        "1",
        "--executor",
        "sim",
    )
    wait_until(lambda: "node-1" in swarm.rows(), timeout=60, what="node-1 listed")
    token = re.search(r"^    Worker: (\S+)$", swarm.ok("cluster", "inspect", "default"), re.M)
    assert token is not None
    worker = swarm.start(
        "node-2",
        "--join-addr",
        swarm.addr,
        "--join-token",
        token.group(1),
        "--executor",
        "sim",
        "--engine-label",
        "disk=ssd",
    )
    wait_until(
        lambda: [r[3] for r in swarm.rows().values()] == ["READY", "READY"],
        timeout=60,
        what="both nodes READY",
    )

    # node ls: SwarmKit's columns; the leader's manager status ends with " *".
    lines = swarm.ok("node", "ls").splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "ID",
        "Name",
        "Membership",
        "Status",
        "Availability",
        "Manager Status",
    ]
    rows = swarm.rows()
    assert rows["node-1"][2:] == ["ACCEPTED", "READY", "ACTIVE", "REACHABLE", "*"]
    assert rows["node-2"][2:] == ["ACCEPTED", "READY", "ACTIVE"]
    worker_id = rows["node-2"][0]

    inspect = swarm.ok("node", "inspect", "node-2")
    for line in ("Hostname            : node-2", "  State             : READY"):
        assert line in inspect.splitlines()
    for word in (
        "Certificate Expiry",
        "Operating System",
        "CPUs",
        "Engine Labels       : disk=ssd",
    ):
        assert word in inspect

    # Bad input: one line each, and nothing changes.
    bad = [
        (("node", "rm", "nope"), "swarmctl: error: node nope not found"),
        (("node", "drain", "nope"), "swarmctl: error: node nope not found"),
        (
            ("node", "rm", "node-2"),
            "swarmctl: error: node node-2 is not down and can't be removed: "
            "stop its swarmd first, or use --force",
        ),
        (
            ("node", "rm", "--force", "node-1"),
            "swarmctl: error: attempting to remove the last manager of the swarm (node node-1)",
        ),
    ]
    for args, line in bad:
        result = swarm.run(*args)
        assert result.returncode == 1, args
        assert result.stderr.strip() == line
        assert result.stdout == ""
    assert worker.poll() is None
    assert sorted(swarm.rows()) == ["node-1", "node-2"]

    # Availability across processes: the manager's store holds it, node ls shows it.
    for verb, shown in (("drain", "DRAIN"), ("pause", "PAUSE"), ("activate", "ACTIVE")):
        assert swarm.ok("node", verb, "node-2") == f"{worker_id}\n"
        assert swarm.rows()["node-2"][4] == shown

    # Named twice: removed once.
    result = swarm.run("node", "rm", "--force", "node-2", "node-2")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{worker_id}\n", "")
    assert sorted(swarm.rows()) == ["node-1"]

    # Its next heartbeat is refused as removed; its swarmd says so and exits 1.
    wait_until(lambda: worker.poll() is not None, timeout=30, what="node-2 to exit")
    assert worker.returncode == 1
    assert "swarmd: error: this node was removed from the swarm" in swarm.log("node-2")
    assert swarm.procs["node-1"].poll() is None
    result = swarm.run("node", "rm", worker_id)
    assert result.stderr.strip() == f"swarmctl: error: node {worker_id} not found"
