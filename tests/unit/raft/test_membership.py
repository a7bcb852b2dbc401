"""Membership changes (dissertation §4.1-§4.3) and leadership transfer (§3.10)."""

from __future__ import annotations

import pytest

from pyswarmkit.raft.core import Config, ProposalDropped, Role
from pyswarmkit.raft.messages import (
    CC_ADD_LEARNER,
    CC_ADD_VOTER,
    CC_REMOVE,
    MSG_APP,
    MSG_TIMEOUT_NOW,
    ConfChange,
)
from tests.unit.raft.helpers import Net

pytestmark = pytest.mark.unit


def add_learner(net: Net, leader_id: int, nid: int) -> None:
    net.add(nid)
    net.nodes[leader_id].propose_conf_change(ConfChange(CC_ADD_LEARNER, nid))


def test_new_member_joins_as_learner_and_is_promoted_once_caught_up() -> None:
    net = Net(config=Config(auto_promote=True))
    leader = net.elect(1)
    leader.propose_batch([b"%d" % i for i in range(50)])
    net.settle()
    add_learner(net, 1, 4)
    net.settle()
    joiner = net.nodes[4]
    assert 4 in leader.voters  # promoted ...
    assert joiner.commit_index == leader.commit_index  # ... after catching up
    assert net.datas(4) == net.datas(1)
    assert leader.conf_state.voters == (1, 2, 3, 4)


def test_a_learner_neither_votes_nor_counts_towards_commit() -> None:
    net = Net(config=Config(auto_promote=False))
    leader = net.elect(1)
    add_learner(net, 1, 4)
    net.settle()
    assert 4 in leader.learners
    net.isolate(2)
    net.isolate(3)
    leader.propose(b"x")
    net.settle()
    assert net.nodes[4].last_index == leader.last_index  # replicated to the learner ...
    assert leader.commit_index < leader.last_index  # ... which is no majority
    # And a learner never campaigns.
    net.tick(50, only=[4])
    assert net.nodes[4].role == Role.FOLLOWER


def test_promotion_requires_a_learner() -> None:
    net = Net()
    leader = net.elect(1)
    with pytest.raises(ProposalDropped, match="learner first"):
        leader.propose_conf_change(ConfChange(CC_ADD_VOTER, 9))


