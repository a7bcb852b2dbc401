"""The supervisor's restart budget: how many restarts a group gets per window."""

from __future__ import annotations

import pytest

from pyswarmkit.supervisor import RestartBudget

pytestmark = pytest.mark.unit


def test_a_group_gets_limit_restarts_per_window() -> None:
    budget = RestartBudget(limit=3, window=60.0)
    assert [budget.allow("scheduler", t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert not budget.allow("scheduler", 3.0)
    # Another group has its own budget.
    assert budget.allow("store", 3.0)
    # A refused restart is not counted: once the first falls out of the window, one more.
    assert not budget.allow("scheduler", 59.9)
    assert budget.allow("scheduler", 60.0)
    assert not budget.allow("scheduler", 60.5)


def test_forgetting_a_group_gives_it_a_fresh_budget() -> None:
    budget = RestartBudget(limit=1, window=10.0)
    assert budget.allow("dispatcher", 0.0)
    assert not budget.allow("dispatcher", 1.0)
    budget.forget("dispatcher")  # stopped on purpose (leadership lost)
    assert budget.allow("dispatcher", 2.0)
