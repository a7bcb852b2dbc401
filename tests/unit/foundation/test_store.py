"""The in-memory store: atomic batches, versions, uniqueness, indexes, watchers, proposer."""

from __future__ import annotations

import pytest

from pyswarmkit.api.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound
from pyswarmkit.api.objects import (
    Annotations,
    Cluster,
    Meta,
    Node,
    Service,
    ServiceSpec,
    Task,
    replace,
)
from pyswarmkit.store import Change, EventBatch, LocalProposer, MemoryStore, Tx

pytestmark = pytest.mark.unit


def svc(sid: str, name: str, **kw: object) -> Service:
    return Service(id=sid, spec=ServiceSpec(annotations=Annotations(name=name)), **kw)  # type: ignore[arg-type]


def task(tid: str, service_id: str = "s1", slot: int = 1, node_id: str = "") -> Task:
    return Task(id=tid, service_id=service_id, slot=slot, node_id=node_id)


def renamed(s: Service, name: str) -> Service:
    return replace(s, spec=replace(s.spec, annotations=Annotations(name)))


def ids(tasks: list[Task]) -> set[str]:
    return {t.id for t in tasks}


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


# --- create, update, delete --------------------------------------------------


def test_create_stamps_version_and_times(store: MemoryStore) -> None:
    batch = store.apply([Change("create", svc("s1", "web"))], 7, 100.0)
    stored = store.get_service("s1")
    assert stored is not None
    assert stored.meta == Meta(version=7, created_at=100.0, updated_at=100.0, created_index=7)
    assert store.index == 7
    assert batch.index == 7
    assert [(e.op, e.kind, e.obj, e.old) for e in batch.events] == [
        ("create", "service", stored, None)
    ]


def test_update_bumps_version_keeps_created_at(store: MemoryStore) -> None:
    store.apply([Change("create", svc("s1", "web"))], 1, 100.0)
    current = store.get_service("s1")
    assert current is not None
    store.apply([Change("update", replace(current, spec_version=2))], 2, 150.0)
    stored = store.get_service("s1")
    assert stored is not None
    assert stored.spec_version == 2
    assert stored.meta == Meta(version=2, created_at=100.0, updated_at=150.0, created_index=1)


def test_the_meta_a_writer_sends_is_replaced(store: MemoryStore) -> None:
    odd = Meta(version=0, created_at=1.0, updated_at=2.0)
    store.apply([Change("create", replace(task("t1"), meta=odd))], 3, 30.0)
    assert store.get_task("t1").meta == Meta(3, 30.0, 30.0, 3)  # type: ignore[union-attr]


def test_delete_removes_and_reports_the_old_object(store: MemoryStore) -> None:
    store.apply([Change("create", task("t1"))], 1, 1.0)
    current = store.get_task("t1")
    assert current is not None
    batch = store.apply([Change("delete", current)], 2, 2.0)
    assert store.get_task("t1") is None
    assert store.count("task") == 0
    assert [(e.op, e.obj, e.old) for e in batch.events] == [("delete", current, current)]


def test_every_kind_has_its_own_table(store: MemoryStore) -> None:
    store.apply(
        [
            Change("create", Node(id="x")),
            Change("create", svc("x", "web")),
            Change("create", task("x")),
            Change("create", Cluster(id="x")),
        ],
        1,
        1.0,
    )
    assert [store.count(k) for k in ("node", "service", "task", "cluster")] == [1, 1, 1, 1]
    assert isinstance(store.get("node", "x"), Node)
    assert isinstance(store.get("cluster", "x"), Cluster)


def test_create_of_an_existing_id_is_already_exists(store: MemoryStore) -> None:
    store.apply([Change("create", task("t1"))], 1, 1.0)
    with pytest.raises(AlreadyExists, match="t1"):
        store.apply([Change("create", task("t1", slot=2))], 2, 2.0)
    assert store.get_task("t1").slot == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("op", ["update", "delete"])
def test_update_or_delete_of_a_missing_object_is_not_found(store: MemoryStore, op: str) -> None:
    with pytest.raises(NotFound, match="task t9 not found"):
        store.apply([Change(op, task("t9"))], 1, 1.0)  # type: ignore[arg-type]


# --- optimistic concurrency and atomicity -------------------------------------


@pytest.mark.parametrize("op", ["update", "delete"])
def test_a_stale_version_is_a_conflict(store: MemoryStore, op: str) -> None:
    store.apply([Change("create", task("t1"))], 1, 1.0)
    read = store.get_task("t1")
    assert read is not None
    store.apply([Change("update", replace(read, slot=2))], 2, 2.0)
    with pytest.raises(Conflict, match="changed since it was read") as err:
        store.apply([Change(op, replace(read, slot=3))], 3, 3.0)  # type: ignore[arg-type]
    assert isinstance(err.value, FailedPrecondition)
    assert store.get_task("t1").slot == 2  # type: ignore[union-attr]