def test_one_change_at_a_time() -> None:
    # §4.1: a leader does not start a change until the previous one is committed.
    net = Net(config=Config(auto_promote=False))
    leader = net.elect(1)
    net.isolate(2)
    net.isolate(3)
    net.add(4)
    leader.propose_conf_change(ConfChange(CC_ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped, match="in progress"):
        leader.propose_conf_change(ConfChange(CC_REMOVE, 3))
    net.heal()
    net.settle()
    leader.propose_conf_change(ConfChange(CC_REMOVE, 3))


def test_a_new_leader_changes_nothing_before_committing_in_its_term() -> None:
    # The dissertation's fix for single-server changes: a leader may not start
    # a change until it has committed an entry of its own term.
    net = Net()
    net.drops.append(lambda m: m.type == MSG_APP)
    node = net.elect(1)
    assert node.commit_index < node.last_index
    with pytest.raises(ProposalDropped, match="not committed in its term"):
        node.propose_conf_change(ConfChange(CC_REMOVE, 3))
    net.drops.clear()
    net.tick(1)
    assert node.commit_index == node.last_index
    node.propose_conf_change(ConfChange(CC_REMOVE, 3))


def test_configuration_takes_effect_when_appended_not_when_committed() -> None:
    # §4.1: a server uses the latest configuration in its log.
    net = Net(ids=(1, 2, 3, 4))
    leader = net.elect(1)
    net.isolate(4)
    leader.propose_conf_change(ConfChange(CC_REMOVE, 4))
    assert leader.voters == {1, 2, 3}  # in effect before it commits
    net.settle()
    index = leader.propose(b"x")
    net.isolate(3)
    net.settle()
    # 2 of the new 3 voters: committed although 2 of the old 4 would not be.
    assert leader.commit_index == index


def test_removing_a_follower() -> None:
    net = Net()
    leader = net.elect(1)
    leader.propose_conf_change(ConfChange(CC_REMOVE, 3))
    net.settle()
    assert leader.voters == {1, 2}
    assert leader.progress(3) is None
    net.isolate(3)
    index = leader.propose(b"x")
    net.settle()
    assert leader.commit_index == index


def test_removing_the_leader_hands_over_and_steps_down() -> None:
    # §4.2.2: the leader manages the cluster without counting itself until
    # the change commits, then steps down; it hands over at once (§3.10).
    net = Net()
    leader = net.elect(1)
    leader.propose_conf_change(ConfChange(CC_REMOVE, 1))
    assert leader.role == Role.LEADER
    net.settle()
    assert leader.role == Role.FOLLOWER
    assert any(m.type == MSG_TIMEOUT_NOW and m.frm == 1 for m in net.sent)
    new = net.leader()
    assert new is not None and new.id in (2, 3)
    assert new.voters == {2, 3}
    index = new.propose(b"after")
    net.settle()
    assert new.commit_index == index
    # The removed member stays quiet: it never campaigns.
    term = new.term
    net.tick(60)
    assert net.leader() is new and new.term == term


def test_a_removed_member_that_missed_its_removal_does_not_disrupt() -> None:
    # §4.2.3: a removed server that does not know it was removed times out and
    # asks for votes; pre-vote and the leader lease keep the cluster undisturbed.
    net = Net()
    leader = net.elect(1)
    net.isolate(3)
    leader.propose_conf_change(ConfChange(CC_REMOVE, 3))
    net.settle()
    leader.propose(b"x")
    net.settle()
    term = leader.term
    net.heal()
    net.tick(100)
    assert net.leader() is leader and leader.term == term
    assert net.nodes[3].term == term  # it never got further than pre-votes
    assert 3 in net.nodes[3].voters  # and still does not know


def test_member_removed_while_its_removal_is_uncommitted_can_still_be_elected() -> None:
    # With configurations taking effect on append, a member whose own removal
    # is the uncommitted tail of the only up-to-date log must still be able to
    # stand, or the cluster would wait forever.
    net = Net(ids=(1, 2))
    leader = net.elect(1)
    net.isolate(1)
    leader.propose_conf_change(ConfChange(CC_REMOVE, 1))
    net.settle()
    assert leader.voters == {2}
    leader.propose(b"x")  # another entry node 2 lacks
    # Node 1 crashes and comes back as a follower; node 2 cannot win without
    # node 1's vote and node 1 is not a voter in its own latest configuration.
    node1 = net.restart(1)
    net.heal()
    net.tick(60)
    new = net.leader()
    assert new is not None
    net.tick(30)
    final = net.leader()
    assert final is not None and final.id == 2 and final.voters == {2}
    assert node1.role == Role.FOLLOWER


def test_leadership_transfer_to_an_up_to_date_follower() -> None:
    # §3.10: the leader brings the target up to date, then tells it to time
    # out at once; the target wins without waiting for an election timeout.
    net = Net()
    leader = net.elect(1)
    leader.propose(b"a")
    net.settle()
    leader.transfer_leadership(3)
    net.settle()
    assert net.nodes[3].role == Role.LEADER
    assert net.nodes[3].term == leader.term
    assert leader.role == Role.FOLLOWER


def test_leadership_transfer_to_a_lagging_follower_catches_it_up_first() -> None:
    net = Net()
    leader = net.elect(1)
    net.isolate(3)
    leader.propose(b"a")
    net.settle()
    net.heal()
    leader.transfer_leadership(3)
    with pytest.raises(ProposalDropped, match="moving to 3"):
        leader.propose(b"b")
    net.settle()
    assert net.nodes[3].role == Role.LEADER
    assert net.datas(3) == [b"a"]


def test_a_transfer_that_cannot_finish_is_abandoned() -> None:
    net = Net(config=Config(election_tick=10))
    leader = net.elect(1)
    net.isolate(3)
    leader.transfer_leadership(3)
    net.tick(11, only=[1, 2])
    assert leader.role == Role.LEADER and leader.lead_transferee == 0
    leader.propose(b"ok")


def test_transfer_only_to_another_voter() -> None:
    net = Net()
    leader = net.elect(1)
    with pytest.raises(ValueError):
        leader.transfer_leadership(1)
    with pytest.raises(ValueError):
        leader.transfer_leadership(7)
    with pytest.raises(ProposalDropped):
        net.nodes[2].transfer_leadership(3)
