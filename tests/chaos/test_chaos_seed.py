"""One short seed of the chaos harness on every run: a real swarm of six
swarmd processes with kills, freezes, partitions and message faults, whose
invariants must hold once it settles. Sweeps: `python -m pyswarmkit.chaos
--seed S --seeds N --duration D` (README "Reliability")."""

from __future__ import annotations

import io

import pytest

from pyswarmkit.chaos.plan import FAULTS, plan
from pyswarmkit.chaos.runner import run_seed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def test_a_short_seed_keeps_every_invariant() -> None:
    p = plan(4, 25.0)
    assert any(s.op in FAULTS and s.target in p.managers for s in p.steps)
    out = io.StringIO()
    problems, root = run_seed(p, out, settle=150.0, keep=False)
    assert problems == [], f"{problems}\nlogs in {root}\n{out.getvalue()}"
