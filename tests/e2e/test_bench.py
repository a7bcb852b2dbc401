"""`swarmd bench FILE` end to end: three real managers (or one) and two agent
host processes of three agents each, two services measured from the leader's
record, one JSON report, and no process left behind however the bench ends."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import alive, children_of, tool, wait_until

pytestmark = pytest.mark.e2e

AGENTS = """
[agents]
count = 6
hosts = 2
cpus = 2
memory = "2G"
labels = { zone = ["a", "b"] }
"""

TINY = (
    AGENTS
    + """
[[service]]
name = "web"
replicas = 12
placement_prefs = ["spread=node.labels.zone"]
reserve_cpu = 0.5

[[service]]
name = "db"
replicas = 3
constraints = ["node.labels.zone==a"]
reserve_memory = "256M"
"""
)

# A service no agent can take: the bench waits on it until told otherwise.
STUCK = (
    AGENTS
    + """
[[service]]
name = "nowhere"
replicas = 2
constraints = ["node.labels.zone==z"]
"""
)


def bench(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return subprocess.run(
        [tool("swarmd"), "bench", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_three_managers_every_task_running_and_every_process_stopped(tmp_path: Path) -> None:
    result = bench(tmp_path, "managers = 3\n" + TINY, "--json", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    report = json.loads(lines[0])
    setup = report["setup"]
    assert (setup["managers"], setup["agents"], setup["hosts"]) == (3, 6, 2)
    assert setup["heartbeat_period_s"] == 5.0
    assert 0 < setup["register_s"] <= setup["ready_s"] < 60
    web, db = report["services"]
    assert (web["service"], web["replicas"], web["assigned"], web["running"]) == ("web", 12, 12, 12)
    assert (db["service"], db["replicas"], db["assigned"], db["running"]) == ("db", 3, 3, 3)
    # Spread over every agent (two zones of three); the constraint keeps db in zone a.
    assert web["nodes_used"] == 6
    assert 1 <= db["nodes_used"] <= 3
    for svc in (web, db):
        assert 0 <= svc["to_all_assigned_s"] <= svc["to_all_running_s"] < 60
        assert 0 <= svc["latency_p50_ms"] <= svc["latency_p99_ms"]
        assert svc["latency_p99_ms"] <= svc["to_all_assigned_s"] * 1000 + 1
        assert svc["placements_per_s"] > 0
    # Every manager drained: the spread over zones took the six agents only.
    assert report["totals"]["tasks"] == 15
    assert web["to_all_running_s"] <= report["totals"]["to_all_running_s"] < 60
    leader = report["leader"]
    assert (leader["hostname"], leader["stayed"]) == ("bench-manager-1", True)
    assert leader["cpu_s"] > 0
    assert 10 < leader["rss_mb"] <= leader["peak_rss_mb"] < 2000
    assert set(report["managers"]) == {f"bench-manager-{i}" for i in (1, 2, 3)}
    # Two services and their tasks' states went through the leader's log.
    raft = report["raft"]
    assert raft["entries"] > 2 and raft["seconds"] > 0 and raft["entries_per_s"] > 0
    beats = report["heartbeats"]
    assert (beats["misses"], beats["miss_rate"], beats["nodes_down"]) == (0, 0.0, 0)
    pids = report["pids"]
    assert set(pids) == {"manager-1", "manager-2", "manager-3", "agents-1", "agents-2"}
    assert not [name for name, pid in pids.items() if alive(pid)]


@pytest.fixture(params=[90])
def stuck(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    """A bench waiting on a service nothing can run, its processes all up."""
    path = tmp_path / "bench.toml"
    path.write_text(STUCK)
    log = tmp_path / "bench.log"
    timeout = str(request.param)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [tool("swarmd"), "bench", str(path), "--timeout", timeout, "--log-level", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_until(
            lambda: log.read_text().count("agents joined") == 2 or proc.poll() is not None,
            timeout=60,
            what="both agent hosts joined",
        )
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def processes(proc: subprocess.Popen[str]) -> dict[str, int]:
    found = {}
    for pid, argv in children_of(proc.pid):
        if "pyswarmkit.bench.agents" in argv:
            found[f"agents-{argv[argv.index('--host') + 1]}"] = pid
        elif "--hostname" in argv:
            found["manager"] = pid  # the one manager these files start
    return found


def test_ctrl_c_stops_every_process(stuck: subprocess.Popen[str], tmp_path: Path) -> None:
    started = wait_until(lambda: len(processes(stuck)) == 3 and processes(stuck))
    stuck.send_signal(signal.SIGINT)
    assert stuck.wait(60) == 130
    assert "swarmd: bench interrupted" in (tmp_path / "bench.log").read_text()
    assert not [name for name, pid in started.items() if alive(pid)]


def test_an_agent_host_that_dies_stops_the_bench(
    stuck: subprocess.Popen[str], tmp_path: Path
) -> None:
    started = wait_until(lambda: len(processes(stuck)) == 3 and processes(stuck))
    subprocess.run(["kill", "-9", str(started["agents-2"])], check=True)
    assert stuck.wait(60) == 1
    log = (tmp_path / "bench.log").read_text()
    assert "swarmd: error: agents-2 exited with code -9: stopped the bench" in log
    assert not [name for name, pid in started.items() if alive(pid)]


@pytest.mark.parametrize("stuck", [6], indirect=True)
def test_a_service_that_never_runs_times_out_and_stops_every_process(
    stuck: subprocess.Popen[str], tmp_path: Path
) -> None:
    started = wait_until(lambda: len(processes(stuck)) == 3 and processes(stuck))
    assert stuck.wait(60) == 1
    log = (tmp_path / "bench.log").read_text()
    assert "swarmd: error: service nowhere: 0 of 2 tasks running after 6 s" in log
    assert not [name for name, pid in started.items() if alive(pid)]


def test_bad_input_is_one_line_exit_2_and_starts_nothing(tmp_path: Path) -> None:
    result = bench(tmp_path, AGENTS + '[[service]]\nname = "w"\nreplicas = -2\n')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"swarmd: error: {tmp_path / 'bench.toml'}: service 1: replicas must be 0 or more, not -2"
    ]
    assert result.stdout == ""
    missing = subprocess.run(
        [tool("swarmd"), "bench", str(tmp_path / "nope.toml")], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        == f"swarmd: error: bench file {tmp_path / 'nope.toml'} does not exist"
    )
