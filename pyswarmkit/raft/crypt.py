"""Encryption at rest for a manager's Raft state, as pure functions.

Each manager seals its WAL records and snapshot files with its own data
encryption key (DEK, 32 random bytes) under AES-256-GCM, with a random nonce
per record. The DEK lives in ``<state-dir>/certificates/raft-dek.json``; under
autolock it is kept wrapped (sealed) under a key-encryption key derived from
the swarm's unlock key, so the state dir alone reveals nothing.

An unlock key is 32 random bytes, printed as Docker prints it:
``SWMKEY-1-`` and the unpadded standard base64 of the bytes.

Nothing here reads a clock or the disk; randomness (nonces, keys) is passed
in or drawn from ``os.urandom`` by the one helper that says so.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
UNLOCK_PREFIX = "SWMKEY-1-"
_KEK_INFO = b"pyswarmkit raft DEK wrapping key v1"
_WRAP_AD = b"pyswarmkit raft DEK v1"

INVALID_KEY = "swarm could not be unlocked: invalid key provided"


class DecryptError(ValueError):
    """Sealed data did not open: the wrong key, or damaged or cut bytes."""


class UnlockKeyError(ValueError):
    """An unlock key that is not one, or not the one that wraps the DEK."""


def random_key() -> bytes:
    return os.urandom(KEY_SIZE)


class Sealer:
    """Seals and opens byte strings under one key. ``ad`` (associated data)
    is authenticated but not encrypted: the record type goes there, so a
    sealed record cannot be passed off as another kind. ``also_opens``: older
    keys tried when the key does not open something (a log part-way through
    being rewritten under a new key)."""

    __slots__ = ("_aead", "_older")

    def __init__(self, key: bytes, also_opens: tuple[bytes, ...] = ()) -> None:
        for k in (key, *also_opens):
            if len(k) != KEY_SIZE:
                raise ValueError(f"an encryption key is {KEY_SIZE} bytes, not {len(k)}")
        self._aead = AESGCM(key)
        self._older = tuple(AESGCM(k) for k in also_opens)

    def seal(self, plaintext: bytes, ad: bytes = b"", nonce: bytes | None = None) -> bytes:
        """nonce | ciphertext | tag; a fresh random nonce unless one is given (tests)."""
        n = os.urandom(NONCE_SIZE) if nonce is None else nonce
        return n + self._aead.encrypt(n, plaintext, ad)

    def open(self, sealed: bytes, ad: bytes = b"") -> bytes:
        if len(sealed) < OVERHEAD:
            raise DecryptError(f"sealed data of {len(sealed)} bytes is too short")
        nonce, body = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
        for aead in (self._aead, *self._older):
            try:
                return aead.decrypt(nonce, body, ad)
            except InvalidTag:
                continue
        raise DecryptError("does not decrypt with this key (wrong key or damaged data)")


def format_unlock_key(key: bytes) -> str:
    return UNLOCK_PREFIX + base64.b64encode(key).decode().rstrip("=")


def parse_unlock_key(text: str) -> bytes:
    """The key's bytes; UnlockKeyError with one line for anything else."""
    text = text.strip()
    if not text.startswith(UNLOCK_PREFIX):
        raise UnlockKeyError(f"invalid unlock key: it must start with {UNLOCK_PREFIX}")
    body = text[len(UNLOCK_PREFIX) :]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise UnlockKeyError("invalid unlock key: not base64 after " + UNLOCK_PREFIX) from None
    if len(key) != KEY_SIZE:
        raise UnlockKeyError(f"invalid unlock key: it holds {len(key)} bytes, not {KEY_SIZE}")
    if format_unlock_key(key) != text:
        # The last character's spare bits must be zero: one key, one spelling.
        raise UnlockKeyError("invalid unlock key: not base64 after " + UNLOCK_PREFIX)
    return key


def _kek(unlock_key: bytes) -> bytes:
    # The unlock key is already 32 random bytes: HKDF only separates its use
    # here from any other, no stretching is needed.
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=_KEK_INFO).derive(
        unlock_key
    )


def wrap_dek(dek: bytes, unlock_key: bytes) -> bytes:
    return Sealer(_kek(unlock_key)).seal(dek, _WRAP_AD)


def unwrap_dek(wrapped: bytes, unlock_key: bytes) -> bytes:
    try:
        dek = Sealer(_kek(unlock_key)).open(wrapped, _WRAP_AD)
    except DecryptError:
        raise UnlockKeyError(INVALID_KEY) from None
    if len(dek) != KEY_SIZE:
        raise UnlockKeyError(INVALID_KEY)
    return dek