def test_a_refused_batch_applies_nothing(store: MemoryStore) -> None:
    store.apply([Change("create", task("t1")), Change("create", svc("s1", "web"))], 1, 1.0)
    stale = store.get_task("t1")
    s1 = store.get_service("s1")
    assert stale is not None and s1 is not None
    store.apply([Change("update", replace(stale, node_id="n1"))], 2, 2.0)
    seen: list[EventBatch] = []
    store.watch(seen.append)
    before = {k: sorted(store.ids(k)) for k in ("node", "service", "task", "cluster")}
    with pytest.raises(Conflict):
        store.apply(
            [
                Change("create", task("t2", node_id="n1")),
                Change("update", renamed(s1, "api")),
                Change("delete", stale),
            ],
            3,
            3.0,
        )
    assert {k: sorted(store.ids(k)) for k in before} == before
    assert store.get_service("s1") == s1
    assert store.service_by_name("api") is None
    assert ids(store.tasks_by_node("n1")) == {"t1"}
    assert seen == []


def test_a_refused_batch_still_consumes_its_index(store: MemoryStore) -> None:
    with pytest.raises(NotFound):
        store.apply([Change("delete", task("t1"))], 5, 1.0)
    assert store.index == 5


def test_a_batch_may_create_then_update_then_delete_one_object(store: MemoryStore) -> None:
    t = task("t1")
    batch = store.apply(
        [
            Change("create", t),
            Change("update", replace(t, slot=4)),
            Change("delete", t),
        ],
        1,
        1.0,
    )
    assert [e.op for e in batch.events] == ["create", "update", "delete"]
    assert store.get_task("t1") is None
    assert store.tasks_by_slot("s1", 1) == [] and store.tasks_by_slot("s1", 4) == []


def test_delete_then_recreate_in_one_batch_restarts_created_at(store: MemoryStore) -> None:
    store.apply([Change("create", task("t1"))], 1, 1.0)
    current = store.get_task("t1")
    assert current is not None
    store.apply([Change("delete", current), Change("create", task("t1", slot=9))], 2, 20.0)
    assert store.get_task("t1").slot == 9  # type: ignore[union-attr]
    assert store.get_task("t1").meta == Meta(2, 20.0, 20.0, 2)  # type: ignore[union-attr]


# --- service names --------------------------------------------------------------


def test_a_duplicate_service_name_is_already_exists(store: MemoryStore) -> None:
    store.apply([Change("create", svc("s1", "web"))], 1, 1.0)
    with pytest.raises(AlreadyExists, match="'web'"):
        store.apply([Change("create", svc("s2", "web"))], 2, 2.0)
    assert store.get_service("s2") is None
    assert store.service_by_name("web").id == "s1"  # type: ignore[union-attr]


def test_two_new_services_with_one_name_in_one_batch_are_refused(store: MemoryStore) -> None:
    with pytest.raises(AlreadyExists):
        store.apply([Change("create", svc("s1", "web")), Change("create", svc("s2", "web"))], 1, 1)
    assert store.count("service") == 0


def test_renaming_onto_a_taken_name_is_refused(store: MemoryStore) -> None:
    store.apply([Change("create", svc("s1", "web")), Change("create", svc("s2", "api"))], 1, 1.0)
    s2 = store.get_service("s2")
    assert s2 is not None
    with pytest.raises(AlreadyExists):
        store.apply([Change("update", renamed(s2, "web"))], 2, 2.0)


def test_a_name_freed_by_rename_can_be_reused_in_the_same_batch(store: MemoryStore) -> None:
    store.apply([Change("create", svc("s1", "web"))], 1, 1.0)
    s1 = store.get_service("s1")
    assert s1 is not None
    store.apply([Change("update", renamed(s1, "old")), Change("create", svc("s2", "web"))], 2, 2)
    assert store.service_by_name("web").id == "s2"  # type: ignore[union-attr]
    assert store.service_by_name("old").id == "s1"  # type: ignore[union-attr]


def test_a_name_freed_by_delete_can_be_reused_in_the_same_batch(store: MemoryStore) -> None:
    store.apply([Change("create", svc("s1", "web"))], 1, 1.0)
    s1 = store.get_service("s1")
    assert s1 is not None
    store.apply([Change("delete", s1), Change("create", svc("s2", "web"))], 2, 2.0)
    assert store.service_by_name("web").id == "s2"  # type: ignore[union-attr]


