"""--force-new-cluster keeps exactly what was committed, as a cluster of one."""

from __future__ import annotations

import random
from pathlib import Path

from pyswarmkit.api.objects import Annotations, Service, ServiceSpec
from pyswarmkit.raft import (
    ENTRY_NORMAL,
    DurableStorage,
    Entry,
    HardState,
    RaftNode,
)
from pyswarmkit.store.entries import encode_batch
from pyswarmkit.store.memory import Change
from pyswarmkit.store.recovery import committed_store, force_new_cluster


def svc(name: str) -> Service:
    return Service(id=f"id-{name}", spec=ServiceSpec(annotations=Annotations(name=name)))


def test_only_committed_entries_survive_and_the_member_leads_alone(tmp_path: Path) -> None:
    raft = tmp_path / "raft"
    storage = DurableStorage(str(raft))
    entries = [
        Entry(2, i, ENTRY_NORMAL, encode_batch([Change("create", svc(f"s{i}"))], float(i)))
        for i in range(1, 5)
    ]
    # Entries 1-3 committed; 4 was appended but never committed.
    storage.save(HardState(2, 7, 3), entries)
    storage.sync()
    storage.close()

    kept = force_new_cluster(raft, 42)
    assert kept.exists() and kept != raft

    check = DurableStorage(str(raft))
    store, index, term, _ = committed_store(check)
    check.close()
    assert (index, term) == (3, 2)
    assert sorted(s.name for s in store.services()) == ["s1", "s2", "s3"]
    core = RaftNode(42, [], DurableStorage(str(raft)), random.Random(1))
    assert core.voters == frozenset({42}) and core.learners == frozenset()
    core.campaign()
    assert core.role.name == "LEADER"
