"""benchmarks/raft_cluster.py with tiny numbers: the JSON has every figure, and
nothing it started outlives it (children, temporary directories), whether it
ends by itself, is told to stop, or is killed.

Slow (it starts three manager processes, and three PySyncObj ones): run with
``pytest -m slow tests/integration/test_raft_bench.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "raft_cluster.py"
TINY = ["--seconds", "1", "--clients", "4,32", "--writes", "10", "--failovers", "2"]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_of_bench(parent: int) -> list[int]:
    """Live processes the benchmark process ``parent`` started (each names it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--child" not in argv or b"--parent" not in argv:
            continue
        if argv[argv.index(b"--parent") + 1] == str(parent).encode() and alive(int(entry)):
            found.append(int(entry))
    return found


def bench(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--json", *TINY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out)
    return result


def check_side(side: dict[str, Any]) -> None:
    assert [r["clients"] for r in side["throughput"]] == [4, 32]
    for run in side["throughput"]:
        assert run["writes"] > 0 and run["writes_per_s"] > 0 and run["drained"]
        assert len(run["member_cpu_s"]) == 3
    for key in ("latency", "follower_latency"):
        assert side[key]["writes"] > 0
        assert 0 < side[key]["p50_ms"] <= side[key]["p99_ms"]
    failover = side["failover_s"]
    assert failover["runs"] == 2 and failover["failed"] == 0
    assert 0 < failover["p50"] <= failover["max"]
    # Three members, and each killed leader started again.
    assert len(side["pids"]) == 5


def test_ours_reports_every_figure_and_leaves_nothing_behind(tmp_path: Path) -> None:
    result = finish(bench(tmp_path, "--only", "ours"))
    check_side(result["ours"])
    assert "pysyncobj" not in result
    assert set(result["targets"]) == {"p99_under_10ms_met", "failover_under_2s_met"}
    assert not [pid for pid in result["ours"]["pids"] if alive(pid)]
    assert list(tmp_path.iterdir()) == []


def test_pysyncobj_is_measured_in_the_same_run(tmp_path: Path) -> None:
    pytest.importorskip("pysyncobj", reason="pysyncobj is not installed: pip install -e '.[bench]'")
    result = finish(bench(tmp_path))
    check_side(result["ours"])
    check_side(result["pysyncobj"])
    targets = result["targets"]
    assert set(targets["throughput_ratio_by_clients"]) == {"4", "32"}
    assert isinstance(targets["throughput_2x_met_best"], bool)
    pids = result["ours"]["pids"] + result["pysyncobj"]["pids"]
    assert not [pid for pid in pids if alive(pid)]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_or_killed_benchmark_takes_its_children_with_it(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc = bench(tmp_path, "--only", "ours", "--seconds", "60")
    try:
        pids = wait_until(
            lambda: len(children_of_bench(proc.pid)) == 3 and children_of_bench(proc.pid),
            timeout=60,
            what="three managers started",
        )
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        wait_until(lambda: not [p for p in pids if alive(p)], timeout=20, what="children gone")
        if sig == signal.SIGTERM:
            # Told to stop, it also removes its temporary directory.
            assert list(tmp_path.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
