"""A node's identity on disk, under ``<state-dir>/certificates/`` as SwarmKit
names the files: ``swarm-root-ca.crt``, ``swarm-node.crt`` and
``swarm-node.key`` (the X25519 CurveZMQ secret key, PKCS8 PEM, mode 0600).

A save (the first one, or a renewal) must never leave a node that cannot
start. Each file is written in full to a ``.tmp`` beside it and fsynced
before any of them replaces its old self; the replacements then go key,
root, certificate. So:
- the key's ``.tmp`` still there: no replacement happened; the old three
  files are whole, and any ``.tmp`` is leftover of an unfinished save;
- the key's ``.tmp`` gone but the certificate's there: the save stopped
  between renames, with every new file complete; loading finishes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from pyswarmkit.api.objects import CurveKeyPair
from pyswarmkit.api.states import NodeRole
from pyswarmkit.ca.certs import (
    CertificateError,
    CertInfo,
    check_validity,
    clock_note,
    load_certificate,
    verify_signed,
)

CERT_DIR = "certificates"
ROOT_FILE = "swarm-root-ca.crt"
CERT_FILE = "swarm-node.crt"
KEY_FILE = "swarm-node.key"
# A manager that joined: the managers' CurveZMQ server keypair (its secret half).
SERVER_KEY_FILE = "swarm-server.key"
TMP = ".tmp"
# The order files are replaced in: key first, certificate last.
ORDER = (KEY_FILE, ROOT_FILE, CERT_FILE)
_MODES = {KEY_FILE: 0o600, ROOT_FILE: 0o644, CERT_FILE: 0o644}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    keypair: CurveKeyPair
    cert_pem: bytes
    root_pem: bytes
    info: CertInfo

    @property
    def node_id(self) -> str:
        return self.info.node_id

    @property
    def role(self) -> NodeRole:
        return self.info.role

    @property
    def cluster_id(self) -> str:
        return self.info.cluster_id

    def __repr__(self) -> str:
        # Keeps the secret key out of logs and tracebacks.
        return (
            f"Identity(node_id={self.node_id!r}, role={self.role.name}, "
            f"cluster_id={self.cluster_id!r})"
        )


def cert_dir(state_dir: Path) -> Path:
    return Path(state_dir) / CERT_DIR


def key_pem(secret: bytes) -> bytes:
    """A raw X25519 secret key as PKCS8 PEM."""
    return X25519PrivateKey.from_private_bytes(secret).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tmp(path: Path, data: bytes, mode: int) -> None:
    # Created with its final mode: the secret key is never readable by others,
    # not even for the moment between a create and a chmod.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def save_identity(state_dir: Path, keypair: CurveKeyPair, cert_pem: bytes, root_pem: bytes) -> None:
    """Write (or replace) the node's identity so that a crash at any point
    leaves either the old identity or the new one loadable."""
    d = cert_dir(state_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if d.stat().st_mode & 0o777 != 0o700:
        os.chmod(d, 0o700)
    # Leftovers go certificate first, key last, so a crash while clearing them
    # cannot leave a certificate's .tmp without the key's (which would read as
    # a save stopped between renames).
    for name in reversed(ORDER):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(d / (name + TMP))
    content = {KEY_FILE: key_pem(keypair.secret), ROOT_FILE: root_pem, CERT_FILE: cert_pem}
    for name in ORDER:
        _write_tmp(d / (name + TMP), content[name], _MODES[name])
    _fsync_dir(d)
    for name in ORDER:
        os.replace(d / (name + TMP), d / name)
    _fsync_dir(d)


def _fix(d: Path) -> str:
    return f"remove {d} and join the swarm again with a token"


def _read(d: Path, name: str) -> bytes:
    try:
        return (d / name).read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{d / name} is missing: {_fix(d)}") from None
    except OSError as e:
        raise CertificateError(f"cannot read {d / name}: {e.strerror}") from None


def _load_key(d: Path, data: bytes, name: str = KEY_FILE) -> CurveKeyPair:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise CertificateError(f"{d / name} is not a PEM private key: {_fix(d)}") from None
    if not isinstance(key, X25519PrivateKey):
        raise CertificateError(f"{d / name} is not an X25519 key: {_fix(d)}")
    return CurveKeyPair(public=key.public_key().public_bytes_raw(), secret=key.private_bytes_raw())


def _check(d: Path, key: bytes, cert: bytes, root: bytes, now: float) -> Identity:
    keypair = _load_key(d, key)
    try:
        load_certificate(root, str(d / ROOT_FILE))
        load_certificate(cert, str(d / CERT_FILE))
    except CertificateError as e:
        raise CertificateError(f"{e.message}: {_fix(d)}") from None
    try:
        info = verify_signed(cert, root)
        if now < info.not_before:
            # The CA issued it, so its start is the CA's clock's past: this
            # machine's clock is behind. The managers judge its validity.
            log.warning("%s: %s", d / CERT_FILE, clock_note(info, now))
        else:
            check_validity(info, now)
    except CertificateError as e:
        raise CertificateError(f"{d / CERT_FILE}: {e.message}: {_fix(d)}") from None
    if info.curve_key != keypair.public:
        raise CertificateError(
            f"{d / KEY_FILE} does not match the certificate in {d / CERT_FILE}: {_fix(d)}"
        )
    return Identity(keypair=keypair, cert_pem=cert, root_pem=root, info=info)


def _finish_save(d: Path, now: float) -> Identity | None:
    """The identity a save stopped between renames was writing, with the save
    completed; None when no such save is pending."""
    if (d / (KEY_FILE + TMP)).exists() or not (d / (CERT_FILE + TMP)).exists():
        return None
    root_name = ROOT_FILE + TMP if (d / (ROOT_FILE + TMP)).exists() else ROOT_FILE
    try:
        identity = _check(
            d,
            (d / KEY_FILE).read_bytes(),
            (d / (CERT_FILE + TMP)).read_bytes(),
            (d / root_name).read_bytes(),
            now,
        )
    except (CertificateError, OSError):
        return None
    for name in (ROOT_FILE, CERT_FILE):
        if (d / (name + TMP)).exists():
            os.replace(d / (name + TMP), d / name)
    _fsync_dir(d)
    return identity


def load_identity(state_dir: Path, now: float) -> Identity | None:
    """The node's stored identity, verified; None for a node that has none
    yet; CertificateError naming the file and what to do when it is unusable."""
    d = cert_dir(state_dir)
    if not d.is_dir():
        if d.exists():
            raise CertificateError(f"{d} is not a directory: {_fix(d)}")
        return None
    finished = _finish_save(d, now)
    if finished is not None:
        return finished
    if not any((d / name).exists() for name in ORDER):
        return None
    key, root, cert = (_read(d, name) for name in ORDER)
    return _check(d, key, cert, root, now)


def save_server_key(state_dir: Path, secret: bytes) -> None:
    d = cert_dir(state_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = d / (SERVER_KEY_FILE + TMP)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    _write_tmp(tmp, key_pem(secret), 0o600)
    os.replace(tmp, d / SERVER_KEY_FILE)
    _fsync_dir(d)


def load_server_key(state_dir: Path) -> CurveKeyPair | None:
    """The managers' server keypair a joined manager was given, if any."""
    d = cert_dir(state_dir)
    try:
        data = (d / SERVER_KEY_FILE).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CertificateError(f"cannot read {d / SERVER_KEY_FILE}: {e.strerror}") from None
    return _load_key(d, data, SERVER_KEY_FILE)
