"""Global services and jobs with real swarmd processes and the process executor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cluster import Swarm
from helpers import wait_until

pytestmark = pytest.mark.e2e


def wanted_running(swarm: Swarm, service: str) -> list[str]:
    """Nodes of the service's tasks that are desired RUNNING and running, per `task ls`."""
    nodes = []
    for line in swarm.ctl("task", "ls", "--service", service).splitlines()[2:]:
        cols = line.split()
        # A global task is named service.node-id, as Docker names it.
        named = cols[1].rpartition(".")[0] == service if len(cols) > 1 else False
        if len(cols) > 5 and named and re.search(r" RUNNING +RUNNING ", line):
            nodes.append(cols[-1])
    return sorted(nodes)


def replicas(ls: str, name: str) -> str:
    """The Replicas cell of `service ls` (everything after the image)."""
    for line in ls.splitlines()[2:]:
        cols = line.split()
        if len(cols) > 2 and cols[1] == name:
            found = re.search(r"(\d+/\d+(?: \(\d+/\d+ completed\))?)$", line)
            return found.group(1) if found else ""
    return ""


def test_a_global_service_runs_on_every_node_and_follows_drain_and_activate(
    swarm: Swarm,
) -> None:
    swarm.init()
    token, _ = swarm.tokens()
    swarm.join_workers(token, "node-2", "node-3")
    swarm.ctl(
        *("service", "create", "--name", "agent", "--mode", "global"),
        *("--command", "sleep", "--args", "1000"),
    )
    every = ["node-1", "node-2", "node-3"]
    wait_until(
        lambda: wanted_running(swarm, "agent") == every,
        timeout=60,
        what="one agent task running on each of the three nodes",
    )
    ls = swarm.ctl("service", "ls")
    assert " global " in ls and replicas(ls, "agent") == "3/3"

    swarm.ctl("node", "drain", "node-2")
    wait_until(
        lambda: wanted_running(swarm, "agent") == ["node-1", "node-3"],
        timeout=30,
        what="node-2's task gone once it is drained",
    )
    wait_until(
        lambda: replicas(swarm.ctl("service", "ls"), "agent") == "2/2",
        timeout=30,
        what="2/2 while node-2 is drained",
    )

    swarm.ctl("node", "activate", "node-2")
    wait_until(
        lambda: wanted_running(swarm, "agent") == every,
        timeout=30,
        what="node-2 running the agent again once active",
    )


def test_a_replicated_job_runs_ten_three_at_a_time_to_completion(
    swarmd: Any, short_tmp: Path
) -> None:
    log = short_tmp / "runs.log"
    # Each run writes when it starts and ends; the most intervals overlapping is
    # how many ran at once.
    script = f'echo "s $(date +%s.%N)" >> {log}; sleep 1; echo "e $(date +%s.%N)" >> {log}'
    swarmd.ctl(
        *("service", "create", "--name", "batch", "--mode", "replicated-job"),
        *("--replicas", "10", "--max-concurrent", "3"),
        *("--command", "sh", "--args", "-c", "--args", script),
    )
    wait_until(
        lambda: replicas(swarmd.ctl("service", "ls").stdout, "batch") == "0/3 (10/10 completed)",
        timeout=90,
        interval=0.2,
        what="the job 10/10 completed",
    )
    ls = swarmd.ctl("service", "ls").stdout
    assert "replicated job" in ls
    events = []
    for line in log.read_text().splitlines():
        kind, when = line.split()
        events.append((float(when), 1 if kind == "s" else -1))
    assert sum(1 for _, d in events if d == 1) == 10
    assert sum(1 for _, d in events if d == -1) == 10
    most = at_once = 0
    # Ends sort before starts at the same instant: a run that ended is not counted.
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        at_once += delta
        most = max(most, at_once)
    assert most == 3
    # Nothing more runs once it is done.
    tasks = swarmd.ctl("task", "ls", "--all", "--service", "batch").stdout.splitlines()[2:]
    assert len(tasks) == 10
    assert all("COMPLETE" in t for t in tasks)
