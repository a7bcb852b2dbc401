"""A manager whose Raft log's disk fills up: it stops with one line saying
so, leaving its log whole (at most one torn record, cut on the next start);
the other managers carry on; once there is room again it starts, replays its
log and catches up. Nothing acknowledged is lost.

The log's disk is a small tmpfs mounted on the manager's ``raft`` directory,
so the disk really is full (ENOSPC), as a quota or a full partition would be.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Swarm, ctl, free_port, join_managers, manager_args, services
from helpers import wait_until

from pyswarmkit.chaos import disk

pytestmark = pytest.mark.e2e

FULL_LINE = "cannot write this manager's log under"


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    why = disk.mount_small(path, "4m")
    assert not why, f"cannot mount a tmpfs (the tests run as root): {why}"
    try:
        yield path
    finally:
        disk.unmount(path)


def fill(path: Path) -> Path:
    filler = disk.fill(path)
    assert os.statvfs(path).f_bavail == 0
    return filler


def create(swarm: Swarm, via: str, name: str) -> bool:
    out = ctl(swarm, via, "service", "create", "--name", name, "--command", "x", "--replicas", "0")
    return bool(out.returncode == 0)


def write_until_stopped(swarm: Swarm, full: str) -> list[str]:
    """Create services through node-1 until ``full`` (its log's disk full)
    stops, as it must at its first write that needs a new block: the names
    acknowledged. ``full`` must exit non-zero with the one line saying why."""
    acked = []
    for i in range(400):
        name = f"s{i:03d}"
        if create(swarm, "node-1", name):
            acked.append(name)
        if swarm.procs[full].poll() is not None:
            break
    proc = swarm.procs[full]
    proc.wait(30)
    assert proc.returncode != 0
    lines = [line for line in swarm.log(full).splitlines() if FULL_LINE in line]
    assert lines and "No space left on device" in lines[-1], swarm.log(full)[-2000:]
    return acked


def test_a_manager_with_a_full_log_disk_stops_and_catches_up_later(swarm: Swarm) -> None:
    ports = {"node-1": swarm.port, "node-2": free_port(), "node-3": free_port()}
    swarm.init()
    _, token = swarm.tokens()
    with small_disk(swarm.root / "node-3" / "raft") as raft:
        join_managers(swarm, token, ports, "node-2", "node-3")
        assert create(swarm, "node-1", "before")
        wait_until(lambda: services(swarm, "node-3") == ["before"], timeout=30, what="node-3")

        filler = fill(raft)
        # Writes go on through the leader (node-1 and node-2 are a quorum).
        acked = ["before", *write_until_stopped(swarm, "node-3")]
        # A few more after it stopped: the swarm does not need it.
        for name in ("after-1", "after-2"):
            assert create(swarm, "node-1", name)
            acked.append(name)
        expected = sorted(acked)
        assert sorted(services(swarm, "node-2") or []) == expected

        filler.unlink()
        swarm.start("node-3", *manager_args(swarm, "node-3", ports["node-3"]))
        wait_until(
            lambda: sorted(services(swarm, "node-3") or []) == expected,
            timeout=60,
            what="node-3 caught up",
        )
        swarm.stop()


def test_a_lone_manager_with_a_full_log_disk_keeps_every_acknowledged_write(
    swarm: Swarm,
) -> None:
    with small_disk(swarm.root / "node-1" / "raft") as raft:
        swarm.init()
        assert create(swarm, "node-1", "before")
        filler = fill(raft)
        acked = ["before", *write_until_stopped(swarm, "node-1")]

        filler.unlink()
        swarm.start("node-1", *manager_args(swarm, "node-1", swarm.port))
        wait_until(
            lambda: sorted(services(swarm, "node-1") or []) == sorted(acked),
            timeout=60,
            what="every acknowledged service back",
        )
        swarm.stop()


def test_a_manager_that_starts_on_a_full_disk_says_where_in_one_line(swarm: Swarm) -> None:
    with small_disk(swarm.root / "node-1" / "raft") as raft:
        fill(raft)
        proc = swarm.start(
            "node-1", "--listen-control-api", swarm.socket, "--listen-remote-api", swarm.addr
        )
        assert proc.wait(60) != 0
        last = swarm.log("node-1").strip().splitlines()[-1]
        assert last.startswith("swarmd: error: swarmd could not start: cannot write "), last
        assert "No space left on device: make room on that disk" in last, last
