"""Scheduling on a one-node swarm, with real processes: constraints, reservations,
and the scheduler reacting to node changes."""

from __future__ import annotations

import pytest
from helpers import wait_until

pytestmark = pytest.mark.e2e


def test_constraints_reservations_and_node_labels(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.ctl("node", "update", "node-1", "--label-add", "zone=a")
    assert "zone" in swarmd.ctl("node", "inspect", "node-1").stdout

    swarmd.sh(
        "service create --name zoned --command sleep --args 1000 --replicas 2"
        " --constraint node.labels.zone==a"
    )
    wait_until(lambda: swarmd.replicas("zoned") == "2/2", what="zoned 2/2")

    swarmd.sh(
        "service create --name fast --command sleep --args 1000 --constraint node.labels.disk==ssd"
    )
    wait_until(
        lambda: (
            "no suitable node (scheduling constraints not satisfied on 1 node)"
            in swarmd.ctl("service", "inspect", "fast").stdout
        ),
        what="the constraint explanation",
    )
    assert swarmd.replicas("fast") == "0/1"

    swarmd.sh("service create --name huge --command sleep --args 1000 --reserve-memory 100T")
    wait_until(
        lambda: (
            "insufficient resources on 1 node" in swarmd.ctl("service", "inspect", "huge").stdout
        ),
        what="the resources explanation",
    )
    assert swarmd.replicas("huge") == "0/1"

    # The scheduler reacts to the node change by itself.
    swarmd.ctl("node", "update", "node-1", "--label-add", "disk=ssd")
    wait_until(lambda: swarmd.replicas("fast") == "1/1", what="fast 1/1 after the label")
    assert swarmd.replicas("huge") == "0/1"


def test_bad_placement_is_refused_at_create(swarmd) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (("--constraint", "node.labels.zone=a"), "constraint expected one operator from ==, !="),
        (("--constraint", "node.colour==red"), "node.colour"),
        (("--placement-pref", "pack=node.labels.zone"), "spread"),
        (("--reserve-memory", "lots"), "invalid memory 'lots'"),
        (("--reserve-cpu", "-1"), "must not be negative"),
        (("--publish", "80"), "invalid port '80'"),
    ]
    for extra, message in cases:
        result = swarmd.ctl(
            "service", "create", "--name", "bad", "--command", "sleep", *extra, check=False
        )
        assert result.returncode != 0, extra
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (extra, result.stderr)
    assert "bad" not in swarmd.ctl("service", "ls").stdout


def test_drain_and_activate(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.ctl("service", "create", "--name", "web", "--command", "sleep", "--args", "1000")
    wait_until(lambda: swarmd.replicas("web") == "1/1", what="web 1/1")
    swarmd.ctl("node", "drain", "node-1")
    assert "DRAIN" in swarmd.ctl("node", "ls").stdout
    # The only node is drained: the task stops and its replacement waits.
    wait_until(lambda: swarmd.replicas("web") == "0/1", what="web stopped by drain")
    swarmd.ctl("node", "activate", "node-1")
    wait_until(lambda: swarmd.replicas("web") == "1/1", what="web back after activate")
