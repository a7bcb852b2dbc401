"""`swarmd up FILE`, the README's first command, with real processes."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import alive, children_of, tool, wait_until

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "one-node.toml"


def test_up_runs_the_example_until_ctrl_c(short_tmp: Path) -> None:
    topo = short_tmp / "one-node.toml"
    shutil.copy(EXAMPLE, topo)
    out = short_tmp / "up.log"
    with open(out, "wb") as log:
        proc = subprocess.Popen(
            [tool("swarmd"), "up", str(topo)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: "Press Ctrl-C to stop." in out.read_text(), timeout=60, what="swarm up")
        sock = next(
            line.split("=", 1)[1]
            for line in out.read_text().splitlines()
            if "export SWARM_SOCKET=" in line
        )
        assert sock == str(short_tmp / "state" / "node-1" / "swarm.sock")

        def clock_replicas() -> str:
            ls = subprocess.run(
                [tool("swarmctl"), "-s", sock, "service", "ls"], capture_output=True, text=True
            ).stdout
            return next((r.split()[-1] for r in ls.splitlines() if " clock " in r), "")

        wait_until(lambda: clock_replicas() == "2/2", what="the example service running")
        node_procs = [p for p, _ in children_of(proc.pid)]
        assert len(node_procs) == 1
        task_procs = [p for n in node_procs for p, _ in children_of(n)]
        assert len(task_procs) >= 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        # Every task was stopped before its node exited.
        assert [p for p in task_procs if alive(p)] == []
        # up waits for its node before it exits.
        assert [p for p in node_procs if alive(p)] == []

        # The swarm outlives up in its state dirs: the next up finds the service.
        with open(out, "wb") as log:
            proc = subprocess.Popen(
                [tool("swarmd"), "up", str(topo)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(lambda: "Press Ctrl-C to stop." in out.read_text(), timeout=60, what="up again")
        assert "service clock is as the file says" in out.read_text()
        wait_until(lambda: clock_replicas() == "2/2", what="the service running again")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_refuses_a_bad_file(short_tmp: Path) -> None:
    topo = short_tmp / "bad.toml"
    topo.write_text('[[node]]\nhostname = "n1"\ncolour = "red"\n')
    result = subprocess.run([tool("swarmd"), "up", str(topo)], capture_output=True, text=True)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown key 'colour'" in lines[0]
    missing = subprocess.run(
        [tool("swarmd"), "up", str(short_tmp / "none.toml")], capture_output=True, text=True
    )
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr
