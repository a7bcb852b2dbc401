"""Task states in SwarmKit's order; a task only moves forward."""

from __future__ import annotations

import itertools

import pytest

from pyswarmkit.api.states import TaskState, is_forward

pytestmark = pytest.mark.unit

ORDER = [
    "NEW",
    "PENDING",
    "ASSIGNED",
    "ACCEPTED",
    "PREPARING",
    "READY",
    "STARTING",
    "RUNNING",
    "COMPLETE",
    "SHUTDOWN",
    "FAILED",
    "REJECTED",
    "REMOVE",
    "ORPHANED",
]

# SwarmKit's wire values (api/types.proto), so numbers mean the same thing on both.
SWARMKIT_VALUES = {
    "NEW": 0,
    "PENDING": 64,
    "ASSIGNED": 192,
    "ACCEPTED": 256,
    "PREPARING": 320,
    "READY": 384,
    "STARTING": 448,
    "RUNNING": 512,
    "COMPLETE": 576,
    "SHUTDOWN": 640,
    "FAILED": 704,
    "REJECTED": 768,
    "REMOVE": 800,
    "ORPHANED": 832,
}

PAIRS = list(itertools.product(TaskState, TaskState))


def test_states_are_in_swarmkit_order() -> None:
    assert [s.name for s in sorted(TaskState)] == ORDER


def test_states_carry_swarmkit_values() -> None:
    assert {s.name: int(s) for s in TaskState} == SWARMKIT_VALUES


@pytest.mark.parametrize("state", list(TaskState), ids=lambda s: s.name)
def test_terminal_means_past_running(state: TaskState) -> None:
    assert state.terminal == (ORDER.index(state.name) > ORDER.index("RUNNING"))


def test_the_terminal_states() -> None:
    assert {s.name for s in TaskState if s.terminal} == {
        "COMPLETE",
        "SHUTDOWN",
        "FAILED",
        "REJECTED",
        "REMOVE",
        "ORPHANED",
    }


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=lambda s: s.name)
def test_moves_are_allowed_only_forward(old: TaskState, new: TaskState) -> None:
    forward = ORDER.index(new.name) > ORDER.index(old.name)
    assert old.may_move_to(new) is forward
    assert is_forward(old, new) is forward


def test_staying_put_is_not_a_move() -> None:
    assert not any(s.may_move_to(s) or is_forward(s, s) for s in TaskState)
