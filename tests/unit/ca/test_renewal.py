"""When a node renews its certificate, and how it retries."""

from __future__ import annotations

import random

import pytest

from pyswarmkit.ca.renewal import RETRY_FIRST, RETRY_MAX, Renewal

pytestmark = pytest.mark.unit

DAY = 86400.0


@pytest.mark.parametrize("seed", range(50))
def test_renewal_falls_between_half_and_four_fifths_of_validity(seed: int) -> None:
    r = Renewal(random.Random(seed))
    # Issued at wall 1000 for 90 days; it is now wall 1000 + 1 day, monotonic 50.
    delay = r.schedule(1000.0, 1000.0 + 90 * DAY, 1000.0 + DAY, 50.0)
    assert 0.5 * 90 * DAY - DAY <= delay <= 0.8 * 90 * DAY - DAY
    assert r.due == 50.0 + delay
    assert not r.start(r.due - 0.001)
    assert r.start(r.due)
    assert not r.start(r.due + 1), "one attempt at a time"


def test_an_overdue_certificate_renews_at_once() -> None:
    r = Renewal(random.Random(1))
    assert r.schedule(0.0, 100.0, 95.0, 7.0) == 0.0
    assert r.start(7.0)


def test_failures_back_off_up_to_a_bound_and_success_resets() -> None:
    r = Renewal(random.Random(2))
    r.schedule(0.0, 100.0, 90.0, 0.0)
    pauses = []
    for _ in range(12):
        assert r.start(r.due)
        pauses.append(r.failed(r.due))
    assert pauses[0] == RETRY_FIRST and pauses[1] == 2 * RETRY_FIRST
    assert max(pauses) == RETRY_MAX and pauses == sorted(pauses)
    r.schedule(0.0, 100.0, 10.0, 500.0)
    assert r.failures == 0 and not r.in_flight


def test_scale_shrinks_every_delay() -> None:
    full, fast = Renewal(random.Random(3)), Renewal(random.Random(3), scale=0.01)
    assert fast.schedule(0.0, 1800.0, 0.0, 0.0) == pytest.approx(
        full.schedule(0.0, 1800.0, 0.0, 0.0) * 0.01
    )
    fast.start(fast.due)
    assert fast.failed(fast.due) == pytest.approx(RETRY_FIRST * 0.01)


def test_an_anonymous_id_gives_back_its_key_and_nothing_else_does() -> None:
    from pyswarmkit.ca.authz import anonymous_id, key_of_anonymous

    key = bytes(range(32))
    assert key_of_anonymous(anonymous_id(key)) == key
    for other in ("", "node-1", "curve:", "curve:!!!!!", "curve:" + "0" * 45, "curve:é"):
        assert key_of_anonymous(other) is None


def test_a_join_request_never_shows_its_token() -> None:
    from pyswarmkit.api.objects import NodeDescription
    from pyswarmkit.api.protocol import JoinRequest
    from pyswarmkit.transport.bus import Envelope

    token = "SWMTKN-1-" + "a" * 50 + "-" + "b" * 25
    req = JoinRequest(token, NodeDescription(hostname="h"))
    for shown in (repr(req), str(req), repr(Envelope("", "", "ca", req))):
        assert token not in shown and "b" * 25 not in shown
