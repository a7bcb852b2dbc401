"""Service and task logs of containers: the Docker executor reads them from
the engine (stdout and stderr apart, stamped by Docker), and a finished
task's log stays as long as its container."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from datetime import datetime

import pytest
from docker_helpers import DockerSwarmd
from helpers import swarmctl, wait_until

pytestmark = pytest.mark.integration

WRITER = 'i=0; while :; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.2; done'
LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) web\.1\.([0-9a-z]{12})@node-1    \| (.*)$"
)


def running(node: DockerSwarmd, name: str) -> str:
    def found() -> str:
        for line in node.ctl("task", "ls").stdout.splitlines()[2:]:
            cols = line.split()
            if cols[1] == f"{name}.1" and cols[4] == "RUNNING":
                return cols[0]
        return ""

    return wait_until(found, timeout=60, what=f"{name}.1 running")


def test_logs_of_a_container_task(dswarmd: DockerSwarmd) -> None:
    node = dswarmd
    node.ctl(
        *("service", "create", "--name", "web", "--image", "busybox:latest"),
        *("--command", "sh", "--args", "-c", "--args", WRITER),
    )
    tid = running(node, "web")
    wait_until(
        lambda: len(node.ctl("service", "logs", "web").stdout.splitlines()) >= 3,
        timeout=20,
        what="three lines",
    )
    out = node.ctl("service", "logs", "web", "--tail", "4", "--timestamps")
    lines = out.stdout.splitlines() + out.stderr.splitlines()
    assert len(lines) == 4, out
    for line in lines:
        m = LINE.match(line)
        assert m and tid.startswith(m.group(2)), line
        when = datetime.fromisoformat(m.group(1)[:26] + "+00:00").timestamp()
        assert time.time() - 120 < when <= time.time() + 1, line
    assert all("| out " in ln for ln in out.stdout.splitlines())
    assert all("| err " in ln for ln in out.stderr.splitlines())

    # --follow: new lines as the container writes them, until Ctrl-C.
    follow = subprocess.Popen(
        swarmctl(node.socket, "task", "logs", tid, "-f", "--tail", "0", "--raw"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline().strip()
        second = follow.stdout.readline().strip()
        assert first.startswith("out ") and second.startswith("out ")
        assert int(second.split()[1]) == int(first.split()[1]) + 1
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) in (0, 130)

    # A task that ended keeps its log as long as its container.
    node.ctl(
        *("service", "create", "--name", "once", "--image", "busybox:latest"),
        *("--restart-condition", "none", "--command", "sh", "--args", "-c"),
        *("--args", "echo finished; echo failing >&2; exit 3"),
    )

    def ended() -> list[str]:
        rows = [ln.split() for ln in node.ctl("task", "ls", "--all").stdout.splitlines()[2:]]
        return [c[0] for c in rows if c[1] == "once.1" and c[4] == "FAILED"]

    (done,) = wait_until(ended, timeout=60, what="the task failed")
    got = node.ctl("task", "logs", done, "--raw")
    assert (got.stdout, got.stderr) == ("finished\n", "failing\n")
