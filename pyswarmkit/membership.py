"""Who the managers are, decided by the leader: pure, from the store's nodes
and the Raft configuration. The Raft member actor carries the decisions out.

- A node's role follows its desired role: a promoted worker becomes a manager
  at once (it then renews its certificate, restarts as a manager and joins
  Raft); a demoted manager leaves Raft first (a demoted leader hands its
  leadership over before that) and becomes a worker once it is no member.
- A Raft member whose node is gone from the store is removed.
- A manager is REACHABLE while its member has been heard within the window,
  UNREACHABLE otherwise (and always when it is no member: a new cluster was
  forced without it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyswarmkit.api.objects import ManagerStatus, Node, replace
from pyswarmkit.api.states import NodeRole, Reachability
from pyswarmkit.store.memory import Change


def raft_id_of(node_id: str) -> int:
    """A node's Raft ID: positive, 63 bits, the same on every manager."""
    return int.from_bytes(hashlib.sha256(node_id.encode()).digest()[:8], "big") >> 1 or 1


@dataclass(slots=True)
class RolePlan:
    # Store writes: promotions, and demotions whose member is gone.
    changes: list[Change] = field(default_factory=list)
    # Members to remove, with why (one change at a time: Raft refuses more).
    remove: list[tuple[int, str]] = field(default_factory=list)
    # This leader is being demoted: it hands leadership over first.
    hand_over: bool = False


def plan_roles(nodes: Iterable[Node], members: frozenset[int], me: int) -> RolePlan:
    plan = RolePlan()
    known: set[int] = set()
    for node in nodes:
        rid = raft_id_of(node.id)
        known.add(rid)
        wanted = node.spec.desired_role
        if node.role == NodeRole.WORKER and wanted == NodeRole.MANAGER:
            status = ManagerStatus(raft_id=rid, reachability=Reachability.UNKNOWN)
            plan.changes.append(
                Change("update", replace(node, role=NodeRole.MANAGER, manager_status=status))
            )
        elif node.role == NodeRole.MANAGER and wanted == NodeRole.WORKER:
            if rid == me:
                plan.hand_over = True
            elif rid in members:
                plan.remove.append((rid, f"demoting node {node.id}"))
            else:
                plan.changes.append(
                    Change("update", replace(node, role=NodeRole.WORKER, manager_status=None))
                )
    plan.remove += [(rid, "its node was removed") for rid in sorted(members - known)]
    return plan


def heard_reachability(
    nodes: Iterable[Node],
    members: frozenset[int],
    me: int,
    heard: Mapping[int, int],
    tick: int,
    window: int,
) -> dict[str, Reachability]:
    """The managers whose Manager Status says otherwise than whether their
    member was heard within ``window`` ticks of ``tick``: node ID -> their
    reachability as heard."""
    out: dict[str, Reachability] = {}
    for node in nodes:
        status = node.manager_status
        if node.role != NodeRole.MANAGER or status is None:
            continue
        rid = raft_id_of(node.id)
        last = heard.get(rid)
        up = rid == me or (rid in members and last is not None and tick - last <= window)
        want = Reachability.REACHABLE if up else Reachability.UNREACHABLE
        if status.reachability != want:
            out[node.id] = want
    return out


def reachability_changes(nodes: Iterable[Node], heard: Mapping[str, Reachability]) -> list[Change]:
    """The writes that bring the managers' Manager Status to ``heard``
    (``heard_reachability``'s answer)."""
    return [
        Change(
            "update",
            replace(node, manager_status=replace(node.manager_status, reachability=heard[node.id])),
        )
        for node in nodes
        if node.id in heard and node.manager_status is not None
    ]
