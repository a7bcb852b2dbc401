"""Rolling updates and rollback with a real swarmd and the process executor."""

from __future__ import annotations

import time

import pytest
from helpers import wait_until

from pyswarmkit.api.objects import Service, Task
from pyswarmkit.api.states import TaskState
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.e2e


def call(swarmd, method: str, body: dict) -> dict:  # type: ignore[no-untyped-def, type-arg]
    client = ControlClient(swarmd.socket)
    try:
        return client.call(method, body)
    finally:
        client.close()


def service(swarmd, name: str) -> Service:  # type: ignore[no-untyped-def]
    found: Service = call(swarmd, "service.inspect", {"ref": name})["service"]
    return found


def tasks(swarmd, name: str) -> list[Task]:  # type: ignore[no-untyped-def]
    return list(call(swarmd, "task.list", {"service": name, "all": True})["tasks"])


def update_state(swarmd, name: str) -> str:  # type: ignore[no-untyped-def]
    for line in swarmd.ctl("service", "inspect", name).stdout.splitlines():
        if line.startswith(" State"):
            return line.split(":", 1)[1].strip().lower()
    return ""


def test_two_at_a_time_ten_seconds_apart(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.sh(
        "service create --name web --command sleep --args 1000 --replicas 6"
        " --update-parallelism 2 --update-delay 10s"
    )
    wait_until(lambda: swarmd.replicas("web") == "6/6", what="6/6")
    started = time.time()
    swarmd.sh("service update web --args 1001")  # the settings given at create are reused
    wait_until(lambda: update_state(swarmd, "web") == "completed", timeout=60, what="completed")
    status = service(swarmd, "web").update_status
    assert status is not None and status.message == "update completed"
    new = sorted(
        (t for t in tasks(swarmd, "web") if t.spec.container.args == ("1001",)),
        key=lambda t: t.meta.created_at,
    )
    assert len(new) == 6 and sorted(t.slot for t in new) == [1, 2, 3, 4, 5, 6]
    made = [t.meta.created_at for t in new]
    # Two at a time: each pair made together, the next pair 10 s after the
    # previous one ran.
    for i in (0, 2, 4):
        assert made[i + 1] - made[i] < 3, made
    for i in (2, 4):
        assert 10 <= made[i] - made[i - 1] < 16, made
    assert all(t.status.state == TaskState.RUNNING for t in new)
    whole = max(t.status.timestamp for t in new) - made[0]
    assert 20 <= whole < 40, made
    assert 20 <= status.completed_at - started < 40
    assert swarmd.replicas("web") == "6/6"


def test_a_failing_update_rolls_back(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.sh("service create --name web --command sleep --args 1000 --replicas 3")
    wait_until(lambda: swarmd.replicas("web") == "3/3", what="3/3")
    old = service(swarmd, "web").spec.task
    swarmd.sh("service update web --command false --update-failure-action rollback")
    wait_until(
        lambda: update_state(swarmd, "web") == "rollback_completed",
        timeout=60,
        what="rollback_completed",
    )
    svc = service(swarmd, "web")
    assert svc.spec.task == old
    live = [t for t in tasks(swarmd, "web") if t.desired_state == TaskState.RUNNING]
    assert len(live) == 3 and all(t.spec == old for t in live)
    wait_until(lambda: swarmd.replicas("web") == "3/3", what="3/3 on the old spec")
    inspect = swarmd.ctl("service", "inspect", "web").stdout
    assert "Message          : rollback completed" in inspect
    assert "On failure       : rollback" in inspect


def test_bad_update_settings_are_refused_in_one_line(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.sh("service create --name web --command sleep --args 1000")
    for line, message in (
        (
            "service update web --update-failure-action explode",
            "--update-failure-action must be one of pause|continue|rollback, not 'explode'",
        ),
        ("service update web --update-order sideways", "--update-order must be one of"),
        ("service update web --rollback-failure-action rollback", "pause|continue"),
        ("service update web --update-delay soon", "invalid --update-delay 'soon'"),
        ("service update web --rollback", "has no previous spec to roll back to"),
        ("service update web --rollback --replicas 2", "may not be combined with --rollback"),
    ):
        result = swarmd.sh(line, check=False)
        assert result.returncode != 0, line
        assert message in result.stderr, (line, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_force_replaces_the_tasks_of_an_unchanged_service(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.sh("service create --name web --command sleep --args 1000 --replicas 2")
    wait_until(lambda: swarmd.replicas("web") == "2/2", what="2/2")
    before = {t.id for t in tasks(swarmd, "web")}
    swarmd.sh("service update web --force --update-parallelism 0")

    def replaced() -> bool:
        up = [
            t
            for t in tasks(swarmd, "web")
            if t.desired_state == TaskState.RUNNING and t.status.state == TaskState.RUNNING
        ]
        return len(up) == 2 and not before & {t.id for t in up}

    wait_until(replaced, timeout=30, what="both tasks replaced")


def test_on_failure_with_three_attempts_stops_after_the_third_restart(swarmd) -> None:  # type: ignore[no-untyped-def]
    # SwarmKit's and Docker's meaning: max attempts counts restarts, so the
    # first run and three restarts fail, and nothing runs after that.
    swarmd.sh(
        "service create --name flaky --command false --restart-condition on-failure"
        " --restart-max-attempts 3 --restart-delay 0s"
    )

    def failed() -> int:
        return sum(1 for t in tasks(swarmd, "flaky") if t.status.state == TaskState.FAILED)

    def settled() -> bool:
        live = [t for t in tasks(swarmd, "flaky") if t.desired_state == TaskState.RUNNING]
        return failed() == 4 and not live

    wait_until(settled, timeout=30, what="four failed tasks and none to run")
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # and no fifth attempt comes
        assert settled()
        time.sleep(0.2)
