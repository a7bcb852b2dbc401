"""`swarmd --listen-web` refuses what it cannot serve in one line, at start."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from helpers import tool

pytestmark = pytest.mark.e2e


def swarmd(state: Path, listen_web: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(tool("swarmd"), "-d", str(state), "--hostname", "node-1", "--executor", "sim"),
            *("--listen-remote-api", "127.0.0.1:0", "--listen-web", listen_web),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_or_a_bad_address_is_one_line_and_a_failed_start(short_tmp: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A bare port is the loopback's: the one taken above.
        result = swarmd(short_tmp / "a", str(port))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"swarmd: error: cannot serve the web view on 127.0.0.1:{port}: Address already in use"
    )

    result = swarmd(short_tmp / "b", "no-port-here")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "swarmd: error: --listen-web 'no-port-here' is not HOST:PORT or PORT, "
        "e.g. 127.0.0.1:8080 or 8080"
    )
