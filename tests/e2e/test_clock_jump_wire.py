"""A node whose wall clock jumps an hour, forward and back, in real swarmd
processes over CurveZMQ: nothing goes DOWN, tasks keep running, reports still
reach the store, and certificates are still issued and renewed.

The clock is moved in the child process itself with libfaketime (LD_PRELOAD),
so every read of the wall clock is caught, C-level ones included; the
monotonic clock is left alone, as a real clock change leaves it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Swarm, node_status, running_tasks, task_pids
from helpers import alive, wait_until

pytestmark = pytest.mark.e2e

HOUR = 3600
LIBDIRS = (
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
    "/usr/local/lib/faketime",
)
# Longer than the DOWN time (3 heartbeats of 1 s), so a wrong expiry would show.
HOLD = 3.5


def libfaketime() -> str | None:
    for d in LIBDIRS:
        # The MT build locks around its state: swarmd reads the clock from many threads.
        for name in ("libfaketimeMT.so.1", "libfaketime.so.1"):
            path = Path(d) / name
            if path.exists():
                return str(path)
    return None


class FakeClock:
    """A wall-clock offset for one process, changed at run time through a file."""

    def __init__(self, lib: str, path: Path) -> None:
        self.lib = lib
        self.path = path
        self.set(0)

    def set(self, seconds: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+d}\n")
        # Whole file or none: the library reads it on every clock read.
        os.replace(tmp, self.path)

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": self.lib,
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


@pytest.fixture
def clocks(swarm: Swarm) -> Iterator[dict[str, FakeClock]]:
    lib = libfaketime()
    if lib is None:
        if os.environ.get("CI"):
            pytest.fail("libfaketime is missing: .ci/run installs it (apt-get install faketime)")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    made = {
        name: FakeClock(lib, swarm.root / f"{name}.faketime")
        for name in ("node-1", "node-2", "node-3")
    }
    for name, fake in made.items():
        swarm.envs[name] = fake.env()
    yield made


def renewals(swarm: Swarm, name: str) -> int:
    return swarm.log(name).count("certificate renewed")


def hold_steady(swarm: Swarm, pids: dict[str, int], seconds: float) -> None:
    """For ``seconds``: every node READY, every process in ``pids`` alive, the
    same tasks running (none replaced), no slot with two running tasks."""
    tasks = {t for t, _, _ in running_tasks(swarm)}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = swarm.rows()
        assert rows and all(r[3] == "READY" for r in rows.values()), rows
        assert tasks <= {t for t, _, _ in running_tasks(swarm)}, "a task was replaced"
        dead = [t for t, pid in pids.items() if not alive(pid)]
        assert not dead, f"task processes ended: {dead}"
        slots = [slot for _, slot, _ in running_tasks(swarm)]
        assert len(slots) == len(set(slots)), slots
        time.sleep(0.2)


def scale_to(swarm: Swarm, replicas: int, on: str) -> None:
    """Scale web up; the new tasks (some on node ``on``) reach RUNNING in the store."""
    before = sum(1 for _, _, node in running_tasks(swarm) if node == on)
    swarm.ctl("service", "update", "web", "--replicas", str(replicas))
    try:
        wait_until(
            lambda: (
                len(running_tasks(swarm)) == replicas
                and sum(1 for _, _, node in running_tasks(swarm) if node == on) > before
            ),
            timeout=30,
            what=f"{replicas} running, more of them on {on}",
        )
    except AssertionError:
        print(swarm.ctl("task", "ls", "-a"), swarm.log(on)[-3000:], swarm.log("node-1")[-3000:])
        raise


def test_a_worker_whose_clock_jumps_keeps_its_tasks_and_certificates(
    swarm: Swarm, clocks: dict[str, FakeClock]
) -> None:
    swarm.init()
    # The shortest validity: a forward jump of an hour passes its renewal point
    # (and its end, as this node's clock reads it).
    swarm.ctl("cluster", "update", "default", "--cert-expiry", "30m")
    pids = swarm.worker_with_two_of_four()
    token, _ = swarm.tokens()
    assert renewals(swarm, "node-2") == 0

    # Forward: the renewal point is now in the past, so the node renews at once;
    # the certificate it gets ends before this clock's "now", and is still its own.
    clocks["node-2"].set(HOUR)
    wait_until(lambda: renewals(swarm, "node-2") >= 1, timeout=15, what="a renewal on node-2")
    hold_steady(swarm, pids, HOLD)
    # Scheduled from the new certificate, not again and again.
    assert renewals(swarm, "node-2") == 1, swarm.log("node-2")
    assert "certificate renewal failed" not in swarm.log("node-2")
    scale_to(swarm, 6, "node-2")
    pids = task_pids(swarm, "node-2")

    # Back, to an hour behind the manager: still READY, still the same processes.
    clocks["node-2"].set(-HOUR)
    hold_steady(swarm, pids, HOLD)
    scale_to(swarm, 8, "node-2")
    pids = task_pids(swarm, "node-2")

    # A node an hour behind joins, and renews (the renewal scale makes that come in
    # seconds): what the CA issues starts "in the future" by its clock.
    clocks["node-3"].set(-HOUR)
    swarm.join("node-3", token, "--cert-renewal-scale", "0.003")
    wait_until(lambda: node_status(swarm, "node-3") == "READY", timeout=30, what="node-3 READY")
    wait_until(lambda: renewals(swarm, "node-3") >= 1, timeout=20, what="a renewal on node-3")
    assert "certificate renewal failed" not in swarm.log("node-3")
    # Started again, still an hour behind: what it saved is not valid yet by its clock.
    swarm.procs["node-3"].send_signal(signal.SIGTERM)
    assert swarm.procs["node-3"].wait(30) == 0
    swarm.start("node-3")
    wait_until(
        lambda: swarm.log("node-3").count("registered with dispatcher") == 2,
        timeout=30,
        what="node-3 registered again",
    )
    assert swarm.procs["node-3"].poll() is None

    # The manager's clock set back an hour: no session expires, work still lands.
    clocks["node-1"].set(-HOUR)
    hold_steady(swarm, pids, HOLD)
    scale_to(swarm, 10, "node-3")
    assert {t: p for t, p in task_pids(swarm, "node-2").items() if t in pids} == pids