def test_reusing_a_name_before_it_is_freed_is_refused(store: MemoryStore) -> None:
    store.apply([Change("create", svc("s1", "web"))], 1, 1.0)
    s1 = store.get_service("s1")
    assert s1 is not None
    with pytest.raises(AlreadyExists):
        store.apply([Change("create", svc("s2", "web")), Change("update", renamed(s1, "x"))], 2, 2)
    assert store.service_by_name("web").id == "s1"  # type: ignore[union-attr]
    assert store.service_by_name("x") is None


def test_two_services_may_swap_names_through_a_third(store: MemoryStore) -> None:
    store.apply([Change("create", svc("a", "one")), Change("create", svc("b", "two"))], 1, 1.0)
    a, b = store.get_service("a"), store.get_service("b")
    assert a is not None and b is not None
    a_tmp = renamed(a, "tmp")
    store.apply(
        [
            Change("update", a_tmp),
            Change("update", renamed(b, "one")),
            Change("update", renamed(a_tmp, "two")),
        ],
        2,
        2.0,
    )
    assert store.service_by_name("one").id == "b"  # type: ignore[union-attr]
    assert store.service_by_name("two").id == "a"  # type: ignore[union-attr]
    assert store.service_by_name("tmp") is None


# --- indexes ---------------------------------------------------------------------


def test_task_indexes_follow_moves_between_nodes_and_slots(store: MemoryStore) -> None:
    store.apply(
        [
            Change("create", task("t1", "s1", 1, "n1")),
            Change("create", task("t2", "s1", 2, "n1")),
            Change("create", task("t3", "s2", 1, "")),
        ],
        1,
        1.0,
    )
    assert ids(store.tasks_by_service("s1")) == {"t1", "t2"}
    assert ids(store.tasks_by_node("n1")) == {"t1", "t2"}
    assert ids(store.tasks_by_slot("s1", 1)) == {"t1"}
    assert ids(store.tasks_by_node("")) == set()

    t1 = store.get_task("t1")
    t3 = store.get_task("t3")
    assert t1 is not None and t3 is not None
    store.apply(
        [
            Change("update", replace(t1, node_id="n2", slot=3)),
            Change("update", replace(t3, node_id="n2", service_id="s1", slot=2)),
        ],
        2,
        2.0,
    )
    assert ids(store.tasks_by_node("n1")) == {"t2"}
    assert ids(store.tasks_by_node("n2")) == {"t1", "t3"}
    assert ids(store.tasks_by_slot("s1", 1)) == set()
    assert ids(store.tasks_by_slot("s1", 2)) == {"t2", "t3"}
    assert ids(store.tasks_by_slot("s1", 3)) == {"t1"}
    assert ids(store.tasks_by_service("s1")) == {"t1", "t2", "t3"}
    assert ids(store.tasks_by_service("s2")) == set()
    # The index returns the newest objects, not the ones first indexed.
    assert {t.meta.version for t in store.tasks_by_node("n2")} == {2}


def test_task_indexes_drop_deleted_tasks(store: MemoryStore) -> None:
    store.apply([Change("create", task("t1", "s1", 1, "n1"))], 1, 1.0)
    t1 = store.get_task("t1")
    assert t1 is not None
    store.apply([Change("delete", t1)], 2, 2.0)
    assert store.tasks_by_service("s1") == []
    assert store.tasks_by_node("n1") == []
    assert store.tasks_by_slot("s1", 1) == []


def test_service_by_name_follows_renames_and_deletes(store: MemoryStore) -> None:
    store.apply([Change("create", svc("s1", "web"))], 1, 1.0)
    s1 = store.get_service("s1")
    assert s1 is not None
    store.apply([Change("update", renamed(s1, "api"))], 2, 2.0)
    assert store.service_by_name("web") is None
    assert store.service_by_name("api") == store.get_service("s1")
    current = store.get_service("s1")
    assert current is not None
    store.apply([Change("delete", current)], 3, 3.0)
    assert store.service_by_name("api") is None


def test_nodes_by_name_uses_spec_name_else_hostname(store: MemoryStore) -> None:
    from pyswarmkit.api.objects import NodeDescription, NodeSpec

    named = Node(id="n1", spec=NodeSpec(annotations=Annotations(name="edge")))
    host = Node(id="n2", description=NodeDescription(hostname="edge"))
    other = Node(id="n3", description=NodeDescription(hostname="core"))
    store.apply([Change("create", n) for n in (named, host, other)], 1, 1.0)
    assert {n.id for n in store.nodes_by_name("edge")} == {"n1", "n2"}


