"""The node's identity on disk: file names and modes, verification on load,
and saves that a crash cannot leave half done."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID

from pyswarmkit.api.objects import CurveKeyPair, RootCA
from pyswarmkit.api.states import NodeRole
from pyswarmkit.ca import files as files_module
from pyswarmkit.ca.certs import CertificateError, issue, new_curve_keypair, new_root_ca
from pyswarmkit.ca.files import (
    CERT_FILE,
    KEY_FILE,
    ROOT_FILE,
    TMP,
    load_identity,
    save_identity,
)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
HOUR = 3600.0


@pytest.fixture(scope="module")
def root() -> RootCA:
    return new_root_ca(NOW)


def _identity(root: RootCA, node_id: str = "node-1") -> tuple[CurveKeyPair, bytes]:
    kp = new_curve_keypair()
    return kp, issue(root, kp.public, node_id, NodeRole.WORKER, "cluster-1", NOW, HOUR)


def test_round_trip(tmp_path: Path, root: RootCA) -> None:
    kp, cert = _identity(root)
    save_identity(tmp_path, kp, cert, root.cert_pem)
    identity = load_identity(tmp_path, NOW)
    assert identity is not None
    assert identity.keypair == kp
    assert (identity.cert_pem, identity.root_pem) == (cert, root.cert_pem)
    assert (identity.node_id, identity.role, identity.cluster_id) == (
        "node-1",
        NodeRole.WORKER,
        "cluster-1",
    )
    assert kp.secret.hex() not in repr(identity)


def test_files_as_swarmkit_names_them_and_parse(tmp_path: Path, root: RootCA) -> None:
    kp, cert = _identity(root)
    save_identity(tmp_path, kp, cert, root.cert_pem)
    d = tmp_path / "certificates"
    assert sorted(p.name for p in d.iterdir()) == sorted([ROOT_FILE, CERT_FILE, KEY_FILE])
    assert (ROOT_FILE, CERT_FILE, KEY_FILE) == (
        "swarm-root-ca.crt",
        "swarm-node.crt",
        "swarm-node.key",
    )
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / KEY_FILE).stat().st_mode) == 0o600
    node = x509.load_pem_x509_certificate((d / CERT_FILE).read_bytes())
    assert node.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "swarm-ca"
    assert node.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-1"
    assert (
        node.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
        == "swarm-worker"
    )
    assert node.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "cluster-1"
    key = serialization.load_pem_private_key((d / KEY_FILE).read_bytes(), password=None)
    assert isinstance(key, X25519PrivateKey)
    assert key.private_bytes_raw() == kp.secret
    assert b"BEGIN PRIVATE KEY" in (d / KEY_FILE).read_bytes()


def test_key_is_created_0600_and_never_chmodded(
    tmp_path: Path, root: RootCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: dict[str, int] = {}
    chmodded: list[str] = []
    real_open, real_chmod = os.open, os.chmod

    def spy_open(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
        opened[os.fspath(path)] = mode  # type: ignore[arg-type]
        return real_open(path, flags, mode, **kw)  # type: ignore[arg-type]

    def spy_chmod(path: object, mode: int, **kw: object) -> None:
        chmodded.append(os.fspath(path))  # type: ignore[arg-type]
        real_chmod(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(files_module.os, "open", spy_open)
    monkeypatch.setattr(files_module.os, "chmod", spy_chmod)
    old_umask = os.umask(0)
    try:
        kp, cert = _identity(root)
        save_identity(tmp_path, kp, cert, root.cert_pem)
    finally:
        os.umask(old_umask)
    key_tmp = str(tmp_path / "certificates" / (KEY_FILE + TMP))
    assert opened[key_tmp] == 0o600
    assert not any(p.endswith(KEY_FILE) or p.endswith(KEY_FILE + TMP) for p in chmodded)
    assert stat.S_IMODE((tmp_path / "certificates" / KEY_FILE).stat().st_mode) == 0o600


def test_loose_directory_is_tightened(tmp_path: Path, root: RootCA) -> None:
    (tmp_path / "certificates").mkdir(mode=0o755)
    os.chmod(tmp_path / "certificates", 0o755)
    kp, cert = _identity(root)
    save_identity(tmp_path, kp, cert, root.cert_pem)
    assert stat.S_IMODE((tmp_path / "certificates").stat().st_mode) == 0o700


def test_fresh_node_has_no_identity(tmp_path: Path) -> None:
    assert load_identity(tmp_path, NOW) is None
    (tmp_path / "certificates").mkdir()
    assert load_identity(tmp_path, NOW) is None


def test_certificates_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "certificates").write_text("x")
    with pytest.raises(CertificateError, match="is not a directory"):
        load_identity(tmp_path, NOW)


@pytest.mark.parametrize("name", [ROOT_FILE, CERT_FILE, KEY_FILE])
def test_missing_file_is_named(tmp_path: Path, root: RootCA, name: str) -> None:
    kp, cert = _identity(root)
    save_identity(tmp_path, kp, cert, root.cert_pem)
    (tmp_path / "certificates" / name).unlink()
    with pytest.raises(CertificateError) as caught:
        load_identity(tmp_path, NOW)
    d = tmp_path / "certificates"
    assert str(caught.value) == (
        f"{d / name} is missing: remove {d} and join the swarm again with a token"
    )


@pytest.mark.parametrize("name", [ROOT_FILE, CERT_FILE, KEY_FILE])
def test_corrupt_file_is_named(tmp_path: Path, root: RootCA, name: str) -> None:
    kp, cert = _identity(root)
    save_identity(tmp_path, kp, cert, root.cert_pem)
    (tmp_path / "certificates" / name).write_bytes(b"garbage\n")
    with pytest.raises(CertificateError, match=f"{name} is not a PEM") as caught:
        load_identity(tmp_path, NOW)
    assert "join the swarm again" in str(caught.value)


def test_key_of_another_type_is_refused(tmp_path: Path, root: RootCA) -> None:
    kp, cert = _identity(root)
    save_identity(tmp_path, kp, cert, root.cert_pem)
    (tmp_path / "certificates" / KEY_FILE).write_bytes(root.key_pem)
    with pytest.raises(CertificateError, match=f"{KEY_FILE} is not an X25519 key"):
        load_identity(tmp_path, NOW)


def test_key_not_matching_the_certificate(tmp_path: Path, root: RootCA) -> None:
    _, cert = _identity(root)
    save_identity(tmp_path, new_curve_keypair(), cert, root.cert_pem)
    with pytest.raises(CertificateError, match=f"{KEY_FILE} does not match the certificate"):
        load_identity(tmp_path, NOW)


def test_expired_certificate(tmp_path: Path, root: RootCA) -> None:
    kp, cert = _identity(root)
    save_identity(tmp_path, kp, cert, root.cert_pem)
    d = tmp_path / "certificates"
    with pytest.raises(CertificateError) as caught:
        load_identity(tmp_path, NOW + 2 * HOUR)
    assert str(caught.value) == (
        f"{d / CERT_FILE}: certificate of node node-1 expired at 2027-01-15T09:00:00Z: "
        f"remove {d} and join the swarm again with a token"
    )


def test_certificate_of_another_ca(tmp_path: Path, root: RootCA) -> None:
    kp, cert = _identity(root)
    save_identity(tmp_path, kp, cert, new_root_ca(NOW).cert_pem)
    with pytest.raises(CertificateError, match="not signed by this swarm's CA"):
        load_identity(tmp_path, NOW)


@pytest.mark.parametrize("partial", [KEY_FILE, ROOT_FILE, CERT_FILE])
def test_interrupted_save_keeps_the_old_identity(
    tmp_path: Path, root: RootCA, partial: str
) -> None:
    kp, cert = _identity(root, "old")
    save_identity(tmp_path, kp, cert, root.cert_pem)
    d = tmp_path / "certificates"
    # A save that died while writing its files: complete .tmp files up to
    # ``partial``, and that one cut short.
    kp2, cert2 = _identity(root, "new")
    content = {
        KEY_FILE: files_module.key_pem(kp2.secret),
        ROOT_FILE: root.cert_pem,
        CERT_FILE: cert2,
    }
    for name in files_module.ORDER:
        data = content[name]
        (d / (name + TMP)).write_bytes(data[: len(data) // 2] if name == partial else data)
        if name == partial:
            break
    identity = load_identity(tmp_path, NOW)
    assert identity is not None and identity.node_id == "old"
    # The next save is not stopped by the leftovers.
    save_identity(tmp_path, kp2, cert2, root.cert_pem)
    identity = load_identity(tmp_path, NOW)
    assert identity is not None and identity.node_id == "new"
    assert not list(d.glob("*" + TMP))


@pytest.mark.parametrize("done", [0, 1, 2])
def test_save_stopped_between_renames_loads_one_whole_identity(
    tmp_path: Path, root: RootCA, monkeypatch: pytest.MonkeyPatch, done: int
) -> None:
    kp, cert = _identity(root, "old")
    save_identity(tmp_path, kp, cert, root.cert_pem)
    real_replace = os.replace
    count = 0

    def dying_replace(src: object, dst: object) -> None:
        nonlocal count
        if count == done:
            raise OSError("power cut")
        count += 1
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(files_module.os, "replace", dying_replace)
    kp2, cert2 = _identity(root, "new")
    with pytest.raises(OSError, match="power cut"):
        save_identity(tmp_path, kp2, cert2, root.cert_pem)
    monkeypatch.setattr(files_module.os, "replace", real_replace)
    identity = load_identity(tmp_path, NOW)
    assert identity is not None
    # Before the key was replaced the old identity stands; after, the new one.
    assert identity.node_id == ("old" if done == 0 else "new")
    again = load_identity(tmp_path, NOW)
    assert again is not None and again.node_id == identity.node_id
    if done:
        assert not list((tmp_path / "certificates").glob("*" + TMP))
