"""Every command's --help renders, reads well at 80 columns, and both tools
answer --version: a user's first look must not be a traceback."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pyswarmkit import __version__
from pyswarmkit.cli import DEFAULT_SOCKET, command, swarmctl_app, swarmd_app
from pyswarmkit.transport.control import ControlServer

pytestmark = pytest.mark.unit


def command_paths(app: typer.Typer) -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(cmd: object, prefix: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


def find(cmd: Any, path: list[str]) -> Any:
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@pytest.fixture(autouse=True)
def as_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner builds each app's command the way the installed scripts do."""
    import typer.testing

    monkeypatch.setattr(typer.testing, "_get_command", command)


CASES = [(swarmctl_app, p) for p in command_paths(swarmctl_app)] + [
    (swarmd_app, p) for p in command_paths(swarmd_app)
]


@pytest.mark.parametrize(
    ("app", "path"), CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_help_renders_at_80_columns_without_type_tags(app: typer.Typer, path: list[str]) -> None:
    cmd = command(app)
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    # No Python type names such as <str>, <bool> or <list[str]>.
    assert not re.search(r"<(str|bool|int|float|path|list\[)", result.output), result.output
    assert "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    # Every spelling of every option is shown whole.
    for param in find(cmd, path).params:
        if getattr(param, "hidden", False):
            continue  # testing-only options stay out of --help
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert re.search(rf"(^|[\s,]){re.escape(opt)}([\s,]|$)", result.output), opt


@pytest.mark.parametrize(("app", "prog"), [(swarmd_app, "swarmd"), (swarmctl_app, "swarmctl")])
def test_version(app: typer.Typer, prog: str) -> None:
    for flag in ("--version", "-v"):
        result = CliRunner().invoke(app, [flag])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"{prog} {__version__}"


def test_swarmd_defaults_are_swarmkits() -> None:
    params = {p.name: p for p in command(swarmd_app).params}
    assert str(params["state_dir"].default) == "swarmkitstate"
    assert DEFAULT_SOCKET == "./swarmkitstate/swarm.sock"


@pytest.fixture
def short_cwd(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="swk-"))
    monkeypatch.chdir(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_swarmctl_uses_the_default_socket_when_swarm_socket_is_unset(short_cwd: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(swarmctl_app, ["service", "ls"], env={"SWARM_SOCKET": None})
    assert missing.exit_code != 0
    assert "no swarmd socket at ./swarmkitstate/swarm.sock" in str(missing.exception)

    def deliver(req: Any) -> None:
        req.reply({"ok": True, "result": {"services": [], "running": {}}})

    (short_cwd / "swarmkitstate").mkdir()
    server = ControlServer(DEFAULT_SOCKET, deliver)
    server.start()
    try:
        found = runner.invoke(swarmctl_app, ["service", "ls"], env={"SWARM_SOCKET": None})
        assert found.exit_code == 0, found.exception
        assert found.output.startswith("ID")
    finally:
        server.stop()


def test_an_error_is_one_line_and_debug_adds_its_code_and_trace(tmp_path: Path) -> None:
    import subprocess
    import sys

    missing = str(tmp_path / "no.sock")
    run = [sys.executable, "-c", "from pyswarmkit.cli import swarmctl_main; swarmctl_main()"]
    plain = subprocess.run([*run, "-s", missing, "service", "ls"], capture_output=True, text=True)
    assert plain.returncode == 1
    assert plain.stderr.splitlines() == [
        f"swarmctl: error: cannot connect to swarmd at {missing}: is it running?"
    ]
    debug = subprocess.run(
        [*run, "--debug", "-s", missing, "service", "ls"], capture_output=True, text=True
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1].endswith("is it running? (code: unavailable)")
