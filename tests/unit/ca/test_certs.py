"""Certificates: the root CA, node certificates carrying CurveZMQ keys, and
every way verification refuses one."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.x509.oid import NameOID

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import RootCA
from pyswarmkit.api.states import NodeRole
from pyswarmkit.ca.certs import (
    BACKDATE,
    DEFAULT_CERT_EXPIRY,
    MANAGER_OU,
    MIN_CERT_EXPIRY,
    ROOT_CN,
    ROOT_VALIDITY,
    WORKER_OU,
    CertificateError,
    CertInfo,
    curve_public,
    issue,
    new_curve_keypair,
    new_root_ca,
    node_certificate,
    parse_cert_expiry,
    renewal_delay,
    verify,
)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
HOUR = 3600.0


@pytest.fixture(scope="module")
def root() -> RootCA:
    return new_root_ca(NOW)


@pytest.fixture(scope="module")
def other_root() -> RootCA:
    # Same subject (CN swarm-ca), different key: only the signature tells them apart.
    return new_root_ca(NOW)


def _name(cert: x509.Certificate, oid: x509.ObjectIdentifier, of: str = "subject") -> str:
    name = cert.subject if of == "subject" else cert.issuer
    return str(name.get_attributes_for_oid(oid)[0].value)


def _sign_custom(root: RootCA, subject: x509.Name, public_key: object, now: float) -> bytes:
    key = serialization.load_pem_private_key(root.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    issuer = x509.load_pem_x509_certificate(root.cert_pem).subject
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(now - 60, tz=dt.UTC))
        .not_valid_after(dt.datetime.fromtimestamp(now + HOUR, tz=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_constants() -> None:
    assert ROOT_CN == "swarm-ca"
    assert (MANAGER_OU, WORKER_OU) == ("swarm-manager", "swarm-worker")
    assert MIN_CERT_EXPIRY == 30 * 60
    assert DEFAULT_CERT_EXPIRY == 90 * 24 * 3600
    assert 20 * 365 * 24 * 3600 <= ROOT_VALIDITY <= 20 * 366 * 24 * 3600


def test_root_ca_is_a_self_signed_p256_ca_for_20_years(root: RootCA) -> None:
    cert = x509.load_pem_x509_certificate(root.cert_pem)
    assert _name(cert, NameOID.COMMON_NAME) == ROOT_CN
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.not_valid_after_utc.timestamp() == NOW + ROOT_VALIDITY
    assert cert.not_valid_before_utc.timestamp() <= NOW
    key = serialization.load_pem_private_key(root.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == public.public_numbers()


def test_curve_keypair_is_raw_x25519() -> None:
    a, b = new_curve_keypair(), new_curve_keypair()
    assert len(a.public) == len(a.secret) == 32
    assert curve_public(a.secret) == a.public
    assert a.public != b.public


def test_issued_certificate_fields(root: RootCA) -> None:
    kp = new_curve_keypair()
    pem = issue(root, kp.public, "node-1", NodeRole.WORKER, "cluster-9", NOW, 2 * HOUR)
    cert = x509.load_pem_x509_certificate(pem)
    assert _name(cert, NameOID.COMMON_NAME, "issuer") == "swarm-ca"
    assert _name(cert, NameOID.COMMON_NAME) == "node-1"
    assert _name(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == "swarm-worker"
    assert _name(cert, NameOID.ORGANIZATION_NAME) == "cluster-9"
    public = cert.public_key()
    assert isinstance(public, X25519PublicKey)
    assert public.public_bytes_raw() == kp.public
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_before_utc.timestamp() == NOW - BACKDATE
    assert cert.not_valid_after_utc.timestamp() == NOW + 2 * HOUR
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(root.cert_pem))


def test_verify_returns_what_the_certificate_says(root: RootCA) -> None:
    kp = new_curve_keypair()
    pem = issue(root, kp.public, "node-2", NodeRole.MANAGER, "c", NOW, HOUR)
    assert verify(pem, root.cert_pem, NOW) == CertInfo(
        node_id="node-2",
        role=NodeRole.MANAGER,
        cluster_id="c",
        curve_key=kp.public,
        not_before=NOW - BACKDATE,
        not_after=NOW + HOUR,
    )


def test_certificate_of_another_ca_is_refused(root: RootCA, other_root: RootCA) -> None:
    pem = issue(other_root, new_curve_keypair().public, "n", NodeRole.WORKER, "c", NOW, HOUR)
    with pytest.raises(CertificateError, match=r"^certificate is not signed by this swarm's CA$"):
        verify(pem, root.cert_pem, NOW)


def test_expired_and_not_yet_valid_are_refused(root: RootCA) -> None:
    pem = issue(root, new_curve_keypair().public, "node-3", NodeRole.WORKER, "c", NOW, HOUR)
    verify(pem, root.cert_pem, NOW + HOUR - 1)
    with pytest.raises(CertificateError, match=r"node-3 expired at 2027-01-15T0\d:00:00Z$"):
        verify(pem, root.cert_pem, NOW + HOUR)
    verify(pem, root.cert_pem, NOW - BACKDATE)
    with pytest.raises(CertificateError, match=r"node-3 is not valid until .*Z: check"):
        verify(pem, root.cert_pem, NOW - BACKDATE - 1)


def test_root_past_its_validity_is_refused(root: RootCA) -> None:
    pem = issue(root, new_curve_keypair().public, "n", NodeRole.WORKER, "c", NOW, HOUR)
    with pytest.raises(CertificateError, match="root CA expired"):
        verify(pem, root.cert_pem, NOW + ROOT_VALIDITY)


def test_tampered_certificate_is_refused(root: RootCA) -> None:
    pem = issue(root, new_curve_keypair().public, "node-a", NodeRole.WORKER, "c", NOW, HOUR)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert der.count(b"node-a") == 1
    forged = x509.load_der_x509_certificate(der.replace(b"node-a", b"node-b"))
    with pytest.raises(CertificateError, match="not signed by this swarm's CA"):
        verify(forged.public_bytes(serialization.Encoding.PEM), root.cert_pem, NOW)
    # Promoting oneself by editing the OU fails the same way.
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    promoted = der.replace(b"swarm-worker", b"swarm-manage")
    with pytest.raises(CertificateError):
        verify(
            x509.load_der_x509_certificate(promoted).public_bytes(serialization.Encoding.PEM),
            root.cert_pem,
            NOW,
        )


@pytest.mark.parametrize(
    "data", [b"", b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_not_a_certificate(root: RootCA, data: bytes) -> None:
    with pytest.raises(CertificateError, match=r"^the node certificate is not a PEM certificate$"):
        verify(data, root.cert_pem, NOW)
    pem = issue(root, new_curve_keypair().public, "n", NodeRole.WORKER, "c", NOW, HOUR)
    with pytest.raises(CertificateError, match=r"^the swarm's root CA is not a PEM certificate$"):
        verify(pem, data, NOW)


def test_root_itself_is_not_a_node_certificate(root: RootCA) -> None:
    with pytest.raises(CertificateError, match=r"no node|role"):
        verify(root.cert_pem, root.cert_pem, NOW)


def test_certificate_without_an_x25519_key_is_refused(root: RootCA) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "n"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, WORKER_OU),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "c"),
        ]
    )
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(CertificateError, match="does not carry an X25519 key"):
        verify(_sign_custom(root, subject, ec_key, NOW), root.cert_pem, NOW)


def test_certificate_with_an_unknown_role_is_refused(root: RootCA) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "n"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "swarm-admin"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "c"),
        ]
    )
    key = X25519PrivateKey.generate().public_key()
    with pytest.raises(CertificateError, match="has role 'swarm-admin'"):
        verify(_sign_custom(root, subject, key, NOW), root.cert_pem, NOW)
    no_org = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n")])
    with pytest.raises(CertificateError, match="no cluster"):
        verify(_sign_custom(root, no_org, key, NOW), root.cert_pem, NOW)


def test_issue_refuses_bad_input(root: RootCA) -> None:
    with pytest.raises(CertificateError, match="32 bytes"):
        issue(root, b"short", "n", NodeRole.WORKER, "c", NOW, HOUR)
    with pytest.raises(CertificateError, match="at least 30 minutes"):
        issue(root, new_curve_keypair().public, "n", NodeRole.WORKER, "c", NOW, 60)
    with pytest.raises(CertificateError, match="root CA"):
        issue(RootCA(b"x", b"y"), new_curve_keypair().public, "n", NodeRole.WORKER, "c", NOW, HOUR)


def test_node_certificate_record(root: RootCA) -> None:
    kp = new_curve_keypair()
    pem = issue(root, kp.public, "n", NodeRole.MANAGER, "c", NOW, HOUR)
    record = node_certificate(pem, verify(pem, root.cert_pem, NOW))
    assert record.curve_key == kp.public
    assert record.role == NodeRole.MANAGER
    assert record.not_after == NOW + HOUR
    assert record.pem == pem


def test_renewal_delay_between_half_and_four_fifths() -> None:
    not_before, not_after = 1000.0, 1000.0 + 10_000.0
    now = not_before + 100.0
    fractions = []
    for seed in range(1000):
        delay = renewal_delay(not_before, not_after, now, random.Random(seed))
        at = now + delay - not_before
        assert 5000.0 <= at <= 8000.0
        fractions.append(at / 10_000.0)
    # Spread over the whole window, not bunched at one end.
    assert min(fractions) < 0.52 and max(fractions) > 0.78


def test_renewal_delay_never_negative() -> None:
    for seed in range(200):
        rng = random.Random(seed)
        assert renewal_delay(0.0, 100.0, 85.0, rng) == 0.0
        assert renewal_delay(0.0, 100.0, 1e9, rng) == 0.0
        assert renewal_delay(10.0, 10.0, 0.0, rng) == 10.0


def test_renewal_delay_is_deterministic_per_seed() -> None:
    a = renewal_delay(0.0, 1e6, 0.0, random.Random(7))
    assert a == renewal_delay(0.0, 1e6, 0.0, random.Random(7))
    assert a != renewal_delay(0.0, 1e6, 0.0, random.Random(8))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h30m", 5400.0), ("2160h", 2160 * HOUR), ("90m", 5400.0), ("30m", 1800.0), ("1800", 1800.0)],
)
def test_parse_cert_expiry(text: str, seconds: float) -> None:
    assert parse_cert_expiry(text) == seconds


@pytest.mark.parametrize("text", ["45s", "29m59s", "0", "1799"])
def test_parse_cert_expiry_refuses_below_30m(text: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^--cert-expiry must be at least 30m$"):
        parse_cert_expiry(text)


@pytest.mark.parametrize("text", ["soon", "-1h", "1x", ""])
def test_parse_cert_expiry_refuses_garbage(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid --cert-expiry"):
        parse_cert_expiry(text)
