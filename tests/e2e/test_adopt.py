"""A joined worker's swarmd killed with SIGKILL and started again on its state
dir: its `sleep` tasks run on throughout, the new swarmd adopts them (same
pids, no second copy, the service stays 2/2), and stops them when the service
is removed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from helpers import alive, children_of, swarmctl, tool, wait_until

pytestmark = pytest.mark.e2e

SLEEP = ["sleep", "1000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_killed_worker_adopts_its_tasks_when_started_again(short_tmp: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    sock = str(short_tmp / "node-1" / "swarm.sock")
    procs: list[subprocess.Popen[bytes]] = []
    sleeps: set[int] = set()

    def swarmd(name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(short_tmp / f"{name}.log", "ab") as out:
            argv = [tool("swarmd"), "-d", str(short_tmp / name), "--hostname", name, *args]
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    def ctl(*args: str) -> str:
        result = subprocess.run(swarmctl(sock, *args), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"swarmctl {' '.join(args)}: {result.stderr.strip()}"
        return result.stdout

    def ready() -> int:
        return ctl("node", "ls").count(" READY ")

    def replicas() -> str:
        rows = [line.split() for line in ctl("service", "ls").splitlines()]
        return next((cols[-1] for cols in rows if len(cols) > 1 and cols[1] == "naps"), "")

    def task_sleeps(parent: int) -> set[int]:
        found = {pid for pid, argv in children_of(parent) if argv == SLEEP}
        sleeps.update(found)
        return found

    try:
        swarmd("node-1", "--listen-control-api", sock, "--listen-remote-api", addr)
        wait_until(lambda: os.path.exists(sock) and ready() == 1, what="node-1 READY")
        # Every task goes to the worker.
        ctl("node", "drain", "node-1")
        token = re.search(r"^    Worker: (\S+)$", ctl("cluster", "inspect", "default"), re.M)
        assert token
        worker = swarmd("node-2", "--join-addr", addr, "--join-token", token.group(1))
        wait_until(lambda: ready() == 2, timeout=30, what="node-2 READY")
        ctl(
            *("service", "create", "--name", "naps", "--command", "sleep"),
            *("--args", "1000", "--replicas", "2"),
        )
        wait_until(lambda: replicas() == "2/2", timeout=30, what="2/2")
        first = wait_until(lambda: len(task_sleeps(worker.pid)) == 2 and task_sleeps(worker.pid))

        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert all(alive(p) for p in first), "tasks outlive their node"
        # Back well within the heartbeat grace (3 x 5 s): not DOWN, nothing rescheduled.
        again = swarmd("node-2")
        log = short_tmp / "node-2.log"
        wait_until(
            lambda: log.read_text().count("left running by a previous run") == 2,
            timeout=30,
            what="both tasks adopted",
        )
        wait_until(lambda: ready() == 2 and replicas() == "2/2", timeout=30, what="2/2 again")
        assert all(alive(p) for p in first)
        assert task_sleeps(again.pid) == set(), "no task started a second time"
        shown = ctl("task", "ls")
        assert shown.count("RUNNING") >= 2

        ctl("service", "rm", "naps")
        wait_until(lambda: not any(alive(p) for p in first), timeout=30, what="tasks stopped")
        assert again.poll() is None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for pid in sleeps:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
