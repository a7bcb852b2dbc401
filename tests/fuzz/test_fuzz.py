"""Each surface takes a few thousand mutated and random inputs from a fixed
seed with no crash: only its documented error, or acceptance. The full run
(100,000 per surface) is ``python -m tests.fuzz --count 100000 --seed 1``, or
this module with ``-m slow`` (``FUZZ_COUNT`` and ``FUZZ_SEED`` set its size)."""

from __future__ import annotations

import logging
import os

import pytest

from tests.fuzz.runner import run

SURFACES = ("wire", "control", "raft", "topology", "compose")
COUNT = 2000
SEED = 20261130


def _check(name: str, count: int, seed: int) -> None:
    logging.disable(logging.CRITICAL)
    try:
        result = run(name, count, seed)
    finally:
        logging.disable(logging.NOTSET)
    assert result.inputs == count
    assert not result.crashes, "\n".join(c.report() for c in result.crashes[:3])
    # Inputs must reach past the first check as well as be refused by it.
    assert result.accepted > 0 and result.typed > 0


# The compose loader is pure Python (PyYAML): fewer inputs keep the run short.
COUNTS = {"compose": 300}


@pytest.mark.unit
@pytest.mark.parametrize("name", SURFACES)
def test_no_crash(name: str) -> None:
    _check(name, COUNTS.get(name, COUNT), SEED)


@pytest.mark.slow
@pytest.mark.parametrize("name", SURFACES)
def test_no_crash_full(name: str) -> None:
    _check(name, int(os.environ.get("FUZZ_COUNT", "100000")), int(os.environ.get("FUZZ_SEED", "1")))
