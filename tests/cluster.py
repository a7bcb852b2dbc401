"""A swarm of real swarmd processes on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

from helpers import alive, swarmctl, tool, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sleepers_args(name: str, replicas: int) -> tuple[str, ...]:
    """`swarmctl` arguments creating a service of long sleeps."""
    return (
        *("service", "create", "--name", name),
        *("--command", "sleep", "--args", "1000", "--replicas", str(replicas)),
    )


class Swarm:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.socket = str(root / "node-1" / "swarm.sock")
        # Extra environment per node name (e.g. a faked clock), for every start of it.
        self.envs: dict[str, dict[str, str]] = {}

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                [tool("swarmd"), "-d", str(self.root / name), "--hostname", name, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.envs[name]} if name in self.envs else None,
            )
        self.procs[name] = proc
        return proc

    def join(self, name: str, token: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(name, "--join-addr", self.addr, "--join-token", token, *args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """swarmctl as it ran: exit code, stdout and stderr."""
        return subprocess.run(
            swarmctl(self.socket, *args),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        return self.ctl(*args)

    def rows(self) -> dict[str, list[str]]:
        """`node ls` rows by node name (none while the manager is not up)."""
        result = self.run("node", "ls")
        lines = result.stdout.splitlines()[2:] if result.returncode == 0 else []
        return {line.split()[1]: line.split() for line in lines}

    def ctl(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            swarmctl(self.socket, *args),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, f"swarmctl {' '.join(args)}: {result.stderr.strip()}"
        return result.stdout

    def tokens(self) -> tuple[str, str]:
        out = self.ctl("cluster", "inspect", "default")
        worker = re.search(r"^    Worker: (\S+)$", out, re.M)
        manager = re.search(r"^    Manager: (\S+)$", out, re.M)
        assert worker and manager, out
        return worker.group(1), manager.group(1)

    def ready(self) -> list[str]:
        """Names of the nodes `node ls` shows READY."""
        return [
            line.split()[1]
            for line in self.ctl("node", "ls", check=False).splitlines()[1:]
            if " READY " in f" {line} "
        ]

    def init(self, *args: str) -> None:
        """node-1 starts the swarm: manager, control socket, remote API; READY."""
        self.start(
            "node-1", "--listen-control-api", self.socket, "--listen-remote-api", self.addr, *args
        )
        wait_until(lambda: "node-1" in self.ready(), timeout=60, what="node-1 READY")

    def join_workers(self, token: str, *names: str) -> None:
        """Workers join with ``token``; every node of the swarm READY."""
        # Counted before they start: one may be READY before `node ls` answers.
        count = len(self.ready()) + len(names)
        for name in names:
            self.join(name, token)
        wait_until(lambda: len(self.ready()) == count, timeout=60, what=f"{count} nodes READY")

    def sleepers(self, name: str, replicas: int) -> None:
        self.ctl(*sleepers_args(name, replicas))

    def worker_with_two_of_four(self) -> dict[str, int]:
        """node-2 joins (heartbeat 1s); four sleepers run, two on node-2:
        their task id -> pid there."""
        self.ctl("cluster", "update", "default", "--heartbeat-period", "1s")
        token, _ = self.tokens()
        self.join_workers(token, "node-2")
        self.sleepers("web", 4)
        wait_until(
            lambda: len(task_pids(self, "node-2")) == 2 and len(running_tasks(self)) == 4,
            timeout=30,
            what="four running, two on node-2",
        )
        return task_pids(self, "node-2")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def task_nodes(swarm: Swarm, service: str) -> dict[str, str]:
    """Running task name -> node name, from `task ls`."""
    out = swarm.ctl("task", "ls")
    found = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if cols and cols[1].startswith(f"{service}.") and "RUNNING" in cols[3:5]:
            found[cols[1]] = cols[-1]
    return found


def node_status(swarm: Swarm, name: str) -> str:
    """The Status column of `node ls` for the node ('' while it is not listed)."""
    row = swarm.rows().get(name)
    return row[3] if row and len(row) > 3 else ""


def task_pids(swarm: Swarm, name: str) -> dict[str, int]:
    """Task id -> pid of the task processes node ``name``'s executor recorded and
    that still run (records of processes that ended are left out)."""
    found = {}
    for record in (swarm.root / name / "worker" / "tasks").glob("*/pid"):
        try:
            pid = int(record.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if alive(pid):
            found[record.parent.name] = pid
    return found


def running_tasks(swarm: Swarm) -> list[tuple[str, str, str]]:
    """(task id, slot name, node) of every task whose last state `task ls`
    shows as RUNNING, whatever its desired state."""
    found = []
    for line in swarm.ctl("task", "ls").splitlines()[2:]:
        cols = line.split()
        if len(cols) > 5 and cols[4] == "RUNNING":
            found.append((cols[0], cols[1], cols[-1]))
    return found


# --- several managers ------------------------------------------------------------


def sock(swarm: Swarm, name: str) -> str:
    return str(swarm.root / name / "swarm.sock")


def ctl(swarm: Swarm, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        swarmctl(sock(swarm, name), *args),
        capture_output=True,
        text=True,
        timeout=60,
    )


def manager_args(swarm: Swarm, name: str, port: int) -> list[str]:
    return ["--listen-control-api", sock(swarm, name), "--listen-remote-api", f"127.0.0.1:{port}"]


def node_rows(swarm: Swarm, via: str) -> dict[str, list[str]]:
    out = ctl(swarm, via, "node", "ls")
    if out.returncode != 0:
        return {}
    return {line.split()[1]: line.split() for line in out.stdout.splitlines()[2:]}


def leader(swarm: Swarm, via: str) -> str:
    for name, cols in node_rows(swarm, via).items():
        if cols[-1] == "*":
            return name
    return ""


def services(swarm: Swarm, via: str) -> list[str] | None:
    """Service names as `service ls` on ``via`` shows them; None while it does not answer."""
    out = ctl(swarm, via, "service", "ls")
    if out.returncode != 0:
        return None
    return [line.split()[1] for line in out.stdout.splitlines()[2:]]


def join_managers(swarm: Swarm, token: str, ports: dict[str, int], *names: str) -> None:
    """Managers join with ``token``, each listening on its port; each REACHABLE."""
    for name in names:
        swarm.join(name, token, *manager_args(swarm, name, ports[name]))
        wait_until(
            lambda n=name: node_rows(swarm, "node-1").get(n, [""])[-1] == "REACHABLE",
            timeout=60,
            what=f"{name} a reachable manager",
        )
