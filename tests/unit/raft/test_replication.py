"""Log replication and commitment: Raft §5.3 and §5.4.2, plus flow control."""

from __future__ import annotations

import pytest

from pyswarmkit.raft.core import Config, ProposalDropped, Role
from pyswarmkit.raft.messages import (
    MSG_APP,
    MSG_APP_RESP,
    MSG_HEARTBEAT,
    Entry,
    Message,
)
from pyswarmkit.raft.progress import PROBE, REPLICATE
from tests.unit.raft.helpers import Net, with_log

pytestmark = pytest.mark.unit


def test_entries_commit_once_a_majority_holds_them() -> None:
    # §5.3: an entry is committed when the leader has replicated it on a majority.
    net = Net()
    leader = net.elect(1)
    net.isolate(3)
    index = leader.propose(b"a")
    net.settle()
    assert leader.commit_index == index
    assert net.datas(1) == net.datas(2) == [b"a"]
    assert net.datas(3) == []
    net.heal()
    net.tick(2)
    assert net.datas(3) == [b"a"]


def test_nothing_commits_without_a_majority() -> None:
    net = Net()
    leader = net.elect(1)
    net.isolate(1)
    leader.propose(b"a")
    net.settle()
    assert leader.commit_index < leader.last_index
    assert net.datas(1) == []


def test_entries_apply_in_log_order_everywhere() -> None:
    net = Net(ids=(1, 2, 3, 4, 5))
    leader = net.elect(1)
    for i in range(20):
        leader.propose(b"%d" % i)
        if i % 3 == 0:
            net.settle()
    net.settle()
    want = [b"%d" % i for i in range(20)]
    for nid in net.nodes:
        assert net.datas(nid) == want


def test_follower_rejects_an_append_whose_previous_entry_does_not_match() -> None:
    # §5.3 consistency check: reject if the log has no entry at prevLogIndex
    # whose term matches prevLogTerm.
    net = Net()
    net.elect(1)
    f = net.nodes[2]
    term, last = f.term, f.last_index
    f.step(Message(MSG_APP, 2, 1, term=term, index=last, log_term=term + 9, entries=[]))
    f.step(Message(MSG_APP, 2, 1, term=term, index=last + 5, log_term=term, entries=[]))
    resps = net.flush(2)
    assert [(m.type, m.reject) for m in resps] == [(MSG_APP_RESP, True), (MSG_APP_RESP, True)]
    assert f.last_index == last


def test_conflicting_uncommitted_entries_are_replaced_by_the_leaders() -> None:
    # §5.3: if an existing entry conflicts with a new one (same index,
    # different terms), delete it and all that follow it.
    net = Net()
    with_log(net, 1, [2, 2], term=2)
    with_log(net, 2, [3], term=3)
    with_log(net, 3, [3], term=3)
    leader = net.elect(2)
    leader.propose(b"x")
    net.settle()
    node1 = net.nodes[1]
    assert [node1.log.term(i) for i in range(4, node1.last_index + 1)] == [3, 4, 4]
    assert net.datas(1) == net.datas(2) == [b"t3", b"x"]


def test_fast_backtracking_skips_a_whole_term_per_round_trip() -> None:
    # §5.3's optimization: a rejection names the follower's conflicting term so
    # the leader does not back up one entry per round trip.
    net = Net(config=Config(max_msg_entries=1000))
    with_log(net, 1, [2] * 60, term=2)  # a long stale tail from term 2
    with_log(net, 2, [3] * 5, term=3)
    with_log(net, 3, [3] * 5, term=3)
    leader = net.elect(2)
    rejections = [m for m in net.sent if m.type == MSG_APP_RESP and m.reject and m.frm == 1]
    assert len(rejections) <= 2
    assert net.nodes[1].log.last_index == leader.last_index
    assert net.nodes[1].log.term(64) is None


def test_leader_never_commits_an_old_term_entry_by_counting_replicas() -> None:
    # §5.4.2 (Figure 8): entry 4 from term 2 reaches a majority in term 4, but
    # node 3 holds a conflicting entry from term 3 and could still win an
    # election with node 2's vote; only an entry of the leader's own term,
    # once on a majority, commits it.
    net = Net(config=Config(max_msg_entries=1))
    with_log(net, 1, [2], term=3)
    with_log(net, 2, [], term=3)
    with_log(net, 3, [3], term=3)
    net.isolate(3)
    # Node 2 may see the leader's first append (it rejects it: it lacks entry
    # 4) but none that would give it the leader's own term-4 entry.
    seen = []

    def hold_back_term_4(m: Message) -> bool:
        if m.type == MSG_APP and any(e.term == 4 for e in m.entries):
            seen.append(m)
            return len(seen) > 1
        return False

    net.drops.append(hold_back_term_4)
    leader = net.elect(1)
    assert leader.term == 4
    assert net.nodes[2].log.term(4) == 2  # the old entry is on a majority ...
    assert leader.progress(2) is not None and leader.progress(2).match == 4  # type: ignore[union-attr]
    assert leader.commit_index == 3  # ... but is not committed
    net.drops.clear()
    net.tick(1)
    assert leader.commit_index == 5  # now committed along with entry 5 of term 4


