"""The store lets go of a large batch once it is committed, so memory comes
back after a big service is removed, even when no other write follows."""

from __future__ import annotations

import gc
import threading
import time

import pytest
from helpers import wait_until

from pyswarmkit.actors.messages import Propose
from pyswarmkit.actors.store import StoreActor
from pyswarmkit.api.objects import Task
from pyswarmkit.store.memory import Change, MemoryStore
from pyswarmkit.store.proposer import LocalProposer

pytestmark = pytest.mark.integration


def held_deletes() -> int:
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, Change) and o.op == "delete" and o.obj.id.startswith("rel-")
    )


def test_a_large_committed_batch_is_not_kept() -> None:
    store = MemoryStore()
    actor = StoreActor.start(store, LocalProposer(store))
    try:
        for op in ("create", "delete"):
            done = threading.Event()
            changes = [
                Change(op, store.get_task(f"rel-{i}") or Task(id=f"rel-{i}")) for i in range(2000)
            ]
            actor.tell(Propose(changes, time.time(), lambda batch, err, done=done: done.set()))
            del changes
            assert done.wait(10)
        assert store.count("task") == 0
        wait_until(lambda: held_deletes() == 0, what="the delete batch released")
    finally:
        actor.stop()
