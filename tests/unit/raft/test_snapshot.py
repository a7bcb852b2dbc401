"""Log compaction and InstallSnapshot: Raft §7."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.raft.core import Config, RaftNode
from pyswarmkit.raft.messages import (
    CC_ADD_LEARNER,
    MSG_APP_RESP,
    MSG_SNAP,
    ConfChange,
    ConfState,
    Entry,
    HardState,
    Message,
    Snapshot,
)
from pyswarmkit.raft.progress import SNAPSHOT
from pyswarmkit.raft.storage import MemoryStorage
from tests.unit.raft.helpers import Net, bootstrap

pytestmark = pytest.mark.unit


def snapshot_leader(net: Net, nid: int) -> None:
    node = net.nodes[nid]
    data = b"|".join(net.datas(nid))
    snap = node.create_snapshot(node.applied_index, data)
    net.storages[nid].save_snapshot(snap)
    net.storages[nid].compact(snap.index - node.cfg.snapshot_keep)


def test_snapshot_compacts_the_log_but_keeps_entries_for_slow_followers() -> None:
    # §7: entries covered by a snapshot may be discarded; we keep
    # `snapshot_keep` of them so a follower slightly behind needs no snapshot.
    net = Net(config=Config(snapshot_keep=5))
    leader = net.elect(1)
    leader.propose_batch([b"%d" % i for i in range(30)])
    net.settle()
    applied = leader.applied_index
    snap = leader.create_snapshot(applied, b"state")
    assert (snap.index, snap.term) == (applied, leader.term)
    assert snap.conf.voters == (1, 2, 3)
    assert leader.log.offset == applied - 5
    assert leader.log.term(applied - 5) is not None
    assert leader.log.term(applied - 6) is None


def test_snapshot_must_be_of_applied_state() -> None:
    net = Net()
    leader = net.elect(1)
    net.isolate(1)
    leader.propose(b"x")
    net.settle()
    with pytest.raises(ValueError, match="beyond applied"):
        leader.create_snapshot(leader.last_index, b"")


def test_follower_behind_the_compacted_log_receives_install_snapshot() -> None:
    # §7: the leader sends InstallSnapshot to followers too far behind.
    net = Net(config=Config(snapshot_keep=2))
    leader = net.elect(1)
    net.isolate(3)
    for i in range(20):
        leader.propose(b"%d" % i)
    net.settle()
    snapshot_leader(net, 1)
    leader.propose(b"after")
    net.settle()
    net.heal()
    net.tick(2)
    snaps = net.sent_of(MSG_SNAP)
    assert [m.to for m in snaps] == [3]
    follower = net.nodes[3]
    assert follower.snapshot is not None and follower.snapshot.index == snaps[0].snapshot.index  # type: ignore[union-attr]
    assert follower.commit_index == leader.commit_index
    assert follower.log.entries[-1].data == b"after"
    # The application state came from the snapshot, then the entries after it.
    assert net.applied[3][-1].data == b"after"


def test_restarted_member_starts_from_its_snapshot() -> None:
    net = Net(config=Config(snapshot_keep=0))
    leader = net.elect(1)
    for i in range(10):
        leader.propose(b"%d" % i)
    net.settle()
    snapshot_leader(net, 2)
    snap = net.nodes[2].snapshot
    assert snap is not None
    node = net.restart(2)
    assert node.snapshot == snap
    assert node.applied_index == snap.index
    assert node.commit_index >= snap.index
    assert node.log.offset == snap.index


def test_a_lost_snapshot_is_sent_again() -> None:
    net = Net(config=Config(snapshot_keep=0, election_tick=5))
    leader = net.elect(1)
    net.isolate(3)
    for i in range(5):
        leader.propose(b"%d" % i)
    net.settle()
    snapshot_leader(net, 1)
    net.heal()
    net.drops.append(lambda m: m.type == MSG_SNAP)
    net.tick(2)
    pr = leader.progress(3)
    assert pr is not None and pr.state == SNAPSHOT
    first = sum(1 for m in net.sent if m.type == MSG_SNAP)
    net.drops.clear()
    net.tick(12)
    assert sum(1 for m in net.sent if m.type == MSG_SNAP) > first
    assert net.nodes[3].commit_index == leader.commit_index


def test_follower_that_already_has_the_entries_only_learns_the_commit() -> None:
    # §7: "If existing log entry has same index and term as snapshot's last
    # included entry, retain log entries following it".
    storage = MemoryStorage()
    storage.save(HardState(2, 0, 3), [*bootstrap(), Entry(2, 4, 0, b"a"), Entry(2, 5, 0, b"b")])
    node = RaftNode(2, (), storage, random.Random(2), Config())
    snap = Snapshot(4, 2, ConfState((1, 2, 3), ()), b"state")
    node.step(Message(MSG_SNAP, 2, 1, term=2, snapshot=snap))
    rd = node.ready()
    assert rd.snapshot is None  # nothing to restore
    assert [(m.type, m.index) for m in rd.messages] == [(MSG_APP_RESP, 5)]
    assert node.commit_index == 4 and node.last_index == 5
    assert [e.index for e in rd.committed_entries] == [1, 2, 3, 4]


def test_snapshot_carries_the_configuration_at_its_index() -> None:
    # §7: the snapshot holds the latest configuration as of its last index, so a
    # member restored from it knows who its peers are.
    net = Net(ids=(1,), config=Config(auto_promote=False))
    leader = net.elect(1)
    net.add(2)
    leader.propose_conf_change(ConfChange(CC_ADD_LEARNER, 2))
    net.settle()
    at_join = leader.applied_index
    leader.propose(b"x")
    net.settle()
    snap = leader.create_snapshot(at_join, b"")
    assert snap.conf == ConfState((1,), (2,))
