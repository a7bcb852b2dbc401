"""The swarm's first manager, restarted among others, waits for its Raft log
to give the store its cluster before serving (found by the chaos harness: on
a loaded machine the replay came later, and swarmd died of an IndexError)."""

from __future__ import annotations

import threading

import pytest

from pyswarmkit import node as node_module
from pyswarmkit.api.errors import Unavailable
from pyswarmkit.api.objects import Cluster
from pyswarmkit.node import SwarmNode
from pyswarmkit.store.memory import Change, MemoryStore

pytestmark = pytest.mark.unit


def _bare(store: MemoryStore) -> SwarmNode:
    n = SwarmNode.__new__(SwarmNode)
    n.store = store
    n._stopping = False
    return n


def test_it_waits_for_the_replayed_cluster() -> None:
    store = MemoryStore()
    later = threading.Timer(0.2, lambda: store.apply([Change("create", Cluster(id="c1"))], 1, 1.0))
    later.start()
    try:
        [cluster] = _bare(store)._wait_for_cluster()
    finally:
        later.cancel()
    assert cluster.id == "c1"


def test_it_gives_up_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_module, "LEAD_TIMEOUT", 0.2)
    with pytest.raises(Unavailable, match=r"gave no cluster within 0\.2 s"):
        _bare(MemoryStore())._wait_for_cluster()
