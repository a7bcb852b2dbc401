"""A shorter heartbeat period takes effect at the very next beat."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.agent.core import Agent
from pyswarmkit.api.objects import NodeDescription
from pyswarmkit.api.protocol import Heartbeat, HeartbeatAck, Registered

pytestmark = pytest.mark.unit


def test_a_shorter_period_in_an_ack_brings_the_next_beat_forward() -> None:
    a = Agent(NodeDescription(hostname="n1"), random.Random(0))
    a.tick(0.0)
    a.receive(Registered(a.token, "s1", 5.0), 0.0, 0.0)
    beat_at = next(i / 10 for i in range(1, 100) if a.tick(i / 10).messages)
    # The period was set to 1 s meanwhile: the dispatcher expires the session
    # 3 s after this beat unless another comes.
    a.receive(HeartbeatAck(1.0, 0), beat_at + 0.01, 0.0)
    beats = [
        i / 10
        for i in range(int(beat_at * 10) + 1, int(beat_at * 10) + 30)
        if Heartbeat("s1") in a.tick(i / 10).messages
    ]
    assert beats and beats[0] <= beat_at + 1.2, beats
    assert len(beats) >= 2, beats


def test_a_longer_period_waits_for_the_beat_already_planned() -> None:
    a = Agent(NodeDescription(hostname="n1"), random.Random(0))
    a.tick(0.0)
    a.receive(Registered(a.token, "s1", 1.0), 0.0, 0.0)
    planned = a.next_heartbeat
    a.receive(HeartbeatAck(5.0, 0), 0.1, 0.0)
    assert a.next_heartbeat == planned
