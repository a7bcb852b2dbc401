"""``swarmd --force-new-cluster``: a manager that survived the loss of the
others' majority becomes a one-manager swarm holding everything it has
committed.

The member's Raft state is rewritten as one snapshot: the store as of the last
committed entry, with a configuration of this manager alone. Entries it held
but had not seen committed are dropped (no majority ever acknowledged them, so
no client was told they succeeded). The old log is kept beside the new one,
renamed, for a person to inspect; nothing is deleted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pyswarmkit import clock
from pyswarmkit.raft import ConfState, DurableStorage, HardState, Snapshot
from pyswarmkit.raft.crypt import Sealer
from pyswarmkit.store.entries import encode_snapshot
from pyswarmkit.store.memory import MemoryStore
from pyswarmkit.store.replicated import ReplicatedStore

log = logging.getLogger(__name__)


def committed_store(storage: DurableStorage) -> tuple[MemoryStore, int, int, HardState]:
    """The store as of the last committed entry; that entry's index and term."""
    state = storage.load()
    replica = ReplicatedStore(MemoryStore())
    index, term = 0, 0
    snap = state.snapshot
    if snap is not None:
        replica.restore(snap.data, snap.index)
        index, term = snap.index, snap.term
    for entry in state.entries:
        if index < entry.index <= state.hard_state.commit:
            replica.apply(entry)  # applied (or refused) as when it was first committed
            index, term = entry.index, entry.term
    return replica.store, index, term, state.hard_state


def force_new_cluster(raft_dir: Path, raft_id: int, sealer: Sealer | None = None) -> Path:
    """Rewrite the Raft state under ``raft_dir`` as a cluster of ``raft_id``
    alone; returns where the old state was moved. ``sealer``: the manager's
    Raft key, which reads the old log and seals the new one."""
    old = DurableStorage(str(raft_dir), sealer=sealer)
    store, index, term, hard = committed_store(old)
    old.close()
    stamp = int(clock.wall())
    kept = raft_dir.with_name(f"{raft_dir.name}.before-force-new-cluster-{stamp}")
    os.rename(raft_dir, kept)
    fresh = DurableStorage(str(raft_dir), sealer=sealer)
    store_index, objects = store.dump()
    snap = Snapshot(index, term, ConfState((raft_id,), ()), encode_snapshot(store_index, objects))
    fresh.save(HardState(max(hard.term, term), 0, index), [], snap)
    fresh.sync()
    fresh.close()
    log.warning(
        "forced a new cluster of this manager alone at index %d (%d services, %d tasks); "
        "the previous raft state is kept in %s",
        index,
        len(objects["service"]),
        len(objects["task"]),
        kept,
    )
    return kept