@pytest.mark.parametrize(
    ("prev", "new_terms", "leader_commit", "expected"),
    [
        (4, [], 6, 4),  # a bare probe that matches at 4: entries 5 and 6 are unproven
        (3, [1], 6, 4),  # entry 4 matches; the follower's 5 and 6 may be stale
        (3, [2], 6, 4),  # entry 4 conflicts: 5 and 6 go, 4 is the leader's
        (3, [1, 1], 4, 4),  # the leader's commit is the lower bound
    ],
)
def test_a_follower_commits_up_to_the_last_new_entry_only(
    prev: int, new_terms: list[int], leader_commit: int, expected: int
) -> None:
    # Raft Fig. 2, AppendEntries rule 5 (etcd's handleAppendEntries):
    # commit = min(leaderCommit, index of last new entry). The follower's log
    # past what this message proved to match may come from a deposed leader,
    # so the leader's commit index alone must not commit it.
    net = Net()
    follower = with_log(net, 2, [1, 1, 1], term=1)  # entries 1..6, committed to 3
    ents = [Entry(t, prev + 1 + k, 0, b"t%d" % t) for k, t in enumerate(new_terms)]
    follower.step(
        Message(MSG_APP, 2, 1, term=2, index=prev, log_term=1, entries=ents, commit=leader_commit)
    )
    out = net.flush(2)
    assert follower.commit_index == expected
    assert [e.index for e in net.applied[2]][-1] == expected
    (resp,) = [m for m in out if m.type == MSG_APP_RESP]
    assert not resp.reject and resp.index == prev + len(ents)


def test_heartbeats_never_commit_past_what_the_follower_is_known_to_hold() -> None:
    net = Net()
    leader = net.elect(1)
    net.isolate(3)
    leader.propose(b"a")
    net.settle()
    net.heal()
    net.drops.append(lambda m: m.type == MSG_APP)
    for nid in net.nodes:
        net.nodes[nid].tick()
    hb = [m for m in net.flush(1) if m.type == MSG_HEARTBEAT]
    by_to = {m.to: m.commit for m in hb}
    assert by_to[2] == leader.commit_index
    assert by_to[3] < leader.commit_index


def test_duplicated_and_reordered_appends_change_nothing() -> None:
    net = Net(config=Config(max_msg_entries=1))
    leader = net.elect(1)
    for d in (b"a", b"b", b"c"):
        leader.propose(d)
    apps = [m for m in net.flush(1) if m.type == MSG_APP and m.to == 2]
    follower = net.nodes[2]
    for m in list(reversed(apps)) + apps + apps:
        follower.step(m)
    net.flush(2)
    net.settle()
    assert [e.data for e in follower.log.entries[-3:]] == [b"a", b"b", b"c"]
    assert follower.last_index == leader.last_index


def test_appends_respect_the_entry_and_byte_limits() -> None:
    net = Net(config=Config(max_msg_entries=4, max_msg_bytes=100))
    leader = net.elect(1)
    net.isolate(2)
    leader.propose_batch([b"x"] * 10)
    leader.propose_batch([b"y" * 60] * 3)
    net.settle()
    apps = [m for m in net.sent if m.type == MSG_APP and m.to == 3 and m.entries]
    assert all(len(m.entries) <= 4 for m in apps)
    assert all(sum(len(e.data) for e in m.entries) <= 100 or len(m.entries) == 1 for m in apps)
    assert net.datas(3)[-3:] == [b"y" * 60] * 3


def test_in_flight_appends_are_bounded() -> None:
    net = Net(config=Config(max_msg_entries=1, max_inflight_msgs=3))
    leader = net.elect(1)
    pr = leader.progress(2)
    assert pr is not None and pr.state == REPLICATE
    for i in range(10):
        leader.propose(b"%d" % i)
    apps = [m for m in net.flush(1) if m.type == MSG_APP and m.to == 2 and m.entries]
    assert len(apps) == 3
    assert pr.is_paused()


def test_probing_follower_gets_one_append_at_a_time() -> None:
    net = Net()
    leader = net.elect(1)
    net.isolate(3)
    leader.propose(b"a")
    net.settle()
    pr = leader.progress(3)
    assert pr is not None
    # Its appends went unanswered; a rejection would put it in probe state.
    pr.become_probe()
    net.flush(1)
    leader.propose(b"b")
    leader.propose(b"c")
    apps = [m for m in net.flush(1) if m.type == MSG_APP and m.to == 3]
    assert len(apps) == 1 and pr.state == PROBE and pr.probe_sent


def test_a_batch_of_proposals_travels_in_one_message() -> None:
    net = Net()
    leader = net.elect(1)
    first = leader.propose_batch([b"%d" % i for i in range(100)])
    apps = [m for m in net.flush(1) if m.type == MSG_APP and m.entries]
    assert len(apps) == 2  # one per follower
    assert all(len(m.entries) == 100 and m.entries[0].index == first for m in apps)


def test_only_the_leader_accepts_proposals() -> None:
    net = Net()
    net.elect(1)
    with pytest.raises(ProposalDropped, match="leader is 1"):
        net.nodes[2].propose(b"x")


def test_a_restarted_follower_keeps_its_log_and_catches_up() -> None:
    net = Net()
    leader = net.elect(1)
    leader.propose(b"a")
    net.settle()
    net.isolate(2)
    leader.propose(b"b")
    net.settle()
    node = net.restart(2)
    assert node.role == Role.FOLLOWER and node.term == leader.term
    net.heal()
    net.tick(3)
    assert net.datas(2) == [b"a", b"b"]
