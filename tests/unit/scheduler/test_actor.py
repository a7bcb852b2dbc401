"""The scheduler actor wakes itself when the core's debounce ends, so a batch
of new tasks is placed without waiting for the node's next tick."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pyswarmkit.actors.messages import Propose, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.actors.scheduler import SchedulerActor
from pyswarmkit.actors.store import StoreActor
from pyswarmkit.api.states import TaskState
from pyswarmkit.scheduler.core import Scheduler
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


class _Raising(Scheduler):
    def schedule(self, now: float, wall: float | None = None) -> list[Change]:
        self.calls = getattr(self, "calls", 0) + 1
        raise RuntimeError("boom")


class _CountingTicks(SchedulerActor):
    ticks = 0

    def handle(self, message: Any) -> Any:
        if isinstance(message, Tick):
            self.ticks += 1
        return super().handle(message)


def test_a_core_that_keeps_failing_is_retried_at_the_back_off_not_in_a_loop() -> None:
    store = MemoryStore()
    registry = Registry("n3")
    registry.add("store", StoreActor.start(store, LocalProposer(store)))
    core = _Raising()
    ref = _CountingTicks.start(registry, store, core)
    registry.add("scheduler", ref)
    try:
        creates = [Change("create", node("a")), Change("create", task("t1"))]
        registry.tell("store", Propose(creates, 0.0, lambda b, e: None))
        deadline = time.monotonic() + DEADLINE
        while getattr(core, "calls", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert getattr(core, "calls", 0) >= 1
        # Nothing must happen for a while: a negative check, so it waits.
        time.sleep(1.0)
        ticks = ref.proxy().ticks.get()
        # Back-off from 0.1 s doubling: a handful of wake-ups a second, not thousands.
        assert ticks < 30, f"{ticks} wake-ups in about a second"
    finally:
        ref.stop()
        registry.remove("store").stop()  # type: ignore[union-attr]
