"""`service create` and `service update` wait and show the service converging
(as `docker service create` does since 17.10), plain lines without a
terminal and redrawn in place with one; they end `verify: Service converged`
or non-zero with the reason; `--detach` returns at once."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest
from helpers import tool

pytestmark = pytest.mark.e2e


def test_create_shows_progress_then_converged(swarmd) -> None:  # type: ignore[no-untyped-def]
    out = swarmd.sh(
        "service create --no-detach --name web --command sleep --args 1000 --replicas 6"
    )
    lines = out.stdout.splitlines()
    assert len(lines[0]) == 25  # the service's ID first
    assert {f"{i}/6: running" for i in range(1, 7)} <= set(lines)
    assert lines[-1] == "verify: Service converged"
    assert swarmd.replicas("web") == "6/6"


def test_a_command_that_does_not_exist_ends_non_zero_with_the_task_error(swarmd) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    out = swarmd.sh("service create --no-detach --name bad --command /no/such/program", check=False)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "swarmctl: error: bad did not converge: starting '/no/such/program' failed: "
        "No such file or directory"
    ]
    assert time.monotonic() - started < 30


def test_detach_returns_the_id_at_once(swarmd) -> None:  # type: ignore[no-untyped-def]
    out = swarmd.sh("service create -d --name quick --command sleep --args 1000 --replicas 2")
    assert len(out.stdout.split()) == 1


def test_on_a_terminal_the_lines_are_redrawn_in_place(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.sh("service create -d --name web --command sleep --args 1000 --replicas 1")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [tool("swarmctl"), "-s", swarmd.socket, "service", "update", "web", "--replicas", "3"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert "overall progress: 3 out of 3 tasks" in text
    assert "[==" in text and "verify: Service converged" in text
    # Redrawn, not appended: the cursor goes back up over the block.
    assert "\x1b[1A" in text


def test_an_update_rolled_back_ends_non_zero_and_a_requested_rollback_converges(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.sh("service create -d --name web --command sleep --args 1000 --replicas 2")
    swarmd.sh("service update --no-detach web --replicas 2")  # converged first
    out = swarmd.sh(
        "service update --no-detach web --command /bin/false --update-failure-action rollback "
        "--update-monitor 2s",
        check=False,
    )
    assert out.returncode == 1
    assert "web did not converge: update rolled back" in out.stderr
    swarmd.sh("service update -d web --command sleep --args 2000")
    back = swarmd.sh("service update --no-detach web --rollback")
    assert back.stdout.splitlines()[-1] == "verify: Service converged"


def test_drain_watches_the_tasks_leave_the_node(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.sh("service create -d --name web --command sleep --args 1000 --replicas 2")
    swarmd.sh("service update --no-detach web --replicas 2")
    out = swarmd.sh("node drain --no-detach node-1")
    lines = out.stdout.splitlines()
    assert len(lines[0]) == 25  # the node's ID, as `node update` prints it
    assert lines[1] == "node-1: 2 tasks still on the node"
    assert lines[-1] == "verify: node-1 drained"
    assert swarmd.replicas("web") == "0/2"
