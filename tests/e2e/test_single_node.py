"""The Foundation acceptance run: real swarmd and swarmctl processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
from helpers import alive, children_of, tool, wait_until

pytestmark = pytest.mark.e2e


def sleepers(pid: int) -> list[int]:
    return [p for p, argv in children_of(pid) if argv[:2] == ["sleep", "1000"]]


def holds(cond: Callable[[], bool], period: float, what: str) -> None:
    """``cond`` stays true for ``period`` seconds: the bounded check that
    something does not happen."""
    deadline = time.monotonic() + period
    while time.monotonic() < deadline:
        assert cond(), f"no longer true: {what}"
        time.sleep(0.1)


def rows(swarmd, service: str, *flags: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The `task ls` rows of one service, by column header (cells may hold spaces)."""
    header, _, *lines = swarmd.ctl("task", "ls", *flags).stdout.splitlines()
    names = ["ID", "Name", "Image", "Desired State", "Last State", "Node"]
    starts = [header.index(n) for n in names]
    ends = [*starts[1:], None]
    found = []
    for line in lines:
        row = {n: line[a:b].strip() for n, a, b in zip(names, starts, ends, strict=True)}
        if row["Name"].rpartition(".")[0] == service:
            found.append(row)
    return found


def test_replicated_service_lifecycle(swarmd) -> None:  # type: ignore[no-untyped-def]
    pid = swarmd.proc.pid
    out = swarmd.sh("service create --name sleeper --command sleep --args 1000 --replicas 3")
    service_id = out.stdout.strip()
    assert len(service_id) == 25

    wait_until(lambda: swarmd.replicas("sleeper") == "3/3", what="3/3")
    wait_until(lambda: len(sleepers(pid)) == 3, what="three sleep processes")

    inspect = swarmd.ctl("service", "inspect", "sleeper").stdout
    assert f"ID                : {service_id}" in inspect
    assert "Replicas          : 3/3" in inspect
    assert inspect.count("RUNNING") >= 6  # desired and last state of each task

    swarmd.ctl("service", "update", "sleeper", "--replicas", "6")
    wait_until(lambda: swarmd.replicas("sleeper") == "6/6", what="6/6")
    wait_until(lambda: len(sleepers(pid)) == 6, what="six sleep processes")

    victim = sleepers(pid)[0]
    os.kill(victim, signal.SIGKILL)
    # The replacement is made at once and started after the restart delay
    # (5 s, SwarmKit's default).
    wait_until(
        lambda: len(sleepers(pid)) == 6 and victim not in sleepers(pid),
        timeout=30,
        what="the killed task replaced",
    )
    wait_until(lambda: swarmd.replicas("sleeper") == "6/6", what="6/6 after restart")
    history = swarmd.ctl("task", "ls", "--all").stdout
    assert "FAILED" in history  # the killed task is kept in history

    # An ID prefix resolves like the name.
    assert "sleeper" in swarmd.ctl("service", "inspect", service_id[:8]).stdout

    swarmd.ctl("service", "rm", "sleeper")
    wait_until(lambda: not sleepers(pid), what="no sleep process left")
    wait_until(lambda: "sleeper" not in swarmd.ctl("service", "ls").stdout, what="service gone")
    wait_until(lambda: swarmd.ctl("task", "ls", "--all").stdout.count("\n") <= 2, what="tasks gone")


def test_sigterm_stops_tasks_and_exits_zero(swarmd) -> None:  # type: ignore[no-untyped-def]
    pid = swarmd.proc.pid
    swarmd.sh("service create --name sleeper --command sleep --args 1000 --replicas 2")
    wait_until(lambda: len(sleepers(pid)) == 2, what="two sleep processes")
    task_pids = sleepers(pid)
    swarmd.proc.send_signal(signal.SIGTERM)
    assert swarmd.proc.wait(30) == 0
    # Orphans would have been re-parented to init, so check each task by pid.
    assert [p for p in task_pids if alive(p)] == []
    assert not os.path.exists(swarmd.socket)


