"""What a new user runs into first: sockets, state dirs in use, and processes
that must not outlive the node that started them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import alive, children_of, swarmctl, tool, wait_until

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "one-node.toml"


class Procs:
    """Every process a test starts, killed at the end whatever happened."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []
        self.pids: list[int] = []

    def popen(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    try:
        yield p
    finally:
        p.close()


def ctl(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(swarmctl(sock, *args), capture_output=True, text=True, timeout=60)


def replicas(sock: str, name: str) -> str:
    for line in ctl(sock, "service", "ls").stdout.splitlines():
        cols = line.split()
        if len(cols) >= 2 and cols[1] == name:
            return cols[-1]
    return ""


def descendants(pid: int) -> list[int]:
    found = []
    for child, _ in children_of(pid):
        found.append(child)
        found.extend(descendants(child))
    return found


def test_a_file_at_the_socket_path_is_refused_and_kept(short_tmp: Path) -> None:
    notes = short_tmp / "notes.txt"
    notes.write_text("precious\n")
    result = subprocess.run(
        [tool("swarmd"), "-d", str(short_tmp / "n1"), "--listen-control-api", str(notes)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "exists and is not a socket" in lines[0]
    assert notes.read_text() == "precious\n"


def test_a_second_up_is_refused_and_a_killed_up_takes_its_node_along(
    short_tmp: Path, procs: Procs
) -> None:
    topo = short_tmp / "one-node.toml"
    shutil.copy(EXAMPLE, topo)
    out = short_tmp / "up.log"
    up = procs.popen([tool("swarmd"), "up", str(topo)], out)
    wait_until(lambda: "Press Ctrl-C to stop." in out.read_text(), timeout=60, what="swarm up")
    state = short_tmp / "state" / "node-1"
    sock = str(state / "swarm.sock")
    wait_until(lambda: replicas(sock, "clock") == "2/2", what="the example service running")

    # The lock names the process a user would signal: `swarmd up` itself.
    assert (state / "lock").read_text().strip() == str(up.pid)

    other = short_tmp / "other.toml"
    other.write_text(
        '[[node]]\nhostname = "node-1"\nstate_dir = "state/node-1"\n'
        'listen_control_api = "other.sock"\n\n'
        '[[service]]\nname = "intruder"\ncommand = ["sleep", "1000"]\n'
    )
    second = subprocess.run(
        [tool("swarmd"), "up", str(other)], capture_output=True, text=True, timeout=60
    )
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"is in use by swarmd pid {up.pid}" in lines[0]
    assert "intruder" not in ctl(sock, "service", "ls").stdout
    assert not (short_tmp / "other.sock").exists()

    node_pids = [p for p, _ in children_of(up.pid)]
    tasks = [p for n in node_pids for p in descendants(n)]
    procs.pids.extend(node_pids + tasks)
    assert len(tasks) >= 2
    up.send_signal(signal.SIGKILL)
    up.wait(10)
    # The node notices its parent's death, stops its tasks and exits.
    wait_until(
        lambda: not [p for p in node_pids + tasks if alive(p)],
        timeout=60,
        what="the node and its tasks gone after up was killed",
    )


def test_a_killed_swarmd_comes_back_with_its_swarm_and_keeps_its_tasks(
    short_tmp: Path, procs: Procs
) -> None:
    """Tasks outlive a SIGKILLed swarmd; the next one on the state dir comes
    back with the whole swarm from its Raft log, takes the tasks back and
    keeps them: the same processes, nothing started twice."""
    state = short_tmp / "n1"
    sock = str(state / "swarm.sock")
    argv = [
        tool("swarmd"),
        "-d",
        str(state),
        "--listen-control-api",
        sock,
        "--listen-remote-api",
        "127.0.0.1:0",
    ]
    log = short_tmp / "swarmd.log"
    first = procs.popen(argv, log)
    wait_until(lambda: "READY" in ctl(sock, "node", "ls").stdout, what="node READY")
    assert (state / "lock").read_text().strip() == str(first.pid)
    # `sh` stays as each task's leader, with `sleep` a member of its group.
    created = ctl(
        sock,
        *("service", "create", "--name", "nested", "--command", "sh"),
        *("--args", "-c", "--args", "sleep 1000; true", "--replicas", "2"),
    )
    assert created.returncode == 0, created.stderr
    wait_until(lambda: replicas(sock, "nested") == "2/2", what="2/2")
    wait_until(lambda: len(descendants(first.pid)) >= 4, what="two sh with a sleep each")
    leaders = [p for p, _ in children_of(first.pid)]
    members = [p for lead in leaders for p in descendants(lead)]
    procs.pids.extend(leaders + members)

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # The tasks run on, leaders and members ...
    assert [p for p in leaders + members if alive(p)] == leaders + members
    # The next swarmd on the state dir finds its service and takes the
    # processes back as the tasks they are.
    second = procs.popen(argv, log)
    wait_until(
        lambda: log.read_text().count("left running by a previous run") == 2,
        what="one log line per adopted task",
    )
    wait_until(lambda: "READY" in ctl(sock, "node", "ls").stdout, what="node READY again")
    wait_until(lambda: replicas(sock, "nested") == "2/2", what="2/2 again")
    assert [p for p in leaders + members if alive(p)] == leaders + members
    assert "no longer assigned to this node" not in log.read_text()
    assert children_of(second.pid) == [], "nothing started again"
    assert second.poll() is None


def test_a_task_that_cannot_run_shows_its_error(swarmd) -> None:  # type: ignore[no-untyped-def]
    # The process executor needs a command: --image alone cannot run.
    swarmd.ctl("service", "create", "--name", "ghost", "--image", "busybox")

    def inspect() -> str:
        return str(swarmd.ctl("service", "inspect", "ghost").stdout)

    shown = wait_until(lambda: "Failing slots: 1" in inspect() and inspect(), what="the error")
    line = next(x for x in shown.splitlines() if x.strip().startswith("slot 1:"))
    assert "REJECTED" in line
    assert "no command to run" in line
    task_id = next(
        row.split()[0]
        for row in swarmd.ctl("task", "ls", "--all").stdout.splitlines()
        if "REJECTED" in row
    )
    detail = swarmd.ctl("task", "inspect", task_id).stdout
    assert "no command to run" in detail
    # It never started, so it has no exit code (not "Exit Code: 0").
    assert "Exit Code" not in detail
