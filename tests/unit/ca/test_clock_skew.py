"""A node whose clock is an hour off the CA's still takes, keeps and renews
its certificate on time: the CA's clock judges a certificate it has just
issued, and a renewal is due when either the monotonic or the wall clock says."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyswarmkit.api.objects import RootCA
from pyswarmkit.api.states import NodeRole
from pyswarmkit.ca.certs import (
    BACKDATE,
    CertificateError,
    clock_note,
    issue,
    issued_at,
    new_curve_keypair,
    new_root_ca,
    verify,
    verify_signed,
)
from pyswarmkit.ca.files import load_identity, save_identity
from pyswarmkit.ca.renewal import Renewal

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
HOUR = 3600.0
VALIDITY = 30 * 60.0


@pytest.fixture(scope="module")
def root() -> RootCA:
    return new_root_ca(NOW - HOUR)


def test_a_fresh_certificate_is_taken_whatever_this_clock_reads(root: RootCA) -> None:
    kp = new_curve_keypair()
    pem = issue(root, kp.public, "n", NodeRole.WORKER, "c", NOW, VALIDITY)
    for off in (-HOUR, HOUR):
        with pytest.raises(CertificateError):
            verify(pem, root.cert_pem, NOW + off)
        info = verify_signed(pem, root.cert_pem)
        assert info.curve_key == kp.public and issued_at(info) == NOW
        note = clock_note(info, NOW + off)
        assert "about 60 minutes" in note and "check this machine's clock" in note
    assert clock_note(verify_signed(pem, root.cert_pem), NOW) == ""
    other = new_root_ca(NOW)
    with pytest.raises(CertificateError, match="not signed by this swarm's CA"):
        verify_signed(pem, other.cert_pem)


def test_a_saved_certificate_not_valid_yet_by_this_clock_loads(
    tmp_path: Path, root: RootCA
) -> None:
    kp = new_curve_keypair()
    pem = issue(root, kp.public, "n", NodeRole.WORKER, "c", NOW, VALIDITY)
    save_identity(tmp_path, kp, pem, root.cert_pem)
    identity = load_identity(tmp_path, NOW - HOUR)
    assert identity is not None and identity.node_id == "n"
    # An expired one still stops the node with what to do.
    with pytest.raises(CertificateError, match="expired"):
        load_identity(tmp_path, NOW + HOUR)


def test_a_wall_clock_jumping_forward_makes_the_renewal_due() -> None:
    r = Renewal(random.Random(1))
    delay = r.schedule(NOW - BACKDATE, NOW + VALIDITY, NOW, 100.0)
    assert delay > 60
    assert not r.start(101.0, NOW + 1)
    assert not r.start(101.0)
    assert r.start(101.0, NOW + HOUR)


def test_a_clock_set_back_does_not_delay_the_renewal() -> None:
    r = Renewal(random.Random(1))
    delay = r.schedule(NOW - BACKDATE, NOW + VALIDITY, NOW - HOUR, 100.0)
    assert r.start(100.0 + delay, NOW - HOUR)


@pytest.mark.parametrize("off", [-HOUR, HOUR])
def test_the_next_renewal_is_planned_from_the_issue_time(off: float) -> None:
    """The same delay whatever this clock reads, and never zero: a clock an hour
    ahead would otherwise renew again at once, and again."""
    skewed, right = Renewal(random.Random(2)), Renewal(random.Random(2))
    nb, na = NOW - BACKDATE, NOW + VALIDITY
    expected = right.schedule(nb, na, NOW, 0.0)
    assert skewed.schedule(nb, na, NOW + off, 0.0, ca_now=NOW) == expected > 0
    assert not skewed.start(1.0, NOW + off + 1.0)


def test_a_failed_attempt_waits_on_both_clocks() -> None:
    r = Renewal(random.Random(3))
    r.schedule(NOW - BACKDATE, NOW + VALIDITY, NOW + HOUR, 0.0)
    assert r.start(0.0, NOW + HOUR)
    pause = r.failed(0.0, NOW + HOUR)
    assert not r.start(pause / 2, NOW + HOUR + pause / 2)
    assert r.start(pause / 2, NOW + HOUR + pause)
