from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

# Lets tests import their shared helpers as `helpers`.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """An actor or transport left running by a test is a leak the node would
    have too: fail the run and name it (both run on daemon threads, so it
    cannot hang the run instead)."""
    leaked = sorted(
        t.name
        for t in threading.enumerate()
        if t.is_alive() and ("Actor-" in t.name or t.name.startswith("zmq-bus"))
    )
    if leaked and exitstatus == 0:
        print(f"\nthreads still running after the tests: {', '.join(leaked)}", file=sys.stderr)
        session.exitstatus = 1
