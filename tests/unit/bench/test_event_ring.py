"""The event ring behind ``events.since``: bounded, ordered, honest about what it lost."""

from __future__ import annotations

import pytest

from pyswarmkit.api.errors import FailedPrecondition
from pyswarmkit.api.objects import Service, Task, TaskStatus
from pyswarmkit.api.states import TaskState
from pyswarmkit.control.events import FIELDS, EventRing
from pyswarmkit.store.memory import Event, EventBatch

pytestmark = pytest.mark.unit


def task_batch(index: int, *ids: str, state: TaskState = TaskState.PENDING) -> EventBatch:
    events = tuple(
        Event("create", "task", Task(id=i, service_id="s1", status=TaskStatus(state=state)), None)
        for i in ids
    )
    return EventBatch(index, events)


def reading() -> EventRing:
    """A ring a reader has started on (it keeps batches from then on)."""
    ring = EventRing()
    ring.since(None)
    return ring


def test_nothing_is_kept_until_someone_reads() -> None:
    ring = EventRing()
    ring.record(task_batch(3, "t1"), 1.0)
    assert len(ring) == 0
    with pytest.raises(FailedPrecondition, match="have left the event ring"):
        ring.since(0)
    assert ring.since(None).next == 3
    ring.record(task_batch(4, "t2"), 2.0)
    assert [r[4] for r in ring.since(3).rows] == ["t2"]


def test_rows_carry_index_time_and_task_fields() -> None:
    ring = reading()
    ring.record(task_batch(3, "t1", state=TaskState.ASSIGNED), 100.5)
    ring.record(EventBatch(4, (Event("create", "service", Service(id="s1"), None),)), 101.0)
    page = ring.since(0)
    got = [dict(zip(FIELDS, r, strict=True)) for r in page.rows]
    assert got[0] == {
        "index": 3,
        "time": 100.5,
        "op": "create",
        "kind": "task",
        "id": "t1",
        "state": "ASSIGNED",
        "desired_state": "RUNNING",
        "node_id": "",
        "service_id": "s1",
    }
    assert got[1]["kind"] == "service" and got[1]["state"] == ""
    assert page.next == 4


def test_since_returns_only_what_came_after_and_filters_kinds() -> None:
    ring = reading()
    for i in range(1, 6):
        ring.record(task_batch(i, f"t{i}"), float(i))
    ring.record(EventBatch(6, (Event("create", "service", Service(id="s"), None),)), 6.0)
    assert [r[4] for r in ring.since(3).rows] == ["t4", "t5", "s"]
    assert [r[4] for r in ring.since(3, frozenset({"service"})).rows] == ["s"]
    assert ring.since(6).rows == [] and ring.since(6).next == 6
    # No index: where the ring is now, nothing else.
    start = ring.since(None)
    assert start.rows == [] and start.next == 6


def test_a_page_ends_on_a_batch_boundary_and_the_next_page_goes_on() -> None:
    ring = reading()
    ring.record(task_batch(1, "a", "b"), 1.0)
    ring.record(task_batch(2, "c", "d"), 2.0)
    ring.record(task_batch(3, "e"), 3.0)
    first = ring.since(0, limit=3)
    assert [r[4] for r in first.rows] == ["a", "b"] and first.next == 1
    second = ring.since(first.next, limit=3)
    assert [r[4] for r in second.rows] == ["c", "d", "e"] and second.next == 3
    # A batch larger than the limit still comes whole.
    ring.record(task_batch(4, *[f"x{i}" for i in range(10)]), 4.0)
    assert len(ring.since(3, limit=2).rows) == 10


def test_the_ring_is_bounded_and_says_when_an_index_has_left_it() -> None:
    ring = EventRing(capacity=4)
    ring.since(None)
    for i in range(1, 11):
        ring.record(task_batch(i, f"t{i}", f"u{i}"), float(i))
    assert len(ring) <= 4
    assert ring.dropped == 8
    assert [r[0] for r in ring.since(8).rows] == [9, 9, 10, 10]
    with pytest.raises(FailedPrecondition, match="events after index 7 have left the event ring"):
        ring.since(7)
