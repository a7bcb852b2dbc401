"""Every command's --help renders: a user's first look must not be a traceback."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from pyswarmkit.cli import swarmctl_app, swarmd_app

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


@pytest.mark.parametrize(
    ("app", "path"),
    [(swarmctl_app, p) for p in command_paths(swarmctl_app)]
    + [(swarmd_app, p) for p in command_paths(swarmd_app)],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_help_renders(app: typer.Typer, path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
