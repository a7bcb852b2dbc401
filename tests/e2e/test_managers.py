"""Three managers replicate the swarm over Raft: writes through any of them,
the leader killed mid-stream, the killed manager back and caught up, and
every process of the swarm restarted with nothing lost."""

from __future__ import annotations

import json
import signal
import threading
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


def test_three_managers_survive_the_leader_and_a_full_restart(swarm: Swarm) -> None:
    ports = {"node-1": swarm.port, "node-2": free_port(), "node-3": free_port()}
    swarm.init()
    swarm.ctl("cluster", "update", "default", "--heartbeat-period", "1s")
    worker_token, manager_token = swarm.tokens()
    join_managers(swarm, manager_token, ports, "node-2", "node-3")
    swarm.join_workers(worker_token, "worker-1", "worker-2")
    assert leader(swarm, "node-1") == "node-1"

    # A client creates services one after another, round-robin over the
    # three control sockets, and notes which creates said they succeeded.
    ok: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set() and i < 400:
            name = f"s{i:03d}"
            via = MANAGERS[i % 3]
            result = ctl(swarm, via, *sleepers_args(name, 0))
            (ok if result.returncode == 0 else failed).append(name)
            i += 1

    client = threading.Thread(target=stream)
    client.start()
    wait_until(lambda: len(ok) >= 20, timeout=60, what="20 creates")
    killed_at = time.monotonic()
    swarm.procs["node-1"].send_signal(signal.SIGKILL)
    swarm.procs["node-1"].wait(10)
    wait_until(
        lambda: leader(swarm, "node-2") in ("node-2", "node-3"), timeout=30, what="a new leader"
    )
    new_leader_after = time.monotonic() - killed_at
    count = len(ok)
    wait_until(lambda: len(ok) >= count + 20, timeout=60, what="creates going on")
    stop.set()
    client.join(60)
    print(f"\nnew leader after {new_leader_after:.1f}s; {len(ok)} creates ok, {len(failed)} failed")

    survivor = leader(swarm, "node-2")
    # Scripts read the same from `node ls --format json`: the leader says so.
    nodes = json.loads(ctl(swarm, survivor, "node", "ls", "--format", "json").stdout)
    status = {
        n["description"]["hostname"]: n["manager_status"]
        for n in nodes
        if n["manager_status"] is not None
    }
    assert sorted(status) == list(MANAGERS)
    assert [h for h, st in status.items() if st["leader"]] == [survivor]
    assert status["node-1"]["reachability"] == "unreachable"
    assert {n["role"] for n in nodes} == {"manager", "worker"}
    listed = services(swarm, survivor)
    assert listed is not None
    assert len(listed) == len(set(listed)), "a service exists twice"
    assert set(ok) <= set(listed), f"acknowledged but missing: {sorted(set(ok) - set(listed))}"
    assert set(listed) <= set(ok) | set(failed)

    # The killed manager comes back, catches up, and is reachable again.
    swarm.start("node-1", *manager_args(swarm, "node-1", ports["node-1"]))
    wait_until(
        lambda: node_rows(swarm, survivor).get("node-1", [""])[-1] == "REACHABLE",
        timeout=60,
        what="node-1 reachable again",
    )
    wait_until(lambda: services(swarm, "node-1") == listed, timeout=60, what="node-1 caught up")

    # Everything stops; everything starts again; nothing is lost.
    swarm.stop()
    for name in MANAGERS:
        swarm.start(name, *manager_args(swarm, name, ports[name]))
    for name in ("worker-1", "worker-2"):
        swarm.start(name)
    wait_until(lambda: leader(swarm, "node-2") != "", timeout=60, what="a leader after restart")
    for name in MANAGERS:
        wait_until(
            lambda n=name: services(swarm, n) == listed,
            timeout=60,
            what=f"{name} with every service",
        )
    wait_until(
        lambda: (
            sorted(n for n, cols in node_rows(swarm, "node-2").items() if "READY" in cols)
            == sorted([*MANAGERS, "worker-1", "worker-2"])
        ),
        timeout=90,
        what="all five READY",
    )


def test_a_lost_majority_fails_writes_fast_and_force_new_cluster_recovers(swarm: Swarm) -> None:
    ports = {"node-1": swarm.port, "node-2": free_port(), "node-3": free_port()}
    swarm.init()
    _, manager_token = swarm.tokens()
    join_managers(swarm, manager_token, ports, "node-2", "node-3")
    swarm.sleepers("kept", 2)
    wait_until(lambda: services(swarm, "node-3") == ["kept"], timeout=30, what="replicated")

    for name in ("node-1", "node-2"):
        swarm.procs[name].send_signal(signal.SIGKILL)
        swarm.procs[name].wait(10)
    # No majority: a write fails at once and says why; reads still answer.
    time.sleep(2)
    started = time.monotonic()
    refused = ctl(swarm, "node-3", "service", "create", "--name", "lost", "--command", "x")
    assert refused.returncode != 0
    assert "the swarm has no leader" in refused.stderr
    assert time.monotonic() - started < 10, "a write without a leader must not hang"
    assert "--force-new-cluster" in refused.stderr
    assert services(swarm, "node-3") == ["kept"]
    # The survivor shows the managers it no longer hears as such, though no
    # leader is left to write it: how many are left decides what to do.
    wait_until(
        lambda: [node_rows(swarm, "node-3")[n][-1] for n in ("node-1", "node-2", "node-3")]
        == ["UNREACHABLE", "UNREACHABLE", "REACHABLE"],
        timeout=15,
        what="node-3's own view of the lost managers",
    )

    # The survivor starts a new cluster with everything it had.
    swarm.procs["node-3"].send_signal(signal.SIGTERM)
    swarm.procs["node-3"].wait(30)
    swarm.start("node-3", *manager_args(swarm, "node-3", ports["node-3"]), "--force-new-cluster")
    wait_until(lambda: leader(swarm, "node-3") == "node-3", timeout=60, what="node-3 leads")
    assert services(swarm, "node-3") == ["kept"]
    wait_until(
        lambda: (
            [node_rows(swarm, "node-3")[n][-1] for n in ("node-1", "node-2")]
            == ["UNREACHABLE", "UNREACHABLE"]
        ),
        timeout=15,
        what="the lost managers unreachable",
    )
    assert (
        ctl(swarm, "node-3", "service", "create", "--name", "new", "--command", "x").returncode == 0
    )
    assert list((swarm.root / "node-3").glob("raft.before-force-new-cluster-*")), "old log kept"

    # Others can join again: a new manager becomes a reachable member.
    port = free_port()
    out = ctl(swarm, "node-3", "cluster", "inspect", "default").stdout
    token = next(line.split()[1] for line in out.splitlines() if "Manager:" in line)
    swarm.start(
        "node-4",
        *("--join-addr", f"127.0.0.1:{ports['node-3']}", "--join-token", token),
        *manager_args(swarm, "node-4", port),
    )
    wait_until(
        lambda: node_rows(swarm, "node-3").get("node-4", [""])[-1] == "REACHABLE",
        timeout=60,
        what="node-4 a reachable manager",
    )
    wait_until(
        lambda: sorted(services(swarm, "node-4") or []) == ["kept", "new"],
        timeout=30,
        what="node-4 caught up",
    )
