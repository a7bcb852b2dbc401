"""Store batches and snapshots in the Raft log, and how committed entries
reach the store and their proposers."""

from __future__ import annotations

import msgspec
import pytest

from pyswarmkit.api.errors import Conflict, SwarmError, Unavailable
from pyswarmkit.api.objects import Annotations, Cluster, Node, Service, ServiceSpec, Task
from pyswarmkit.raft.messages import ENTRY_NORMAL, Entry
from pyswarmkit.store.entries import (
    EntryError,
    decode_batch,
    decode_snapshot,
    encode_batch,
    encode_snapshot,
)
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import StaleWrite
from pyswarmkit.store.replicated import Pending, ReplicatedStore


def svc(sid: str, name: str) -> Service:
    return Service(id=sid, spec=ServiceSpec(annotations=Annotations(name=name)))


def test_a_batch_keeps_its_order_kinds_and_now() -> None:
    changes = [
        Change("create", svc("s1", "web")),
        Change("create", Task(id="t1", service_id="s1", slot=1)),
        Change("update", svc("s1", "web2")),
        Change("create", Node(id="n1")),
        Change("delete", Task(id="t1", service_id="s1", slot=1)),
        Change("create", Cluster(id="c1")),
    ]
    decoded, now = decode_batch(encode_batch(changes, 12.5))
    assert decoded == changes
    assert now == 12.5


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x93\x01\x02\x03",
        msgspec.msgpack.encode([2, 0.0, [], [], [], [], []]),  # a newer format
        msgspec.msgpack.encode([1, 0.0, [2], [], [], [], []]),  # a change with no object
        msgspec.msgpack.encode([1, 0.0, [], [], [], [], [["c1"]]]),  # an object no change names
        msgspec.msgpack.encode([1, 0.0, [1], [], [["s1", "not a spec"]], [], []]),
    ],
)
def test_an_entry_this_version_cannot_apply_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(EntryError):
        decode_batch(data)


def test_a_snapshot_round_trips_the_store() -> None:
    store = MemoryStore()
    store.apply([Change("create", svc("s1", "web")), Change("create", Node(id="n1"))], 7, 1.0)
    store.apply([Change("create", Task(id="t1", service_id="s1", slot=1, node_id="n1"))], 9, 2.0)
    index, objects = decode_snapshot(encode_snapshot(*store.dump()))
    other = MemoryStore()
    seen: list[EventBatch] = []
    other.watch(seen.append)
    other.restore(index, objects)
    assert other.index == 9
    assert other.dump() == store.dump()
    assert [t.id for t in other.tasks_by_node("n1")] == ["t1"]
    assert other.service_by_name("web") is not None
    assert sorted(e.kind for e in seen[0].events) == ["node", "service", "task"]


def entry(index: int, term: int, changes: list[Change]) -> Entry:
    return Entry(term, index, ENTRY_NORMAL, encode_batch(changes, float(index)))


def test_own_proposals_are_answered_and_lost_ones_say_retry() -> None:
    replica = ReplicatedStore(MemoryStore())
    answers: dict[str, tuple[object, SwarmError | None]] = {}

    def answer(name: str) -> object:
        return lambda batch, err: answers.__setitem__(name, (batch, err))

    mine = [Change("create", svc("s1", "web"))]
    replica.proposed(1, Pending(3, mine, 1.0, answer("kept"), None))  # type: ignore[arg-type]
    replica.proposed(2, Pending(3, mine, 1.0, answer("lost"), None))  # type: ignore[arg-type]
    replica.apply(entry(1, 3, mine))
    # Index 2 holds another leader's entry: the proposal there never committed.
    replica.apply(entry(2, 4, [Change("create", svc("s2", "db"))]))
    assert answers["kept"][1] is None and isinstance(answers["kept"][0], EventBatch)
    assert isinstance(answers["lost"][1], Unavailable)
    assert replica.store.service_by_name("db") is not None


def test_a_refusal_is_stale_only_when_other_writes_came_between() -> None:
    replica = ReplicatedStore(MemoryStore())
    replica.apply(entry(1, 1, [Change("create", svc("s1", "web"))]))
    read = replica.store.get_service("s1")
    assert read is not None
    errs: list[SwarmError | None] = []

    def note(batch: object, err: SwarmError | None) -> None:
        errs.append(err)

    update = [Change("update", read)]
    replica.proposed(2, Pending(1, update, 2.0, note, built_at=1))  # type: ignore[arg-type]
    replica.proposed(3, Pending(1, update, 3.0, note, built_at=1))  # type: ignore[arg-type]
    replica.apply(entry(2, 1, update))
    replica.apply(entry(3, 1, update))
    assert errs[0] is None
    assert isinstance(errs[1], StaleWrite) and isinstance(errs[1].cause, Conflict)
    # Built from the newest state and still refused: a real conflict, said as such.
    replica.proposed(4, Pending(1, update, 4.0, note, built_at=3))  # type: ignore[arg-type]
    replica.apply(entry(4, 1, update))
    assert isinstance(errs[2], Conflict) and not isinstance(errs[2], StaleWrite)
