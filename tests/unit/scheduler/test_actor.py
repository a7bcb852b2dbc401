"""The scheduler actor wakes itself when the core's debounce ends, so a batch
of new tasks is placed without waiting for the node's next tick."""

from __future__ import annotations

import threading

import pytest

from pyswarmkit.actors.messages import Propose
from pyswarmkit.actors.registry import Registry
from pyswarmkit.actors.scheduler import SchedulerActor
from pyswarmkit.actors.store import StoreActor
from pyswarmkit.api.states import TaskState
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import LocalProposer
from tests.unit.scheduler.helpers import node, task

pytestmark = pytest.mark.unit

DEADLINE = 10.0


def assigned_ids(batch: EventBatch) -> set[str]:
    return {
        ev.obj.id
        for ev in batch.events
        if ev.kind == "task" and ev.obj.status.state == TaskState.ASSIGNED  # type: ignore[union-attr]
    }


def test_new_tasks_are_placed_without_any_tick() -> None:
    store = MemoryStore()
    registry = Registry("n1")
    placed: set[str] = set()
    all_placed = threading.Event()

    def watcher(batch: EventBatch) -> None:
        placed.update(assigned_ids(batch))
        if placed >= {"t1", "t2", "t3"}:
            all_placed.set()

    store.watch(watcher)
    registry.add("store", StoreActor.start(store, LocalProposer(store)))
    scheduler = SchedulerActor.start(registry, store)
    registry.add("scheduler", scheduler)
    try:
        # No ticker runs: only the actor's own wake-up can place these.
        registry.tell("store", Propose([Change("create", node("a"))], 0.0, lambda b, e: None))
        registry.tell("store", Propose([Change("create", task("t1"))], 0.0, lambda b, e: None))
        creates = [Change("create", task(f"t{i}", slot=i)) for i in (2, 3)]
        registry.tell("store", Propose(creates, 0.0, lambda b, e: None))
        assert all_placed.wait(DEADLINE), f"placed only {sorted(placed)}"
    finally:
        scheduler.stop()
        registry.remove("store").stop()  # type: ignore[union-attr]


def test_the_wake_up_thread_ends_with_the_actor() -> None:
    store = MemoryStore()
    registry = Registry("n2")
    ref = SchedulerActor.start(registry, store)
    waker = ref.proxy().waker.get()
    assert waker is not None and waker._thread.is_alive()
    ref.stop()
    waker._thread.join(DEADLINE)
    assert not waker._thread.is_alive()
