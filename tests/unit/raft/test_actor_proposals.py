"""Writes gathered on a leader that loses leadership before it proposes them
are not failed: nothing of them was appended, so they go on to the new leader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyswarmkit.actors.raft import RaftActor, RaftMember, RaftPropose
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.api.objects import Annotations, ContainerSpec, Service, ServiceSpec, TaskSpec
from pyswarmkit.api.protocol import RaftForward
from pyswarmkit.membership import raft_id_of
from pyswarmkit.store.memory import Change, MemoryStore
from pyswarmkit.transport.bus import Envelope

pytestmark = pytest.mark.unit

OTHER = "k1pbh6nsnfo6wcwm4c3w4ryqv"


class Wire:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    def send(self, env: Envelope, **_: Any) -> bool:
        self.sent.append(env)
        return True


def write(name: str) -> list[Change]:
    spec = ServiceSpec(
        annotations=Annotations(name=name), task=TaskSpec(container=ContainerSpec(image="x"))
    )
    return [Change("create", Service(id=f"id{name}", spec=spec))]


@pytest.fixture
def actor(tmp_path: Path) -> Any:
    member = RaftMember("n1aaaaaaaaaaaaaaaaaaaaaaa", tmp_path / "raft", MemoryStore(), founder=True)
    wire = Wire()
    member.bus = wire  # type: ignore[assignment]
    a = RaftActor(member)
    a.on_start()
    assert a.core.role.name == "LEADER"
    yield a, wire
    member.close()


def test_a_write_gathered_before_leadership_moved_goes_to_the_new_leader(actor: Any) -> None:
    a, wire = actor
    outcomes: list[tuple[object, SwarmError | None]] = []
    a._propose(RaftPropose(write("web"), 1.0, lambda b, e: outcomes.append((b, e)), None))
    # A newer term arrives from another manager now leading; the write has not
    # reached the log yet.
    a._heard[raft_id_of(OTHER)] = OTHER
    a.core._become_follower(a.core.term + 1, raft_id_of(OTHER))
    a._propose_group()
    assert outcomes == []
    (env,) = [e for e in wire.sent if isinstance(e.body, RaftForward)]
    assert env.dest_node == OTHER


def test_with_no_leader_known_the_write_fails_saying_to_try_again(actor: Any) -> None:
    a, _ = actor
    outcomes: list[tuple[object, SwarmError | None]] = []
    a._propose(RaftPropose(write("web"), 1.0, lambda b, e: outcomes.append((b, e)), None))
    a.core._become_follower(a.core.term + 1, 0)
    a._propose_group()
    ((_, err),) = outcomes
    assert err is not None and "no leader" in str(err) and "try again" in str(err)


def test_a_forwarded_write_fails_at_once_when_its_leader_is_lost(actor: Any) -> None:
    """A follower's write forwarded to a leader that then dies is not left
    waiting out the forward timeout once this member follows no one (or
    another leader): the writer hears at once that the outcome is unknown."""
    a, wire = actor
    outcomes: list[tuple[object, SwarmError | None]] = []
    a._heard[raft_id_of(OTHER)] = OTHER
    a.core._become_follower(a.core.term + 1, raft_id_of(OTHER))
    a._propose(RaftPropose(write("web"), 1.0, lambda b, e: outcomes.append((b, e)), None))
    assert [e.dest_node for e in wire.sent if isinstance(e.body, RaftForward)] == [OTHER]
    a._expire_forwards(0.0)
    assert outcomes == []  # its leader still leads: it waits for the answer
    a.core._become_follower(a.core.term + 1, 0)  # the leader is gone: an election
    a._expire_forwards(0.0)
    ((batch, err),) = outcomes
    assert batch is None and err is not None
    assert "the leader was lost" in str(err)
    assert "whether the write took effect is unknown" in str(err)
