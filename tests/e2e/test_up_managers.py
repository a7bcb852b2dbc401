"""`swarmd up` of a file with three managers and a worker, each its own
`swarmd` process: the managers join the first one at a time, any manager's
socket serves, the swarm runs on with one manager killed and stops, in one
error line, once a second is gone."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import sleepers_args
from helpers import alive, children_of, node_pids, swarmctl, tool, wait_until

pytestmark = pytest.mark.e2e

MANAGERS = ("m1", "m2", "m3")
TOPOLOGY = "".join(
    f'[[node]]\nhostname = "{m}"\nrole = "manager"\nheartbeat_period = 1\n' for m in MANAGERS
) + (
    '[[node]]\nhostname = "w1"\nrole = "worker"\nheartbeat_period = 1\n'
    '[[service]]\nname = "sleeper"\ncommand = ["sleep", "1000"]\nreplicas = 4\n'
)


class Up:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.topo = root / "managers.toml"
        self.topo.write_text(TOPOLOGY)
        self.out = root / "up.log"
        with open(self.out, "wb") as log:
            self.proc = subprocess.Popen(
                [tool("swarmd"), "up", str(self.topo)], stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.out.read_text(errors="replace")

    def socket(self, name: str) -> str:
        return str(self.root / "state" / name / "swarm.sock")

    def run(self, via: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            swarmctl(self.socket(via), *args), capture_output=True, text=True, timeout=60
        )

    def rows(self, via: str) -> dict[str, list[str]]:
        """`node ls` rows through ``via``'s socket, by hostname."""
        result = self.run(via, "node", "ls")
        assert result.returncode == 0, result.stderr
        return {line.split()[1]: line.split() for line in result.stdout.splitlines()[2:]}

    def replicas(self, via: str, service: str) -> str:
        result = self.run(via, "service", "ls")
        for line in result.stdout.splitlines()[2:]:
            cols = line.split()
            if cols[1] == service:
                return cols[-1]
        return ""

    def nodes(self) -> dict[str, int]:
        """Hostname -> pid of up's node processes."""
        return node_pids(self.proc.pid)


@pytest.fixture
def up(short_tmp: Path) -> Iterator[Up]:
    u = Up(short_tmp)
    try:
        yield u
    finally:
        # Should the test fail half-way: up's nodes die with it.
        if u.proc.poll() is None:
            u.proc.kill()
            u.proc.wait(30)


def test_three_managers_run_on_without_one_and_stop_without_two(up: Up) -> None:
    wait_until(
        lambda: "Press Ctrl-C to stop." in up.log() or up.proc.poll() is not None,
        timeout=90,
        what="swarmd up",
    )
    assert up.proc.poll() is None, up.log()
    for m in MANAGERS:
        assert f"  {m}: {up.socket(m)}" in up.log()
    assert "3 managers: the swarm keeps working with up to 1 of them down." in up.log()

    # Every node READY, as any manager's copy of the store says.
    rows = up.rows("m3")
    assert sorted(rows) == [*MANAGERS, "w1"]
    assert all(cols[3] == "READY" for cols in rows.values()), rows
    assert all("REACHABLE" in rows[m] for m in MANAGERS), rows
    leaders = [m for m in MANAGERS if rows[m][-1] == "*"]
    assert len(leaders) == 1, rows
    assert len(rows["w1"]) == 5  # no manager status
    assert up.rows("m2").keys() == rows.keys()
    wait_until(lambda: up.replicas("m1", "sleeper") == "4/4", timeout=60, what="four tasks")

    nodes = up.nodes()
    assert sorted(nodes) == [*MANAGERS, "w1"]
    tasks = {
        name: [p for p, argv in children_of(pid) if argv[:1] == ["sleep"]]
        for name, pid in nodes.items()
    }
    assert sorted(len(t) for t in tasks.values()) == [1, 1, 1, 1]  # spread, one per node
    for name, pid in nodes.items():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode().split("\0")
        assert "SWMTKN" not in " ".join(argv)  # the tokens travel in the environment
        if name != "m1":
            assert argv[argv.index("--join-addr") + 1].startswith("127.0.0.1:")

    # A manager other than the first killed (not the leader, if one of them
    # leads, so that no election slows the write below): the swarm runs on.
    one, two = sorted(("m2", "m3"), key=lambda m: m in leaders)
    os.kill(nodes[one], signal.SIGKILL)
    wait_until(
        lambda: (
            f"node {one} exited with code -9; the other nodes run on (2 of 3 managers run)"
            in up.log()
        ),
        timeout=30,
        what=f"up reporting {one}'s exit",
    )
    wait_until(
        lambda: not any(alive(p) for p in tasks[one]), timeout=30, what=f"{one}'s tasks stopped"
    )
    assert up.proc.poll() is None
    created = up.run("m1", *sleepers_args("after", 0))
    assert created.returncode == 0, created.stderr
    wait_until(
        lambda: "after" in up.run(two, "service", "ls").stdout,
        timeout=30,
        what=f"the new service through {two}",
    )

    # A second manager gone: 1 of 3 is no majority; up stops the rest.
    os.kill(nodes[two], signal.SIGKILL)
    assert up.proc.wait(90) != 0
    last = up.log().strip().splitlines()[-1]
    assert last == (
        f"swarmd: error: node {two} exited with code -9: the swarm lost its quorum "
        "(1 of 3 managers run): stopped the other nodes"
    )
    everything = [*nodes.values(), *(p for t in tasks.values() for p in t)]
    wait_until(
        lambda: not [p for p in everything if alive(p)],
        timeout=30,
        what="no node or task left running",
    )


def test_three_managers_come_back_as_themselves_on_the_next_run(up: Up) -> None:
    def wait_up(u: Up) -> None:
        wait_until(
            lambda: "Press Ctrl-C to stop." in u.log() or u.proc.poll() is not None,
            timeout=90,
            what="swarmd up",
        )
        assert u.proc.poll() is None, u.log()

    wait_up(up)
    ids = {name: cols[0] for name, cols in up.rows("m1").items()}
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(90) == 0

    # The first manager answers only once a majority of its Raft group has a
    # leader: the members come back together, on the ports they had.
    again = Up(up.root)
    try:
        wait_up(again)
        assert "service sleeper is as the file says" in again.log()
        rows = again.rows("m2")
        assert {name: cols[0] for name, cols in rows.items()} == ids
        assert all("REACHABLE" in rows[m] for m in MANAGERS), rows
        again.proc.send_signal(signal.SIGINT)
        assert again.proc.wait(90) == 0
    finally:
        if again.proc.poll() is None:
            again.proc.kill()
            again.proc.wait(30)
