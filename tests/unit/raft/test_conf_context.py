"""A membership change carries the member's node ID and address, and changes
written before that field existed still read."""

from __future__ import annotations

import pytest

from pyswarmkit.api.codec import decode, encode
from pyswarmkit.api.objects import RaftMember
from pyswarmkit.raft.messages import CC_ADD_LEARNER, CC_ADD_VOTER, ConfChange

pytestmark = pytest.mark.unit


def test_a_conf_change_carries_the_members_node_id_and_address() -> None:
    member = RaftMember(raft_id=7, node_id="k1pbh6nsnfo6wcwm4c3w4ryqv", addr="10.0.0.2:4242")
    cc = ConfChange(CC_ADD_LEARNER, 7, encode(member))
    back = ConfChange.decode(cc.encode())
    assert back == cc
    assert decode(back.context, RaftMember) == member


def test_a_conf_change_from_before_contexts_reads_with_an_empty_one() -> None:
    old_bytes = bytes([CC_ADD_VOTER]) + (3).to_bytes(8, "little")
    assert ConfChange.decode(old_bytes) == ConfChange(CC_ADD_VOTER, 3, b"")


def test_a_truncated_conf_change_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 9 bytes"):
        ConfChange.decode(bytes([CC_ADD_VOTER]) + bytes(4))
