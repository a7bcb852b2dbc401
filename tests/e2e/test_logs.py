"""Service and task logs across a swarm of real swarmd processes: a manager
and a worker, one task on each, brokered by the manager over CurveZMQ."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from cluster import Swarm, ctl, free_port, join_managers, sock, task_pids
from helpers import swarmctl, wait_until

pytestmark = pytest.mark.e2e

# Writes "out N" to stdout and "err N" to stderr five times a second.
WRITER = 'i=0; while :; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.2; done'
PREFIX = re.compile(r"^(\S+)\.(\d+)\.([0-9a-z]+)@(\S+?) *    \| (.*)$")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)$")


class Follower:
    """A `swarmctl ... --follow` running, its stdout and stderr lines gathered
    as they come, each with when it was read."""

    def __init__(self, swarm: Swarm, *args: str) -> None:
        self.proc = subprocess.Popen(
            swarmctl(swarm.socket, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: queue.Queue[tuple[float, str]] = queue.Queue()
        self.err: queue.Queue[tuple[float, str]] = queue.Queue()
        for pipe, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(pipe, q), daemon=True).start()

    @staticmethod
    def _pump(pipe: object, q: queue.Queue[tuple[float, str]]) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            q.put((time.monotonic(), line.rstrip("\n")))

    def take(
        self, q: queue.Queue[tuple[float, str]], timeout: float
    ) -> Iterator[tuple[float, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                yield q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return

    def first(self, q: queue.Queue[tuple[float, str]], match: str, timeout: float) -> str:
        """The first line holding ``match`` that comes within ``timeout``."""
        for _, line in self.take(q, timeout):
            if match in line:
                return line
        raise AssertionError(f"no line with {match!r} within {timeout:g} s")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def started(swarm: Swarm) -> dict[str, str]:
    """A manager and a worker (heartbeat 1 s), a service of two writers, one
    on each node: task id -> node name."""
    swarm.init()
    swarm.ctl("cluster", "update", "default", "--heartbeat-period", "1s")
    token, _ = swarm.tokens()
    swarm.join_workers(token, "node-2")
    swarm.ctl(
        *("service", "create", "--name", "web", "--replicas", "2"),
        *("--replicas-max-per-node", "1", "--command", "sh", "--args", "-c", "--args", WRITER),
    )

    def placed() -> dict[str, str]:
        rows = [ln.split() for ln in swarm.ctl("task", "ls").splitlines()[2:]]
        found = {c[0]: c[-1] for c in rows if len(c) > 5 and c[4] == "RUNNING"}
        return found if sorted(found.values()) == ["node-1", "node-2"] else {}

    return wait_until(placed, timeout=30, what="a running task on each node")


def test_logs_of_tasks_on_two_nodes(swarm: Swarm) -> None:
    tasks = started(swarm)
    by_node = {node: tid for tid, node in tasks.items()}

    # --follow: lines of both nodes' tasks as they are written, stdout and
    # stderr each to its own stream.
    follow = Follower(swarm, "service", "logs", "web", "--follow", "--tail", "1")
    try:
        seen: dict[str, list[int]] = {"node-1": [], "node-2": []}
        for _, line in follow.take(follow.out, 20):
            m = PREFIX.match(line)
            assert m, line
            service, _slot, short, node, text = m.groups()
            assert service == "web" and tasks[by_node[node]].startswith("node-")
            assert by_node[node].startswith(short) and len(short) == 12
            assert text.startswith("out ")
            seen[node].append(int(text.split()[1]))
            if all(len(v) >= 6 for v in seen.values()):
                break
        assert all(len(v) >= 6 for v in seen.values()), seen
        # New lines keep coming, in order, as each task writes them.
        for numbers in seen.values():
            assert numbers == sorted(numbers) and numbers[-1] - numbers[0] >= 5
        err = follow.first(follow.err, "| err ", 5)
        assert PREFIX.match(err), err
        # A line shows within seconds of being written: the newest line read
        # is the task's newest output (five lines a second, so at most a few behind).
        read_at, line = next(follow.take(follow.out, 5))
        assert time.monotonic() - read_at < 5
    finally:
        assert follow.stop() in (0, 130)
    # Ctrl-C closed the stream: the worker stops reading it.
    wait_until(
        lambda: (
            "log stream" in swarm.log("node-2") and "its reader went away" in swarm.log("node-2")
        ),
        timeout=10,
        what="the worker ending the stream",
    )

    # --tail N: the last N lines of each task's log (both streams, merged).
    out = swarm.run("service", "logs", "web", "--tail", "2")
    assert out.returncode == 0, out.stderr
    counted = len(out.stdout.splitlines()) + len(out.stderr.splitlines())
    assert counted == 4, (out.stdout, out.stderr)

    # task logs, --timestamps, --no-trunc: one task, each line stamped, whole IDs.
    tid = by_node["node-2"]
    out = swarm.run("task", "logs", tid, "--tail", "3", "--timestamps", "--no-trunc")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines() + out.stderr.splitlines()
    assert len(lines) == 3
    now = time.time()
    for line in lines:
        m = STAMP.match(line)
        assert m, line
        when = datetime.fromisoformat(m.group(1)[:26] + "+00:00").timestamp()
        assert now - 60 < when <= now + 1
        assert m.group(2).startswith("web.") and f".{tid}@node-2" in m.group(2)

    # --since: only what was written since then.
    everything = swarm.run("service", "logs", "web", "--raw")
    recent = swarm.run("service", "logs", "web", "--raw", "--since", "1s")
    assert everything.returncode == recent.returncode == 0
    assert 0 < len(recent.stdout.splitlines()) < len(everything.stdout.splitlines())
    assert all(PREFIX.match(ln) is None for ln in recent.stdout.splitlines())

    # Bad input: one line each, exit 1.
    for args, said in (
        (("service", "logs", "nope"), "service nope not found"),
        (("task", "logs", "zzzz"), "task zzzz not found"),
        (("service", "logs", "web", "--tail", "-3"), "invalid --tail"),
        (("service", "logs", "web", "--since", "yesterday"), "invalid --since"),
    ):
        bad = swarm.run(*args)
        assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and said in bad.stderr, bad

    # A worker that dies mid-follow: one line says its task's stream ended,
    # the other node's lines go on.
    follow = Follower(swarm, "service", "logs", "web", "-f", "--tail", "0")
    orphans = task_pids(swarm, "node-2")
    try:
        follow.first(follow.out, "@node-2", 15)
        os.kill(swarm.procs["node-2"].pid, signal.SIGKILL)
        swarm.procs["node-2"].wait(10)
        err = follow.first(follow.err, "swarmctl: error", 20)
        assert "node node-2 went down: its log stream ended" in err, err
        follow.first(follow.out, "@node-1", 5)
    finally:
        follow.stop()
        # A task outlives its killed swarmd (a restart would adopt it): end it here.
        for pid in orphans.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    assert not [ln for _, ln in follow.take(follow.err, 0.5) if "swarmctl: error" in ln]
    # Without --follow the task on the node that is down is one error line;
    # the others' logs are shown, and the exit code says something was missing.
    out = swarm.run("service", "logs", "web", "--tail", "1")
    assert out.returncode == 1
    shown = [ln for ln in (out.stdout + out.stderr).splitlines() if PREFIX.match(ln)]
    assert len(shown) == 1 and "@node-1" in shown[0], out
    down = [ln for ln in out.stderr.splitlines() if "swarmctl: error" in ln]
    assert len(down) == 1, out.stderr
    assert f".{by_node['node-2'][:12]}@node-2: node node-2 is down" in down[0], down


def test_a_manager_that_does_not_lead_forwards_to_the_leader(swarm: Swarm) -> None:
    ports = {"node-1": swarm.port, "node-2": free_port()}
    swarm.init()
    _, manager_token = swarm.tokens()
    join_managers(swarm, manager_token, ports, "node-2")
    swarm.ctl(
        *("service", "create", "--name", "web", "--replicas", "2"),
        *("--command", "sh", "--args", "-c", "--args", WRITER),
    )

    def lines(*args: str) -> int:
        got = swarm.run("service", "logs", "web", *args)
        return len(got.stdout.splitlines() + got.stderr.splitlines())

    wait_until(lambda: lines("--tail", "1") == 2, timeout=30, what="a line of each task")
    # node-2's control socket: served by the leader, node-1, through node-2.
    got = ctl(swarm, "node-2", "service", "logs", "web", "--tail", "3", "--raw")
    assert got.returncode == 0, got.stderr
    assert len(got.stdout.splitlines() + got.stderr.splitlines()) == 6
    follow = subprocess.Popen(
        swarmctl(sock(swarm, "node-2"), "service", "logs", "web", "-f", "--tail", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert follow.stdout is not None
        assert PREFIX.match(follow.stdout.readline().rstrip("\n"))
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(10)


def test_a_tasks_log_outlives_a_stop_of_swarmd(swarm: Swarm) -> None:
    """A normal stop (SIGTERM) stops the node's tasks but keeps what they
    wrote: after a restart on the same state dir, `task logs` still has it."""
    swarm.init()
    swarm.ok("service", "create", "--detach", "--name", "talk", "--command", "sh", "--args",
             "-c", "--args", "echo said-before-the-stop; exec sleep 1000")  # fmt: skip

    def tasks() -> list[str]:
        out = swarm.run("task", "ls", "-q", "--service", "talk")
        return out.stdout.split() if out.returncode == 0 else []

    (first,) = wait_until(tasks, what="the task")
    wait_until(
        lambda: "said-before-the-stop" in swarm.run("task", "logs", first).stdout,
        what="its line in its log",
    )
    proc = swarm.procs["node-1"]
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    swarm.init()
    out = swarm.run("task", "logs", first)
    assert out.returncode == 0 and "said-before-the-stop" in out.stdout, (out.stdout, out.stderr)
