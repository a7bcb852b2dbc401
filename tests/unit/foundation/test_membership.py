"""The leader's decisions about the managers, from the store and the Raft configuration."""

from __future__ import annotations

from pyswarmkit.api.objects import ManagerStatus, Node, NodeSpec
from pyswarmkit.api.states import NodeRole, Reachability
from pyswarmkit.membership import (
    heard_reachability,
    plan_roles,
    raft_id_of,
    reachability_changes,
)


def node(
    nid: str, role: NodeRole, wanted: NodeRole, reach: Reachability = Reachability.REACHABLE
) -> Node:
    status = ManagerStatus(raft_id=raft_id_of(nid), reachability=reach)
    return Node(
        id=nid,
        spec=NodeSpec(desired_role=wanted),
        role=role,
        manager_status=status if role == NodeRole.MANAGER else None,
    )


M, W = NodeRole.MANAGER, NodeRole.WORKER


def test_raft_ids_are_positive_and_the_same_everywhere() -> None:
    assert raft_id_of("abc") == raft_id_of("abc") > 0
    assert raft_id_of("abc") != raft_id_of("abd")
    assert raft_id_of("abc") < 2**63


def test_a_promoted_worker_becomes_a_manager_at_once() -> None:
    plan = plan_roles([node("w", W, M)], frozenset(), raft_id_of("m"))
    (change,) = plan.changes
    assert isinstance(change.obj, Node) and change.obj.role == M
    assert change.obj.manager_status == ManagerStatus(
        raft_id=raft_id_of("w"), reachability=Reachability.UNKNOWN
    )
    assert plan.remove == [] and not plan.hand_over


def test_a_demoted_manager_leaves_raft_first_then_becomes_a_worker() -> None:
    me, other = raft_id_of("m"), raft_id_of("d")
    plan = plan_roles([node("m", M, M), node("d", M, W)], frozenset({me, other}), me)
    assert plan.remove == [(other, "demoting node d")] and plan.changes == []
    plan = plan_roles([node("m", M, M), node("d", M, W)], frozenset({me}), me)
    (change,) = plan.changes
    assert isinstance(change.obj, Node)
    assert change.obj.role == W and change.obj.manager_status is None


def test_a_demoted_leader_hands_over_and_members_without_nodes_go() -> None:
    me = raft_id_of("m")
    plan = plan_roles([node("m", M, W)], frozenset({me, 12345}), me)
    assert plan.hand_over and plan.changes == []
    assert plan.remove == [(12345, "its node was removed")]


def test_reachability_follows_when_each_member_was_last_heard() -> None:
    me, a, b = raft_id_of("m"), raft_id_of("a"), raft_id_of("b")
    nodes = [
        node("m", M, M, Reachability.UNKNOWN),
        node("a", M, M, Reachability.UNREACHABLE),
        node("b", M, M, Reachability.REACHABLE),
        node("gone", M, M, Reachability.REACHABLE),  # no member: a forced new cluster left it
        node("w", W, W),
    ]
    heard = heard_reachability(nodes, frozenset({me, a, b}), me, {a: 95, b: 70}, 100, 20)
    changes = reachability_changes(nodes, heard)
    got = {
        c.obj.id: c.obj.manager_status.reachability
        for c in changes
        if isinstance(c.obj, Node) and c.obj.manager_status is not None
    }
    assert got == {
        "m": Reachability.REACHABLE,
        "a": Reachability.REACHABLE,
        "b": Reachability.UNREACHABLE,
        "gone": Reachability.UNREACHABLE,
    }