# --- watchers ---------------------------------------------------------------------


def test_watchers_get_one_batch_per_commit_in_order(store: MemoryStore) -> None:
    seen: list[EventBatch] = []
    store.watch(seen.append)
    store.apply([Change("create", task("t1")), Change("create", task("t2"))], 1, 1.0)
    t1 = store.get_task("t1")
    assert t1 is not None
    store.apply([Change("update", replace(t1, node_id="n1"))], 2, 2.0)
    with pytest.raises(NotFound):
        store.apply([Change("delete", task("zz"))], 3, 3.0)
    assert [b.index for b in seen] == [1, 2]
    assert [[(e.op, e.obj.id) for e in b.events] for b in seen] == [
        [("create", "t1"), ("create", "t2")],
        [("update", "t1")],
    ]
    update = seen[1].events[0]
    assert update.old == t1
    assert update.obj == store.get_task("t1")


def test_every_watcher_gets_the_same_batch(store: MemoryStore) -> None:
    a: list[EventBatch] = []
    b: list[EventBatch] = []
    store.watch(a.append)
    store.watch(b.append)
    returned = store.apply([Change("create", task("t1"))], 1, 1.0)
    assert a == b == [returned]


def test_a_cancelled_watcher_gets_nothing(store: MemoryStore) -> None:
    kept: list[EventBatch] = []
    cancelled: list[EventBatch] = []
    store.watch(kept.append)
    cancel = store.watch(cancelled.append)
    store.apply([Change("create", task("t1"))], 1, 1.0)
    cancel()
    cancel()  # a second cancel is harmless
    store.apply([Change("create", task("t2"))], 2, 2.0)
    assert [b.index for b in kept] == [1, 2]
    assert [b.index for b in cancelled] == [1]


def test_a_watcher_reads_the_committed_state(store: MemoryStore) -> None:
    reads: list[object] = []
    store.watch(lambda batch: reads.append(store.get_task("t1")))
    store.apply([Change("create", task("t1"))], 1, 1.0)
    assert reads == [store.get_task("t1")]


# --- Tx ------------------------------------------------------------------------------


def test_tx_reads_its_own_writes(store: MemoryStore) -> None:
    store.apply([Change("create", task("t1")), Change("create", task("t2"))], 1, 1.0)
    t1 = store.get_task("t1")
    t2 = store.get_task("t2")
    assert t1 is not None and t2 is not None
    tx = Tx(store)
    moved = replace(t1, node_id="n1")
    tx.update(moved)
    tx.delete(t2)
    tx.create(task("t3"))
    assert tx.get("task", "t1") == moved
    assert tx.get("task", "t2") is None
    assert tx.get("task", "t3") == task("t3")
    assert tx.get("task", "t4") is None
    assert len(tx) == 3
    # Nothing is written until the batch is applied.
    assert store.get_task("t1") == t1 and store.get_task("t2") == t2
    store.apply(tx.changes, 2, 2.0)
    assert store.get_task("t1").node_id == "n1"  # type: ignore[union-attr]
    assert store.get_task("t2") is None
    assert store.get_task("t3") is not None


def test_tx_without_writes_reads_through_to_the_store(store: MemoryStore) -> None:
    store.apply([Change("create", Node(id="n1"))], 1, 1.0)
    assert Tx(store).get("node", "n1") == store.get_node("n1")


# --- LocalProposer ------------------------------------------------------------------


def test_local_proposer_commits_at_the_next_index() -> None:
    store = MemoryStore()
    proposer = LocalProposer(store)
    done: list[tuple[EventBatch | None, Exception | None]] = []
    proposer.propose([Change("create", task("t1"))], 5.0, lambda b, e: done.append((b, e)))
    proposer.propose([Change("create", task("t2"))], 6.0, lambda b, e: done.append((b, e)))
    assert [(b.index if b else None, e) for b, e in done] == [(1, None), (2, None)]
    assert store.index == 2
    assert store.get_task("t2").meta == Meta(2, 6.0, 6.0, 2)  # type: ignore[union-attr]


def test_local_proposer_reports_a_refused_batch() -> None:
    store = MemoryStore()
    proposer = LocalProposer(store)
    done: list[tuple[EventBatch | None, Exception | None]] = []
    proposer.propose([Change("create", svc("s1", "web"))], 1.0, lambda b, e: done.append((b, e)))
    proposer.propose([Change("create", svc("s2", "web"))], 2.0, lambda b, e: done.append((b, e)))
    assert done[0][1] is None
    batch, err = done[1]
    assert batch is None
    assert isinstance(err, AlreadyExists)
    assert store.get_service("s2") is None
