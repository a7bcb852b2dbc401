"""Health checks with the process executor, as a user runs them: a task with a
check is RUNNING only once it passes, and FAILED and replaced when it fails."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import wait_until

pytestmark = pytest.mark.e2e


def states(swarmd, service: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Task ID to its Last State word, for every task of the service."""
    out = swarmd.ctl("task", "ls", "--all", "--service", service).stdout.splitlines()[2:]
    return {line.split()[0]: line.split()[4] for line in out if line.split()}


def test_running_once_healthy_failed_and_replaced_when_unhealthy(  # type: ignore[no-untyped-def]
    swarmd, short_tmp: Path
) -> None:
    ok = short_tmp / "ok"
    swarmd.ctl(
        "service", "create", "--name", "web", "--command", "sleep", "--args", "1000",
        "--health-cmd", f"test -f {ok}", "--health-interval", "200ms",
        "--health-retries", "2", "--health-start-period", "1m", "--restart-delay", "1s",
    )  # fmt: skip
    refused = swarmd.ctl("service", "update", "web", "--health-interval", "500us", check=False)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "swarmctl: error: health interval must be 0 (the default) or at least 1ms"
    ]
    inspect = swarmd.ctl("service", "inspect", "web").stdout
    assert f"Command         : test -f {ok}" in inspect
    assert "Interval        : 200ms" in inspect

    wait_until(lambda: list(states(swarmd, "web").values()) == ["STARTING"], what="STARTING")
    first = next(iter(states(swarmd, "web")))
    # Failing checks within the start period: it stays STARTING, not RUNNING.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert states(swarmd, "web") == {first: "STARTING"}
        assert swarmd.replicas("web") == "0/1"
        time.sleep(0.2)

    ok.touch()
    wait_until(lambda: states(swarmd, "web") == {first: "RUNNING"}, what="RUNNING once healthy")
    assert swarmd.replicas("web") == "1/1"

    # Two failed checks in a row once it has been healthy: FAILED, and replaced.
    ok.unlink()
    wait_until(lambda: states(swarmd, "web").get(first) == "FAILED", what="FAILED when unhealthy")
    task = swarmd.ctl("task", "inspect", first).stdout
    assert "Error             : task: non-zero exit (143): unhealthy container" in task
    wait_until(lambda: len(states(swarmd, "web")) == 2, what="a replacement")
    ok.touch()
    wait_until(
        lambda: sorted(states(swarmd, "web").values()) == ["FAILED", "RUNNING"],
        what="the replacement RUNNING once healthy",
    )
