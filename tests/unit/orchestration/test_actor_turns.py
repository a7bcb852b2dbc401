"""The orchestrator actor runs its cores in turns: one core's batch at a time,
each deciding on a store that holds the batches before it, none starved."""

from __future__ import annotations

import pytest

from pyswarmkit.actors.orchestrator import OrchestratorActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.objects import Service, Task
from pyswarmkit.api.states import TaskState
from pyswarmkit.store import Change, MemoryStore
from tests.unit.orchestration.world import WALL, World, spec

pytestmark = pytest.mark.unit


def actor_with_three_services() -> tuple[OrchestratorActor, MemoryStore]:
    w = World()
    w.add_node("n1")
    w.add_node("n2")
    actor = OrchestratorActor(Registry("n1"), w.store)
    actor.reset()
    specs = [
        spec("web", replicas=2),
        spec("agent", "global"),
        spec("batch", "replicated-job", total=3),
    ]
    creates = [Change("create", Service(id=f"s{i:024d}", spec=s)) for i, s in enumerate(specs)]
    actor.observe(w.store.apply(creates, w.store.index + 1, WALL))
    return actor, w.store


def test_each_core_proposes_its_own_batch_in_turn() -> None:
    actor, store = actor_with_three_services()
    owners: list[set[str]] = []
    for _ in range(6):
        changes = actor.decide(1.0, WALL + 1)
        if not changes:
            break
        owners.append({ch.obj.service_id for ch in changes if isinstance(ch.obj, Task)})
        actor.observe(store.apply(changes, store.index + 1, WALL + 1))
    # Three batches, each one core's (one service's here), then nothing to do.
    assert [len(o) for o in owners] == [1, 1, 1]
    assert set().union(*owners) == {s.id for s in store.services()}
    wanted = [t for t in store.tasks() if t.desired_state == TaskState.RUNNING]
    assert len(wanted) == 2 + 2 + 3


def test_a_core_that_always_has_work_does_not_starve_the_others() -> None:
    actor, store = actor_with_three_services()
    busy = actor.cores[0]
    calls = {"n": 0}

    def always(now: float, wall: float) -> list[Change]:
        calls["n"] += 1
        return busy.step(now, wall) or [Change("update", store.services()[0])]

    actor.cores[0] = busy.__class__(busy.name, busy.reset, busy.observe, lambda now: True, always)
    proposed = []
    for _ in range(6):
        changes = actor.decide(1.0, WALL + 1)
        proposed.append(changes)
        # A real store would refuse a stale update; here only the turns matter.
        actor.observe(
            store.apply([c for c in changes if isinstance(c.obj, Task)], store.index + 1, WALL + 1)
        )
    made = {t.service_id for t in store.tasks()}
    assert made == {s.id for s in store.services()}
    assert calls["n"] >= 2
