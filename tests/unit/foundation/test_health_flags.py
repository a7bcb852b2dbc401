"""--health-* and --no-healthcheck on service create and update: Docker's
meaning of each flag, and one clear line for each bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    HealthConfig,
    ServiceSpec,
    TaskSpec,
    replace,
)
from pyswarmkit.cli import HealthFlags, _health_lines, swarmctl_app
from pyswarmkit.control.validate import validate_healthcheck, validate_service_spec
from pyswarmkit.transport.control import ControlServer

pytestmark = pytest.mark.unit


NO_CHECK = HealthConfig()


def spec(check: HealthConfig = NO_CHECK) -> ServiceSpec:
    container = ContainerSpec(command=("sleep", "100"), healthcheck=check)
    return ServiceSpec(annotations=Annotations(name="web"), task=TaskSpec(container=container))


def applied(before: HealthConfig = NO_CHECK, **flags: Any) -> HealthConfig:
    return HealthFlags(**flags).apply(spec(before)).task.container.healthcheck


def test_create_flags() -> None:
    check = applied(
        health_cmd="test -f /tmp/ok",
        health_interval="500ms",
        health_retries=2,
        health_start_period="1m",
        health_timeout="2s",
    )
    assert check == HealthConfig(
        test=("CMD-SHELL", "test -f /tmp/ok"),
        interval=0.5,
        timeout=2.0,
        retries=2,
        start_period=60.0,
    )
    assert applied(no_healthcheck=True) == HealthConfig(test=("NONE",))
    assert applied() == HealthConfig()


def test_update_changes_only_what_is_given() -> None:
    before = HealthConfig(test=("CMD-SHELL", "true"), interval=5.0, retries=4)
    assert applied(before, health_interval="1s") == replace(before, interval=1.0)
    assert applied(before) == before
    assert applied(before, no_healthcheck=True) == HealthConfig(test=("NONE",))
    # Tuning a disabled check turns one back on; an empty command leaves it to the image.
    assert applied(HealthConfig(test=("NONE",)), health_cmd="true").test == ("CMD-SHELL", "true")
    assert applied(HealthConfig(test=("NONE",)), health_retries=2) == HealthConfig(retries=2)
    assert applied(before, health_cmd="").test == ()


def test_inspect_lines_show_dockers_defaults() -> None:
    lines = _health_lines(HealthConfig(test=("CMD-SHELL", "test -f /tmp/ok")))
    text = "\n".join(lines)
    assert lines[0] == " Healthcheck"
    assert "Command         : test -f /tmp/ok" in text
    assert "Interval        : 30s" in text
    assert "Timeout         : 30s" in text
    assert "Retries         : 3" in text
    assert "Start Period    : 0s" in text
    assert _health_lines(HealthConfig(test=("NONE",))) == [
        " Healthcheck",
        "  Disabled        : true",
    ]
    assert _health_lines(HealthConfig()) == []


# --- bad input: one line each, refused by the CLI and again by the manager ---


def invoke(tmp_path: Path, *args: str) -> str:
    """Run swarmctl against a control socket that answers everything: the
    flags must be refused before anything is sent."""
    sent: list[Any] = []

    def deliver(req: Any) -> None:
        sent.append(req)
        req.reply({"ok": True, "result": {"id": "x"}})

    sock = str(tmp_path / "s.sock")
    server = ControlServer(sock, deliver)
    server.start()
    try:
        result = CliRunner().invoke(
            swarmctl_app,
            ["-s", sock, "service", "create", "--name", "web", "--command", "sleep", "-d", *args],
        )
    finally:
        server.stop()
    assert result.exit_code != 0
    assert sent == []
    assert isinstance(result.exception, InvalidArgument), result.output
    message = str(result.exception)
    assert "\n" not in message
    return message


def test_no_healthcheck_with_health_cmd(tmp_path: Path) -> None:
    msg = invoke(tmp_path, "--no-healthcheck", "--health-cmd", "true")
    assert msg == "--no-healthcheck conflicts with --health-* options"
    with pytest.raises(InvalidArgument, match="conflicts with --health"):
        validate_healthcheck(HealthConfig(test=("NONE",), interval=1.0))


def test_unparsable_duration(tmp_path: Path) -> None:
    msg = invoke(tmp_path, "--health-interval", "soon")
    assert msg.startswith("invalid --health-interval 'soon'")
    msg = invoke(tmp_path, "--health-timeout", "-1s")
    assert msg.startswith("invalid --health-timeout '-1s'")


def test_negative_retries(tmp_path: Path) -> None:
    assert (
        invoke(tmp_path, "--health-retries", "-1") == "--health-retries must be 0 or more, not -1"
    )
    with pytest.raises(InvalidArgument, match="health retries must not be negative"):
        validate_healthcheck(HealthConfig(test=("CMD-SHELL", "true"), retries=-1))


@pytest.mark.parametrize("name", ["interval", "timeout", "start_period"])
def test_durations_below_a_millisecond(name: str) -> None:
    label = name.replace("_", " ")
    check = HealthConfig(test=("CMD-SHELL", "true"), **{name: 0.0005})
    with pytest.raises(InvalidArgument, match=f"health {label} must be 0 .* or at least 1ms"):
        validate_service_spec(spec(check))
    check = HealthConfig(test=("CMD-SHELL", "true"), **{name: -1.0})
    with pytest.raises(InvalidArgument, match=f"health {label} must not be negative"):
        validate_service_spec(spec(check))
    validate_service_spec(spec(HealthConfig(test=("CMD-SHELL", "true"), **{name: 0.001})))


def test_manager_refuses_malformed_tests() -> None:
    for test, match in [
        (("SHELL", "true"), "must start with NONE, CMD or CMD-SHELL"),
        (("CMD-SHELL", " "), "the health command is empty"),
        (("CMD",), "the health command is empty"),
        (("CMD-SHELL", "a\0b"), "must not contain a NUL"),
    ]:
        with pytest.raises(InvalidArgument, match=match):
            validate_service_spec(spec(HealthConfig(test=test)))
