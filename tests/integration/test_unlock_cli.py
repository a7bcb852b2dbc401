"""`swarmctl swarm unlock` with nothing on stdin says no key was given, in one
line (where no manager answers to say whether the swarm is locked)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import tool

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("given", ["", "\n", "   \n"])
def test_an_empty_unlock_key_is_refused_in_one_line(tmp_path: Path, given: str) -> None:
    out = subprocess.run(
        [tool("swarmctl"), "-s", str(tmp_path / "none.sock"), "swarm", "unlock"],
        input=given,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "swarmctl: error: no unlock key given: type it, or pipe it on stdin"
    ], out.stderr