def test_missing_command_is_restarted_per_policy(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.ctl("service", "create", "--name", "ghost", "--command", "no-such-command-xyz")

    def failed_attempts() -> int:
        rows = swarmd.ctl("task", "ls", "--all").stdout.splitlines()
        return sum(1 for r in rows if "ghost" in r and "FAILED" in r)

    wait_until(lambda: failed_attempts() >= 1, what="a FAILED task")
    task_id = next(
        line.split()[0]
        for line in swarmd.ctl("task", "ls", "--all").stdout.splitlines()
        if "FAILED" in line
    )
    detail = swarmd.ctl("task", "inspect", task_id).stdout
    assert "No such file or directory" in detail
    assert "no-such-command-xyz" in detail
    # Restart condition "any", delay 5 s: the next attempt exists at once,
    # desired READY while it waits, and follows.
    wait_until(
        lambda: any(r["Desired State"] == "READY" for r in rows(swarmd, "ghost")),
        what="a restart waiting out its delay",
    )
    wait_until(lambda: failed_attempts() >= 2, timeout=30, what="a second attempt")
    assert swarmd.proc.poll() is None


def test_bad_input_gives_one_line_and_keeps_daemon(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.ctl("service", "create", "--name", "web", "--command", "sleep", "--args", "1000")
    # 37 tasks: two of them must share their first ID character (base36 has 36).
    swarmd.sh("service create --name many --command sleep --args 1000 --replicas 37")
    cases = [
        (("service", "inspect", "nope"), "service nope not found"),
        (("task", "inspect", "zzzzzzzz"), "task zzzzzzzz not found"),
        (("node", "inspect", "node-9"), "node node-9 not found"),
        (("service", "create", "--command", "sleep"), "service name is required: pass --name"),
        (
            ("service", "create", "--name", "neg", "--command", "sleep", "--replicas", "-1"),
            "replicas must be 0 or more, not -1",
        ),
        (
            ("service", "create", "--name", "web", "--command", "sleep"),
            "a service named 'web' already exists",
        ),
        (("service", "update", "web", "--replicas", "-1"), "replicas must be 0 or more, not -1"),
        (("service", "create", "--name", "x", "--bogus"), "No such option: --bogus"),
    ]
    for args, message in cases:
        result = swarmd.ctl(*args, check=False)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (args, result.stderr)
        assert message in lines[0], (args, lines[0])
        assert lines[0].startswith("swarmctl: error: ")

    rows = wait_until(
        lambda: [r for r in swarmd.ctl("task", "ls").stdout.splitlines()[2:] if "many" in r][:37],
        what="tasks listed",
    )
    ids = [r.split()[0] for r in swarmd.ctl("task", "ls").stdout.splitlines()[2:]]
    firsts = [i[0] for i in ids]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    result = swarmd.ctl("task", "inspect", shared, check=False)
    assert result.returncode != 0
    assert f"task ID prefix '{shared}' is ambiguous" in result.stderr
    assert len(rows) >= 1
    assert swarmd.proc.poll() is None
    assert "web" in swarmd.ctl("service", "ls").stdout


def test_no_daemon_or_wrong_socket(short_tmp) -> None:  # type: ignore[no-untyped-def]
    missing = str(short_tmp / "nothing.sock")
    result = subprocess.run(
        [tool("swarmctl"), "-s", missing, "service", "ls"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"swarmctl: error: cannot connect to swarmd at {missing}: is it running?"
    )
    env = {k: v for k, v in os.environ.items() if k != "SWARM_SOCKET"}
    result = subprocess.run(
        [tool("swarmctl"), "service", "ls"], capture_output=True, text=True, env=env
    )
    assert result.returncode != 0
    assert "pass -s/--socket or set SWARM_SOCKET" in result.stderr


def test_restart_policy_flags(swarmd) -> None:  # type: ignore[no-untyped-def]
    swarmd.sh(
        "service create --name flaky --command sh --args -c --args 'exit 7'"
        " --restart-condition on-failure --restart-delay 1s --restart-max-attempts 2"
        " --stop-grace-period 1s"
    )
    inspect = swarmd.ctl("service", "inspect", "flaky").stdout
    assert "Condition       : ON_FAILURE" in inspect
    assert "Max attempts    : 2" in inspect

    def failed() -> int:
        rows = swarmd.ctl("task", "ls", "--all").stdout.splitlines()
        return sum(1 for r in rows if "flaky" in r and "FAILED" in r)

    # The first run and two restarts, each failing with exit code 7.
    wait_until(lambda: failed() == 3, what="three failed attempts")
    # Then nothing: once the third failure is handled no task of the service
    # is meant to run, and none comes, well past the restart delay.
    wait_until(lambda: not rows(swarmd, "flaky"), what="the last failure handled")
    holds(
        lambda: failed() == 3 and not rows(swarmd, "flaky"),
        period=4.0,
        what="no fourth attempt",
    )
    assert len(rows(swarmd, "flaky", "--all")) == 3
    task_id = swarmd.ctl("task", "ls", "--all").stdout.splitlines()[2].split()[0]
    assert "task: non-zero exit (7)" in swarmd.ctl("task", "inspect", task_id).stdout
    bad = swarmd.ctl(
        "service",
        "create",
        "--name",
        "x",
        "--command",
        "true",
        "--restart-delay",
        "soon",
        check=False,
    )
    assert bad.returncode != 0
    assert "invalid --restart-delay 'soon'" in bad.stderr
