"""The swarm's X.509 identities: the root CA and the certificates it issues.

A node certificate's subject public key is the node's X25519 CurveZMQ key,
the very key it uses on the wire, so a message's sender and a certificate
tie together by key alone. Subject: CN = node ID, OU = role, O = cluster ID,
as SwarmKit's. Pure: time comes in as wall seconds; the only side effect is
drawing fresh keys from the OS.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import CurveKeyPair, NodeCertificate, RootCA
from pyswarmkit.api.states import NodeRole
from pyswarmkit.control.units import parse_duration

ROOT_CN = "swarm-ca"
MANAGER_OU = "swarm-manager"
WORKER_OU = "swarm-worker"
ROOT_VALIDITY = 20 * 365 * 24 * 3600.0
MIN_CERT_EXPIRY = 30 * 60.0
DEFAULT_CERT_EXPIRY = 90 * 24 * 3600.0
# Certificates start this long before they are issued, so a node whose clock
# runs a little behind the CA's does not see a brand new certificate as not
# yet valid.
BACKDATE = 5 * 60.0
# SwarmKit renews between these fractions of a certificate's validity; the
# random point keeps a swarm's nodes from all renewing at once.
RENEW_FROM, RENEW_UNTIL = 0.5, 0.8
CURVE_KEY_BYTES = 32

_OU_ROLE = {MANAGER_OU: NodeRole.MANAGER, WORKER_OU: NodeRole.WORKER}
_ROLE_OU = {role: ou for ou, role in _OU_ROLE.items()}


class CertificateError(InvalidArgument):
    """A certificate, key or root CA that cannot be used, and what to do about it."""


@dataclass(frozen=True)
class CertInfo:
    node_id: str
    role: NodeRole
    cluster_id: str
    curve_key: bytes
    not_before: float
    not_after: float
    # The root's end, checked with the certificate's own; not what it says.
    root_not_after: float = field(default=float("inf"), compare=False)


def iso(t: float) -> str:
    """Wall seconds as people read them in errors: 2026-11-29T12:00:00Z."""
    try:
        return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{t:.0f}s"


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC)


def _usage(
    key_agreement: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    """A key usage extension with only the given uses on."""
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def new_root_ca(now: float) -> RootCA:
    """A fresh self-signed root CA (ECDSA P-256), valid for 20 years from ``now``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ROOT_CN)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_utc(now - BACKDATE))
        .not_valid_after(_utc(now + ROOT_VALIDITY))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _usage(key_cert_sign=True, crl_sign=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return RootCA(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def new_curve_keypair() -> CurveKeyPair:
    """A fresh X25519 keypair as raw 32-byte halves: a CurveZMQ keypair."""
    secret = X25519PrivateKey.generate()
    return CurveKeyPair(
        public=secret.public_key().public_bytes_raw(),
        secret=secret.private_bytes_raw(),
    )


def curve_public(secret: bytes) -> bytes:
    """The public half of a raw X25519 secret key."""
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def _load_root(root: RootCA) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(root.cert_pem)
        key = serialization.load_pem_private_key(root.key_pem, password=None)
    except (ValueError, TypeError):
        raise CertificateError(
            "the swarm's root CA is not a PEM certificate and key: the cluster's CA is damaged"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the swarm's root CA key is not an ECDSA key")
    return cert, key


def issue(
    root: RootCA,
    curve_key: bytes,
    node_id: str,
    role: NodeRole,
    cluster_id: str,
    now: float,
    validity: float,
) -> bytes:
    """PEM of a certificate for ``node_id`` whose public key is ``curve_key``."""
    if len(curve_key) != CURVE_KEY_BYTES:
        raise CertificateError(
            f"a node key is {CURVE_KEY_BYTES} bytes of X25519, not {len(curve_key)} bytes"
        )
    if not node_id or not cluster_id:
        raise CertificateError("a node certificate needs a node ID and a cluster ID")
    if validity < MIN_CERT_EXPIRY:
        raise CertificateError(
            f"a certificate must be valid for at least {MIN_CERT_EXPIRY / 60:.0f} minutes"
        )
    root_cert, root_key = _load_root(root)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, node_id),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _ROLE_OU[NodeRole(role)]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_cert.subject)
        .public_key(X25519PublicKey.from_public_bytes(curve_key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(_utc(now - BACKDATE))
        .not_valid_after(_utc(now + validity))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # X25519 keys only agree on keys: that is what CurveZMQ does.
            _usage(key_agreement=True),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _one(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return ""
    value = values[0].value
    return value if isinstance(value, str) else ""


def load_certificate(pem: bytes, what: str) -> x509.Certificate:
    """A PEM certificate; CertificateError naming ``what`` when it is not one."""
    if not isinstance(pem, bytes) or b"-----BEGIN CERTIFICATE-----" not in pem:
        raise CertificateError(f"{what} is not a PEM certificate")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertificateError(f"{what} is not a PEM certificate") from None


def verify(cert_pem: bytes, root_pem: bytes, now: float) -> CertInfo:
    """What a node certificate says, once it is proven to be signed by this
    swarm's root and valid at ``now``; CertificateError saying why not."""
    info = verify_signed(cert_pem, root_pem)
    check_validity(info, now)
    return info


def verify_signed(cert_pem: bytes, root_pem: bytes) -> CertInfo:
    """What a node certificate says, once it is proven to be signed by this
    swarm's root, whatever the time: for a certificate the CA has just issued,
    whose validity is the CA's clock's business, not this machine's."""
    root = load_certificate(root_pem, "the swarm's root CA")
    cert = load_certificate(cert_pem, "the node certificate")
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateError("certificate is not signed by this swarm's CA") from None
    node_id = _one(cert.subject, NameOID.COMMON_NAME)
    ou = _one(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    cluster_id = _one(cert.subject, NameOID.ORGANIZATION_NAME)
    if not node_id or not cluster_id:
        raise CertificateError("certificate names no node (CN) or no cluster (O)")
    if ou not in _OU_ROLE:
        raise CertificateError(
            f"certificate of node {node_id} has role {ou!r}: expected {MANAGER_OU} or {WORKER_OU}"
        )
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if ca:
        raise CertificateError(f"certificate of node {node_id} is a CA certificate")
    public = cert.public_key()
    if not isinstance(public, X25519PublicKey):
        raise CertificateError(f"certificate of node {node_id} does not carry an X25519 key")
    return CertInfo(
        node_id=node_id,
        role=_OU_ROLE[ou],
        cluster_id=cluster_id,
        curve_key=public.public_bytes_raw(),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        root_not_after=root.not_valid_after_utc.timestamp(),
    )


def check_validity(info: CertInfo, now: float) -> None:
    """CertificateError unless the certificate and its root are valid at ``now``."""
    if now >= info.root_not_after:
        raise CertificateError(f"the swarm's root CA expired at {iso(info.root_not_after)}")
    if now >= info.not_after:
        raise CertificateError(
            f"certificate of node {info.node_id} expired at {iso(info.not_after)}"
        )
    if now < info.not_before:
        raise CertificateError(
            f"certificate of node {info.node_id} is not valid until {iso(info.not_before)}: "
            "check this machine's clock"
        )


def issued_at(info: CertInfo) -> float:
    """When the CA issued the certificate, by the CA's clock."""
    return info.not_before + BACKDATE


def clock_note(info: CertInfo, now: float) -> str:
    """'' when ``now`` falls inside the certificate's validity; otherwise one
    line saying this machine's clock disagrees with the CA's, and by how much."""
    if info.not_before <= now < info.not_after:
        return ""
    off = now - issued_at(info)
    side = "ahead of" if off > 0 else "behind"
    return (
        f"this machine's clock reads {iso(now)}, about {abs(off) / 60:.0f} minutes {side} "
        f"the CA's: the certificate valid from {iso(info.not_before)} to "
        f"{iso(info.not_after)} is used as the CA issued it; check this machine's clock"
    )


def node_certificate(cert_pem: bytes, info: CertInfo) -> NodeCertificate:
    """The store's record of an issued certificate, for the authorization table."""
    return NodeCertificate(
        curve_key=info.curve_key, role=info.role, not_after=info.not_after, pem=cert_pem
    )


def renewal_delay(not_before: float, not_after: float, now: float, rng: random.Random) -> float:
    """Seconds from ``now`` until a random point between 50 % and 80 % of the
    certificate's validity; 0 when that point has passed."""
    validity = max(0.0, not_after - not_before)
    at = not_before + validity * rng.uniform(RENEW_FROM, RENEW_UNTIL)
    return max(0.0, at - now)


def parse_cert_expiry(text: str) -> float:
    """``--cert-expiry``: '2160h', '1h30m', '45s' or plain seconds -> seconds."""
    value = parse_duration(text, "--cert-expiry")
    if value < MIN_CERT_EXPIRY:
        raise InvalidArgument("--cert-expiry must be at least 30m")
    return value
