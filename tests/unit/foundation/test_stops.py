"""Stop grace periods: SIGKILL falls due once, at SIGTERM time plus the grace."""

from __future__ import annotations

import pytest

from pyswarmkit.executor.stops import StopDeadlines

pytestmark = pytest.mark.unit


def test_due_once_after_the_grace() -> None:
    d = StopDeadlines()
    d.start("a", 100.0, 10.0)
    d.start("b", 100.0, 2.0)
    assert d.pop_due(101.9) == []
    assert d.pop_due(102.0) == ["b"]
    assert d.pop_due(105.0) == []
    assert "a" in d
    assert d.pop_due(110.0) == ["a"]
    assert d.pop_due(200.0) == []
    assert "a" not in d


def test_cancel_and_restart() -> None:
    d = StopDeadlines()
    d.start("a", 0.0, 5.0)
    d.cancel("a")
    assert d.pop_due(10.0) == []
    d.start("a", 10.0, 5.0)
    d.start("a", 12.0, 5.0)  # a later stop moves the deadline
    assert d.pop_due(15.0) == []
    assert d.pop_due(17.0) == ["a"]


def test_a_negative_grace_is_due_at_once() -> None:
    d = StopDeadlines()
    d.start("a", 5.0, -1.0)
    assert d.pop_due(5.0) == ["a"]


def test_cancelled_stops_do_not_pile_up() -> None:
    """100,000 tasks stopped and exited at once hold no memory for their grace."""
    d = StopDeadlines()
    for i in range(100_000):
        d.start(f"t{i}", 0.0, 10.0)
        d.cancel(f"t{i}")
    d.start("last", 0.0, 10.0)
    assert len(d._heap) <= 100
    assert d.pop_due(10.0) == ["last"]
