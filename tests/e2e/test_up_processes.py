"""`swarmd up examples/three-nodes.toml`: one `swarmd` process per node, the
workers joined to the manager, a service spread over the three, every node's
output prefixed with its name, and nothing left running once `up` has gone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import alive, children_of, node_pids, swarmctl, tool, wait_until

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "three-nodes.toml"
HOSTS = ("node-1", "node-2", "node-3")


class Up:
    """A `swarmd up` of a copy of the example in a temp dir."""

    def __init__(self, root: Path, topo: Path) -> None:
        self.root = root
        self.topo = topo
        self.out = root / "up.log"
        self.socket = str(root / "state" / "three-nodes" / "node-1" / "swarm.sock")
        with open(self.out, "wb") as log:
            self.proc = subprocess.Popen(
                [tool("swarmd"), "up", str(topo)], stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_up(self) -> None:
        wait_until(
            lambda: "Press Ctrl-C to stop." in self.log() or self.proc.poll() is not None,
            timeout=90,
            what="swarmd up",
        )
        assert self.proc.poll() is None, self.log()

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            swarmctl(self.socket, *args),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"swarmctl {' '.join(args)}: {result.stderr.strip()}"
        return result.stdout

    def ready(self) -> list[str]:
        return sorted(
            line.split()[1]
            for line in self.ctl("node", "ls").splitlines()[2:]
            if " READY " in f" {line} "
        )

    def running(self) -> dict[str, str]:
        """Running task name -> node name."""
        found = {}
        for line in self.ctl("task", "ls").splitlines()[2:]:
            cols = line.split()
            if cols and cols[1].startswith("sleeper.") and "RUNNING" in cols[4:6]:
                found[cols[1]] = cols[-1]
        return found

    def nodes(self) -> dict[str, int]:
        """Hostname -> pid of up's node processes."""
        return node_pids(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture
def topo(short_tmp: Path) -> Path:
    path = short_tmp / "three-nodes.toml"
    shutil.copy(EXAMPLE, path)
    return path


@pytest.fixture
def up(short_tmp: Path, topo: Path) -> Iterator[Up]:
    u = Up(short_tmp, topo)
    try:
        yield u
    finally:
        # Should a test fail half-way: up's nodes die with it (checked below).
        u.stop()


def sleep_tasks(node_pid: int) -> list[int]:
    return [p for p, argv in children_of(node_pid) if argv[:1] == ["sleep"]]


def test_three_processes_run_the_service_and_ctrl_c_leaves_nothing(up: Up) -> None:
    up.wait_up()
    assert f"export SWARM_SOCKET={up.socket}" in up.log()
    wait_until(lambda: up.ready() == list(HOSTS), timeout=30, what="three nodes READY")
    wait_until(lambda: len(up.running()) == 6, timeout=60, what="six tasks running")
    assert sorted(Counter(up.running().values()).values()) == [2, 2, 2]

    nodes = up.nodes()
    assert sorted(nodes) == list(HOSTS)  # one process per node, each a child of up
    for pid in nodes.values():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode()
        assert "swarmd" in argv
        assert "SWMTKN" not in argv  # the token travels in the environment
    tasks = {
        h: wait_until(lambda p=p: sleep_tasks(p), what=f"{h}'s tasks") for h, p in nodes.items()
    }
    assert sorted(len(t) for t in tasks.values()) == [2, 2, 2]
    for pid in (p for t in tasks.values() for p in t):
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert b"SWARM_JOIN_TOKEN" not in f.read()

    log = up.log()
    for host in HOSTS:
        assert f"[{host}] " in log
    assert any(
        line.startswith("[node-2] ") and "a worker of manager" in line for line in log.splitlines()
    )

    # A second up on the same file is refused in one line, and starts nothing.
    again = subprocess.run(
        [tool("swarmd"), "up", str(up.topo)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "node-1" in again.stderr
    assert up.nodes() == nodes

    # A worker's swarmd killed: up says so and keeps the swarm running.
    os.kill(nodes["node-3"], signal.SIGKILL)
    wait_until(
        lambda: "node node-3 exited with code -9; the other nodes run on" in up.log(),
        timeout=30,
        what="up reporting node-3's exit",
    )
    # Its host gone, its tasks go too: they do not run on beside their replacements.
    wait_until(
        lambda: not any(alive(p) for p in tasks["node-3"]),
        timeout=30,
        what="node-3's tasks stopped",
    )
    assert up.proc.poll() is None
    assert "node-1" in up.ready()

    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(90) == 0
    everything = [*nodes.values(), *(p for t in tasks.values() for p in t)]
    assert [p for p in everything if alive(p)] == []
    assert processes_under(up.root) == []
    assert "did not stop within" not in up.log()  # none had to be killed


def test_a_killed_up_takes_its_nodes_and_tasks_along(up: Up) -> None:
    up.wait_up()
    wait_until(lambda: len(up.running()) == 6, timeout=60, what="six tasks running")
    nodes = up.nodes()
    assert len(nodes) == 3
    tasks = [p for n in nodes.values() for p in sleep_tasks(n)]
    assert len(tasks) == 6
    up.proc.kill()
    up.proc.wait(10)
    everything = [*nodes.values(), *tasks]
    wait_until(
        lambda: not [p for p in everything if alive(p)],
        timeout=60,
        what="no node or task process left",
    )
    assert processes_under(up.root) == []


def processes_under(root: Path) -> list[int]:
    """Live processes whose command line names a path under ``root``."""
    found = []
    for pid, argv in children_of_any():
        if any(str(root) in a for a in argv) and alive(pid):
            found.append(pid)
    return found


def children_of_any() -> list[tuple[int, list[str]]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            found.append((int(entry.name), [a.decode() for a in raw.split(b"\0") if a]))
    return found


def test_a_node_that_fails_to_start_stops_the_others(short_tmp: Path, topo: Path) -> None:
    # A manager's state dir cannot join a swarm as a worker: node-2 will exit at once.
    taken = short_tmp / "state" / "three-nodes" / "node-2"
    manager = subprocess.Popen(
        [
            tool("swarmd"),
            "-d",
            str(taken),
            "--hostname",
            "m",
            "--listen-remote-api",
            "127.0.0.1:0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: (taken / "certificates" / "swarm-node.crt").exists(),
            timeout=30,
            what="a manager's state dir",
        )
    finally:
        manager.send_signal(signal.SIGTERM)
        manager.wait(30)
    result = subprocess.run(
        [tool("swarmd"), "up", str(topo)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "[node-2] swarmd: error:" in result.stdout
    assert "belongs to a manager" in result.stdout
    errors = result.stderr.strip().splitlines()
    assert errors[-1].startswith("swarmd: error: node node-2 exited with code 1"), result.stderr
    assert "Press Ctrl-C to stop." not in result.stdout
    assert processes_under(short_tmp) == []
