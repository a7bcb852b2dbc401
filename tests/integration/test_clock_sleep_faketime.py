"""swarmd's waits survive a wall-clock shim: under libfaketime (how the chaos
harness jumps a node's clock) ``time.sleep`` fails with EINVAL, which once kept
a node with a slow disk from starting; ``clock.sleep`` is a condition wait."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyswarmkit.chaos.runner import libfaketime

pytestmark = pytest.mark.integration


def test_clock_sleep_works_under_libfaketime(tmp_path: Path) -> None:
    lib = libfaketime()
    if not lib:
        if os.environ.get("CI"):
            pytest.fail("libfaketime is missing: .ci/run installs it (apt-get install faketime)")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    stamp = tmp_path / "faketime"
    stamp.write_text("+3600\n")
    env = {
        **os.environ,
        "LD_PRELOAD": lib,
        "FAKETIME_TIMESTAMP_FILE": str(stamp),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    code = (
        "import time\n"
        "from pyswarmkit import clock\n"
        "t = time.monotonic(); clock.sleep(0.05); assert time.monotonic() - t >= 0.05\n"
        "print('slept')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "slept", out.stderr
