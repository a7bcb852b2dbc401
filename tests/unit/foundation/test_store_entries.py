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
    batches_in,
    decode_batch,
    decode_entry,
    decode_snapshot,
    encode_batch,
    encode_group,
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
        msgspec.msgpack.encode([1, 0.0, [-1], [], [], [], [["c1"]]]),  # no such op
        msgspec.msgpack.encode([1, 0.0, [12], [["n1"]], [], [], []]),  # no such op
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


def test_a_forwarded_write_learns_its_outcome_after_its_entry_was_applied() -> None:
    """A follower may apply the entry holding its forwarded write before the
    leader's answer naming that index arrives: the outcome is kept for it.
    Entries applied while nothing was forwarded keep none (nothing can ask)."""
    replica = ReplicatedStore(MemoryStore())
    answers: list[tuple[object, SwarmError | None]] = []
    replica.apply(entry(1, 2, [Change("create", svc("s1", "web"))]), remember=False)
    forwarded = [Change("create", svc("s2", "db"))]
    replica.apply(entry(2, 2, forwarded), remember=True)
    replica.proposed(
        2,
        Pending(2, forwarded, 2.0, lambda b, e: answers.append((b, e)), None),  # type: ignore[arg-type]
    )
    batch, err = answers[0]
    assert err is None and isinstance(batch, EventBatch) and batch.index == 2
    replica.proposed(
        1,
        Pending(2, forwarded, 1.0, lambda b, e: answers.append((b, e)), None),  # type: ignore[arg-type]
    )
    assert isinstance(answers[1][1], Unavailable) and "no longer known" in str(answers[1][1])


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


@pytest.mark.parametrize("count", [1, 2, 15, 16, 70_000])
def test_a_group_entry_holds_its_batches_in_order(count: int) -> None:
    batches = [[Change("create", Node(id=f"n{i}"))] for i in range(count)]
    data = encode_group([encode_batch(b, float(i)) for i, b in enumerate(batches)])
    assert batches_in(data) == count
    decoded = decode_entry(data)
    assert [c for c, _ in decoded] == batches
    assert [now for _, now in decoded] == [float(i) for i in range(count)]
    if count == 1:
        # A lone batch is written as itself: entries of earlier versions read the same.
        assert decode_batch(data) == (batches[0], 0.0)


def test_a_group_holding_something_else_is_refused_whole() -> None:
    good = encode_batch([Change("create", Node(id="n1"))], 1.0)
    bad = msgspec.msgpack.encode([2, 0.0, [], [], [], [], []])
    with pytest.raises(EntryError):
        decode_entry(encode_group([good, bad]))
    # A group inside a group is not a batch.
    with pytest.raises(EntryError):
        decode_entry(encode_group([good, encode_group([good, good])]))


def group_entry(index: int, term: int, batches: list[list[Change]]) -> Entry:
    data = encode_group([encode_batch(b, float(index)) for b in batches])
    return Entry(term, index, ENTRY_NORMAL, data)


def test_each_batch_of_a_group_commits_or_fails_on_its_own() -> None:
    """Writes that share an entry are independent: one refused does not undo
    the others, each proposer hears its own outcome, and watchers see one
    batch with the events of those that applied."""
    replica = ReplicatedStore(MemoryStore())
    seen: list[EventBatch] = []
    replica.store.watch(seen.append)
    answers: dict[int, tuple[object, SwarmError | None]] = {}

    def answer(part: int) -> object:
        return lambda batch, err: answers.__setitem__(part, (batch, err))

    batches = [
        [Change("create", svc("s1", "web"))],
        [Change("create", svc("s2", "web"))],  # the name is taken by part 0
        [Change("create", svc("s3", "db"))],
    ]
    for part, b in enumerate(batches):
        pending = Pending(2, b, 1.0, answer(part), None)  # type: ignore[arg-type]
        replica.proposed(1, pending, part)
    replica.apply(group_entry(1, 2, batches))
    assert answers[0][1] is None and answers[2][1] is None
    assert answers[1][0] is None and answers[1][1] is not None
    assert replica.store.get_service("s2") is None
    assert [e.obj.id for e in seen[0].events] == ["s1", "s3"]
    # A follower (no proposals of its own) decodes the entry and ends the same.
    follower = ReplicatedStore(MemoryStore())
    follower.apply(group_entry(1, 2, batches))
    assert follower.store.dump() == replica.store.dump()
    # A proposal that learns its index after the entry applied gets that outcome.
    late: list[SwarmError | None] = []
    late_pending = Pending(2, batches[1], 1.0, lambda b, e: late.append(e), None)
    follower.proposed(1, late_pending, 1)  # type: ignore[arg-type]
    assert late and late[0] is not None


def test_a_later_batch_refused_because_of_an_earlier_one_in_its_group_is_built_again() -> None:
    replica = ReplicatedStore(MemoryStore())
    replica.apply(entry(1, 1, [Change("create", svc("s1", "web"))]))
    read = replica.store.get_service("s1")
    assert read is not None
    errs: dict[int, SwarmError | None] = {}
    update = [Change("update", read)]
    for part in (0, 1):
        pending = Pending(1, update, 2.0, lambda b, e, p=part: errs.__setitem__(p, e), 1)
        replica.proposed(2, pending, part)  # type: ignore[arg-type]
    replica.apply(group_entry(2, 1, [update, update]))
    assert errs[0] is None
    assert isinstance(errs[1], StaleWrite)


def test_proposals_a_group_does_not_hold_are_lost() -> None:
    replica = ReplicatedStore(MemoryStore())
    errs: list[SwarmError | None] = []
    b = [Change("create", svc("s1", "web"))]
    replica.proposed(1, Pending(1, b, 1.0, lambda x, e: errs.append(e), None), 0)  # type: ignore[arg-type]
    replica.proposed(1, Pending(1, b, 1.0, lambda x, e: errs.append(e), None), 5)  # type: ignore[arg-type]
    replica.apply(entry(1, 1, b))
    assert errs[0] is None
    assert isinstance(errs[1], Unavailable)
