"""Faults among three managers: a follower that falls far behind catches up
from a snapshot, a frozen leader is replaced and steps down when it wakes, and
two managers restarted at once find each other again."""

from __future__ import annotations

import signal
import time

import pytest
from cluster import (
    Swarm,
    ctl,
    free_port,
    join_managers,
    leader,
    manager_args,
    node_rows,
    services,
    sleepers_args,
)
from helpers import wait_until

pytestmark = pytest.mark.e2e

MANAGERS = ("node-1", "node-2", "node-3")


def three_managers(swarm: Swarm) -> dict[str, int]:
    ports = {"node-1": swarm.port, "node-2": free_port(), "node-3": free_port()}
    swarm.init()
    _, token = swarm.tokens()
    join_managers(swarm, token, ports, "node-2", "node-3")
    return ports


def create(swarm: Swarm, via: str, name: str) -> None:
    out = ctl(swarm, via, "service", "create", "--name", name, "--command", "x", "--replicas", "0")
    assert out.returncode == 0, out.stderr


def snap_indexes(swarm: Swarm, name: str) -> list[int]:
    snaps = (swarm.root / name / "raft" / "snap").glob("*.snap")
    return sorted(int(p.stem.split("-")[1], 16) for p in snaps)


def test_a_follower_far_behind_catches_up_from_a_snapshot(swarm: Swarm) -> None:
    ports = three_managers(swarm)
    swarm.ctl("cluster", "update", "default", "--snapshot-interval", "40")
    swarm.procs["node-3"].send_signal(signal.SIGKILL)
    swarm.procs["node-3"].wait(10)
    before = snap_indexes(swarm, "node-3")
    # Far more entries than the leader keeps behind its snapshot for slow followers.
    for i in range(120):
        create(swarm, "node-1", f"s{i:03d}")
    expected = services(swarm, "node-1")
    assert expected is not None and len(expected) == 120

    swarm.start("node-3", *manager_args(swarm, "node-3", ports["node-3"]))
    wait_until(lambda: services(swarm, "node-3") == expected, timeout=60, what="node-3 caught up")
    after = snap_indexes(swarm, "node-3")
    assert after and (not before or after[-1] > before[-1]), (before, after)


def test_a_frozen_leader_is_replaced_and_steps_down_when_it_wakes(swarm: Swarm) -> None:
    three_managers(swarm)
    create(swarm, "node-1", "before")
    old = swarm.procs["node-1"]
    old.send_signal(signal.SIGSTOP)
    try:
        wait_until(
            lambda: leader(swarm, "node-2") in ("node-2", "node-3"),
            timeout=30,
            what="a new leader",
        )
        create(swarm, "node-2", "during")
    finally:
        old.send_signal(signal.SIGCONT)
    # The old leader hears of the newer term, follows, and has every write.
    wait_until(
        lambda: leader(swarm, "node-1") in ("node-2", "node-3"),
        timeout=30,
        what="node-1 following the new leader",
    )
    wait_until(
        lambda: (
            services(swarm, "node-1") == ["before", "during"]
            or sorted(services(swarm, "node-1") or []) == ["before", "during"]
        ),
        timeout=30,
        what="node-1 caught up",
    )
    create(swarm, "node-1", "after")
    for name in MANAGERS:
        wait_until(
            lambda n=name: sorted(services(swarm, n) or []) == ["after", "before", "during"],
            timeout=30,
            what=f"{name} with all three",
        )


def test_two_managers_restarted_at_once_find_each_other(swarm: Swarm) -> None:
    ports = three_managers(swarm)
    create(swarm, "node-1", "kept")
    for name in ("node-2", "node-3"):
        swarm.procs[name].send_signal(signal.SIGTERM)
    for name in ("node-2", "node-3"):
        swarm.procs[name].wait(30)
    time.sleep(1)
    for name in ("node-2", "node-3"):
        swarm.start(name, *manager_args(swarm, name, ports[name]))
    for name in MANAGERS:
        wait_until(lambda n=name: leader(swarm, n) != "", timeout=60, what=f"{name} sees a leader")

    # `node ls` shows the leader the store recorded; a write needs node-3's Raft
    # member to have heard from the leader since its restart.
    def write_through_node_3() -> bool:
        out = ctl(swarm, "node-3", *sleepers_args("later", 0))
        # An earlier try may have committed after its answer was lost.
        return out.returncode == 0 or "already exists" in out.stderr

    wait_until(write_through_node_3, timeout=60, what="a write through node-3")
    for name in MANAGERS:
        wait_until(
            lambda n=name: sorted(services(swarm, n) or []) == ["kept", "later"],
            timeout=30,
            what=f"{name} with both",
        )


def test_an_entry_larger_than_a_frame_reaches_every_manager(swarm: Swarm) -> None:
    """A service of 100,000 replicas is created in one batch, a log entry of
    about 19 MB: over the transport's 16 MiB frame cap, so it travels to the
    followers in parts. It commits, and the manager that takes over when the
    leader dies has every task."""
    three_managers(swarm)
    out = ctl(
        swarm,
        "node-1",
        "service",
        "create",
        "--name",
        "big",
        "--command",
        "x",
        "--replicas",
        "100000",
        # Nowhere to run: only the orchestrator's one large batch is written.
        "--constraint",
        "node.labels.nowhere==true",
    )
    assert out.returncode == 0, out.stderr
    wait_until(
        lambda: "0/100000" in ctl(swarm, "node-1", "service", "ls").stdout,
        timeout=60,
        what="100,000 tasks on the leader",
    )
    create(swarm, "node-1", "after")
    swarm.procs["node-1"].send_signal(signal.SIGKILL)
    swarm.procs["node-1"].wait(10)
    wait_until(
        lambda: leader(swarm, "node-2") in ("node-2", "node-3"),
        timeout=60,
        what="a new leader",
    )
    listing = ctl(swarm, "node-2", "service", "ls").stdout
    assert "0/100000" in listing and "after" in listing, listing


def test_workers_of_a_killed_leader_register_with_the_new_one_at_once(swarm: Swarm) -> None:
    """The worker's connection to the leader drops when the leader's process
    dies: it turns to another manager then, not after three silent heartbeat
    periods (30 s here), so the new leader sees it READY within a few seconds
    of its election and schedules onto it."""
    three_managers(swarm)
    swarm.ctl("cluster", "update", "default", "--heartbeat-period", "10s")
    worker_token, _ = swarm.tokens()
    swarm.join_workers(worker_token, "node-4")
    swarm.procs["node-1"].send_signal(signal.SIGKILL)
    swarm.procs["node-1"].wait(10)
    killed = time.monotonic()
    wait_until(lambda: leader(swarm, "node-2") in ("node-2", "node-3"), timeout=30, what="a leader")
    leads = leader(swarm, "node-2")

    def worker_ready() -> bool:
        return "READY" in node_rows(swarm, leads).get("node-4", [])

    wait_until(worker_ready, timeout=30, interval=0.2, what="node-4 READY with the new leader")
    # Three silent heartbeat periods would be 30 s; an election takes 1-2 s.
    assert time.monotonic() - killed < 15.0
    assert "the connection to manager" in swarm.log("node-4")
