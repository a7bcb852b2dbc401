"""State enums carry SwarmKit's numbers, and the cores' ordering rules hold on them.

Every core compares states by number (``state < ASSIGNED``, ``state > RUNNING``)
and the codec stores them as integers, so a renumbered state would silently
change what a stored task means. Backward moves being ignored is the
dispatcher's behaviour and is tested there.
"""

from __future__ import annotations

import pytest

from pyswarmkit.api.states import (
    Membership,
    NodeAvailability,
    NodeRole,
    NodeState,
    Reachability,
    RestartCondition,
    TaskState,
)

pytestmark = pytest.mark.unit

# SwarmKit's values (api/types.proto), so numbers mean the same thing on both.
SWARMKIT_TASK_STATES = {
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


def test_task_states_carry_swarmkit_values() -> None:
    assert {s.name: int(s) for s in TaskState} == SWARMKIT_TASK_STATES


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (NodeState, {"UNKNOWN": 0, "DOWN": 1, "READY": 2, "DISCONNECTED": 3}),
        (NodeAvailability, {"ACTIVE": 0, "PAUSE": 1, "DRAIN": 2}),
        (NodeRole, {"WORKER": 0, "MANAGER": 1}),
        (Membership, {"PENDING": 0, "ACCEPTED": 1}),
        (Reachability, {"UNKNOWN": 0, "UNREACHABLE": 1, "REACHABLE": 2}),
        (RestartCondition, {"NONE": 0, "ON_FAILURE": 1, "ANY": 2}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_other_enums_carry_swarmkit_values(enum: type, values: dict[str, int]) -> None:
    assert {m.name: int(m) for m in enum} == values  # type: ignore[attr-defined]


def test_terminal_states_are_the_ones_a_task_never_runs_again_from() -> None:
    # `task inspect` shows an exit code only for these; the orchestrator
    # restarts or replaces a live task once it reaches one; the agent stops
    # reporting a task after one.
    assert {s.name for s in TaskState if s.terminal} == {
        "COMPLETE",
        "SHUTDOWN",
        "FAILED",
        "REJECTED",
        "REMOVE",
        "ORPHANED",
    }
    assert not TaskState.RUNNING.terminal
