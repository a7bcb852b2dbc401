"""Leader election: Raft §5.2, §5.4.1, and the dissertation's §4.2.3, §6.2, §9.6."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.raft.core import Config, RaftNode, Role
from pyswarmkit.raft.messages import (
    CONTEXT_TRANSFER,
    MSG_APP,
    MSG_APP_RESP,
    MSG_HEARTBEAT,
    MSG_PRE_VOTE,
    MSG_PRE_VOTE_RESP,
    MSG_VOTE,
    MSG_VOTE_RESP,
    Message,
)
from pyswarmkit.raft.storage import MemoryStorage
from tests.unit.raft.helpers import Net

pytestmark = pytest.mark.unit


def test_follower_times_out_within_a_randomized_election_timeout() -> None:
    # §5.2: a follower that hears nothing for an election timeout, drawn at
    # random from [et, et + et * election_spread), starts an election. The
    # default spread is half: a failover at 100 ms ticks stays under 1.5 s
    # plus the vote, where Raft's classic [et, 2et) window reaches 2 s.
    def fired(cfg: Config) -> list[int]:
        fired_at = []
        for seed in range(60):
            node = RaftNode(1, (1, 2, 3), MemoryStorage(), random.Random(seed), cfg)
            ticks = 0
            while node.role == Role.FOLLOWER:
                node.tick()
                ticks += 1
                assert ticks < 30
            fired_at.append(ticks)
        return fired_at

    half = fired(Config(election_tick=10))
    assert set(half) == set(range(10, 15))  # every tick of the window, none beyond
    whole = fired(Config(election_tick=10, election_spread=1.0))
    assert min(whole) >= 10 and max(whole) <= 19 and max(whole) >= 15
    with pytest.raises(ValueError, match="election_spread"):
        Config(election_spread=0)


def test_candidate_with_a_majority_becomes_leader_and_asserts_itself() -> None:
    # §5.2: votes from a majority win; the leader then sends appends
    # (with an entry of its own term, §8) so the others stop their elections.
    net = Net()
    leader = net.elect(1)
    assert leader.term == 2  # bootstrap is term 1
    for nid in (2, 3):
        assert net.nodes[nid].role == Role.FOLLOWER
        assert net.nodes[nid].leader == 1
        assert net.nodes[nid].term == 2
    assert leader.log.last_term == 2
    assert leader.commit_index == leader.last_index


def test_single_member_elects_itself() -> None:
    net = Net(ids=(1,))
    leader = net.elect(1)
    index = leader.propose(b"x")
    net.settle()
    assert leader.commit_index == index
    assert net.datas(1) == [b"x"]


def test_one_vote_per_term() -> None:
    # §5.2: each server votes for at most one candidate in a given term.
    node = RaftNode(1, (1, 2, 3), MemoryStorage(), random.Random(1), Config(pre_vote=False))
    node.ready()  # bootstrap entries
    node.step(Message(MSG_VOTE, 1, 2, term=5, index=3, log_term=1))
    node.step(Message(MSG_VOTE, 1, 3, term=5, index=3, log_term=1))
    rd = node.ready()
    votes = [(m.to, m.reject) for m in rd.messages if m.type == MSG_VOTE_RESP]
    assert votes == [(2, False), (3, True)]
    assert rd.hard_state is not None and rd.hard_state.vote == 2


def test_vote_is_persisted_before_it_is_sent() -> None:
    # §5.2 with Figure 2's "persistent state": the vote rides in the same Ready
    # as the response, and a restarted member remembers it.
    storage = MemoryStorage()
    node = RaftNode(1, (1, 2, 3), storage, random.Random(1), Config(pre_vote=False))
    rd = node.ready()
    storage.save(rd.hard_state, rd.entries)
    node.advance(rd)
    node.step(Message(MSG_VOTE, 1, 2, term=5, index=3, log_term=1))
    rd = node.ready()
    assert rd.hard_state is not None and rd.hard_state.vote == 2
    assert any(m.type == MSG_VOTE_RESP and not m.reject for m in rd.messages)
    storage.save(rd.hard_state, rd.entries)
    node.advance(rd)
    again = RaftNode(1, (), storage, random.Random(2), Config(pre_vote=False))
    again.step(Message(MSG_VOTE, 1, 3, term=5, index=3, log_term=1))
    assert [m.reject for m in again.ready().messages] == [True]


@pytest.mark.parametrize(
    ("cand_last_term", "cand_last_index", "granted"),
    [
        (1, 3, True),  # same last term and index
        (1, 4, True),  # longer log, same term
        (1, 2, False),  # shorter log, same term
        (2, 1, True),  # higher last term wins even if shorter
        (0, 9, False),  # lower last term loses even if longer
    ],
)
def test_vote_only_for_an_up_to_date_log(
    cand_last_term: int, cand_last_index: int, granted: bool
) -> None:
    # §5.4.1: deny the vote if the candidate's log is less up to date.
    node = RaftNode(1, (1, 2, 3), MemoryStorage(), random.Random(1), Config(pre_vote=False))
    node.ready()  # our log: 3 bootstrap entries at term 1
    node.step(Message(MSG_VOTE, 1, 2, term=5, index=cand_last_index, log_term=cand_last_term))
    (resp,) = node.ready().messages
    assert resp.reject is not granted


def test_pre_vote_does_not_raise_terms_of_an_isolated_member() -> None:
    # Dissertation §9.6: a member that cannot reach a majority keeps failing
    # pre-votes, so its term stays put and it cannot depose the leader on return.
    net = Net()
    leader = net.elect(1)
    term = leader.term
    net.isolate(3)
    net.tick(100, only=[3])
    assert net.nodes[3].term == term
    assert net.nodes[3].role == Role.PRE_CANDIDATE
    net.heal()
    net.tick(3)
    assert net.leader() is leader
    assert leader.term == term
    assert net.nodes[3].role == Role.FOLLOWER


def test_without_pre_vote_an_isolated_member_inflates_its_term() -> None:
    # The contrast that makes the previous test meaningful.
    net = Net(config=Config(pre_vote=False, check_quorum=False))
    leader = net.elect(1)
    net.isolate(3)
    net.tick(100, only=[3])
    assert net.nodes[3].term > leader.term


def test_pre_vote_wins_then_a_real_election_follows() -> None:
    net = Net()
    net.elect(1)
    net.isolate(1)
    before = len(net.sent)
    net.tick(25, only=[2, 3])
    leader = net.leader()
    assert leader is not None and leader.id in (2, 3) and leader.term == 3
    pre = [m for m in net.sent[before:] if m.type == MSG_PRE_VOTE]
    assert pre and all(m.term == 3 for m in pre)  # asked for the next term, at term 2


def test_check_quorum_leader_steps_down_when_it_cannot_hear_a_majority() -> None:
    # Dissertation §6.2: a leader that hears from no majority for an election
    # timeout steps down.
    net = Net(config=Config(election_tick=10))
    leader = net.elect(1)
    net.isolate(1)
    for _ in range(9):
        leader.tick()
        net.settle()
    assert leader.role == Role.LEADER
    for _ in range(11):
        leader.tick()
        net.settle()
    assert leader.role == Role.FOLLOWER


def test_leader_hearing_a_majority_keeps_leading() -> None:
    net = Net()
    leader = net.elect(1)
    net.isolate(3)
    net.tick(50, only=[1, 2])
    assert leader.role == Role.LEADER


def test_followers_ignore_vote_requests_while_they_hear_a_leader() -> None:
    # Dissertation §4.2.3: within an election timeout of hearing from the
    # leader, a (pre-)vote request with a higher term is ignored outright.
    net = Net()
    net.elect(1)
    follower = net.nodes[2]
    term = follower.term
    follower.step(Message(MSG_VOTE, 2, 3, term=term + 5, index=100, log_term=term))
    follower.step(Message(MSG_PRE_VOTE, 2, 3, term=term + 1, index=100, log_term=term))
    assert follower.term == term
    assert net.flush(2) == []


def test_transfer_votes_bypass_the_lease() -> None:
    net = Net()
    net.elect(1)
    follower = net.nodes[2]
    term = follower.term
    follower.step(
        Message(MSG_VOTE, 2, 3, term=term + 1, index=100, log_term=term, context=CONTEXT_TRANSFER)
    )
    (resp,) = net.flush(2)
    assert resp.type == MSG_VOTE_RESP and not resp.reject and follower.term == term + 1


def test_stale_leader_learns_the_new_term_and_steps_down() -> None:
    # §5.1: a server seeing a higher term reverts to follower. With pre-vote
    # and check-quorum a follower answers a stale leader's append with its term.
    net = Net()
    old = net.elect(1)
    net.isolate(1)
    net.tick(30, only=[2, 3])
    new = net.leader()
    assert new is not None and new is not old
    assert old.role == Role.LEADER  # it has not noticed yet
    net.heal()
    old.propose(b"lost")
    net.settle()
    assert old.role == Role.FOLLOWER and old.term == new.term
    assert b"lost" not in net.datas(1)


def test_higher_term_pre_vote_response_rejection_moves_candidate_forward() -> None:
    node = RaftNode(1, (1, 2, 3), MemoryStorage(), random.Random(1), Config())
    node.ready()
    node.campaign()
    assert node.role == Role.PRE_CANDIDATE
    node.step(Message(MSG_PRE_VOTE_RESP, 1, 2, term=7, reject=True))
    assert node.role == Role.FOLLOWER and node.term == 7


def test_candidate_loses_on_a_majority_of_rejections() -> None:
    node = RaftNode(1, (1, 2, 3), MemoryStorage(), random.Random(1), Config(pre_vote=False))
    node.ready()
    node.campaign()
    assert node.role == Role.CANDIDATE
    node.step(Message(MSG_VOTE_RESP, 1, 2, term=node.term, reject=True))
    assert node.role == Role.CANDIDATE
    node.step(Message(MSG_VOTE_RESP, 1, 3, term=node.term, reject=True))
    assert node.role == Role.FOLLOWER


def test_candidate_yields_to_a_leader_of_its_term() -> None:
    # §5.2: an AppendEntries from a leader of the same term makes a candidate
    # a follower.
    node = RaftNode(1, (1, 2, 3), MemoryStorage(), random.Random(1), Config(pre_vote=False))
    node.ready()
    node.campaign()
    term = node.term
    node.step(Message(MSG_HEARTBEAT, 1, 2, term=term))
    assert node.role == Role.FOLLOWER and node.leader == 2 and node.term == term


def test_messages_from_lower_terms_are_answered_not_obeyed() -> None:
    net = Net()
    net.elect(1)
    follower = net.nodes[2]
    follower.step(Message(MSG_APP, 2, 3, term=1, index=3, log_term=1, commit=99))
    (resp,) = net.flush(2)
    assert resp.type == MSG_APP_RESP and resp.term == follower.term
    assert follower.commit_index < 99
