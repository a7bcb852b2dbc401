"""Join tokens: ``SWMTKN-1-<server key>-<secret>``.

The first part is the base36 of the managers' CurveZMQ server public key
(zero-padded to 50 characters), so a joiner authenticates the manager on its
very first connection; the second is the base36 of 16 random bytes (padded
to 25). One token admits workers, the other managers. A token is a
password: it is compared in constant time and never appears in an error or
a log line, not even in part.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import JoinTokens, replace
from pyswarmkit.api.states import NodeRole

PREFIX = "SWMTKN"
VERSION = "1"
KEY_BYTES, SECRET_BYTES = 32, 16
KEY_CHARS, SECRET_CHARS = 50, 25
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE36 = re.compile(r"^[0-9a-z]+$")
ROLES = ("worker", "manager")


@dataclass(frozen=True)
class JoinToken:
    server_key: bytes
    secret: bytes

    def __repr__(self) -> str:
        # The secret stays out of reprs, and so out of logs and tracebacks.
        return f"JoinToken(server_key={self.server_key.hex()}, secret=<hidden>)"


def _base36(data: bytes, width: int) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, d = divmod(n, 36)
        out.append(_DIGITS[d])
    return "".join(reversed(out)).rjust(width, "0")


def _unbase36(text: str, size: int, what: str) -> bytes:
    n = int(text, 36)
    if n >> (8 * size):
        raise InvalidArgument(f"invalid join token: the {what} part is out of range")
    return n.to_bytes(size, "big")


def new_token(server_key: bytes, secret: bytes | None = None) -> str:
    """A token pinning ``server_key``; a fresh random secret unless given."""
    if len(server_key) != KEY_BYTES:
        raise InvalidArgument(f"a join token pins a {KEY_BYTES}-byte server key")
    if secret is None:
        secret = secrets.token_bytes(SECRET_BYTES)
    if len(secret) != SECRET_BYTES:
        raise InvalidArgument(f"a join token's secret is {SECRET_BYTES} bytes")
    return f"{PREFIX}-{VERSION}-{_base36(server_key, KEY_CHARS)}-{_base36(secret, SECRET_CHARS)}"


def parse_token(text: str) -> JoinToken:
    """The parts of a token; InvalidArgument saying what is wrong with it, in
    words that never include the token's own text."""
    if not isinstance(text, str):
        raise InvalidArgument("invalid join token: not text")
    parts = text.strip().split("-")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise InvalidArgument(
            "invalid join token: expected SWMTKN-1-<50 characters>-<25 characters>"
        )
    if parts[1] != VERSION:
        raise InvalidArgument("invalid join token: unsupported version (this swarm uses 1)")
    key, secret = parts[2], parts[3]
    if len(key) != KEY_CHARS or not _BASE36.match(key):
        raise InvalidArgument(
            f"invalid join token: the server key part must be {KEY_CHARS} characters 0-9a-z"
        )
    if len(secret) != SECRET_CHARS or not _BASE36.match(secret):
        raise InvalidArgument(
            f"invalid join token: the secret part must be {SECRET_CHARS} characters 0-9a-z"
        )
    return JoinToken(
        server_key=_unbase36(key, KEY_BYTES, "server key"),
        secret=_unbase36(secret, SECRET_BYTES, "secret"),
    )


def _same(given: bytes, stored: str) -> bool:
    # compare_digest takes as long for a near miss as for a far one; an unset
    # token matches nothing.
    return hmac.compare_digest(given, stored.encode()) and bool(stored)


def role_for_token(given: str, tokens: JoinTokens) -> NodeRole | None:
    """The role a presented token admits, or None. Both tokens are always
    compared, so timing tells nothing about which one came close."""
    data = given.strip().encode("utf-8", "replace") if isinstance(given, str) else b""
    worker = _same(data, tokens.worker)
    manager = _same(data, tokens.manager)
    if manager:
        return NodeRole.MANAGER
    if worker:
        return NodeRole.WORKER
    return None


def new_join_tokens(server_key: bytes) -> JoinTokens:
    return JoinTokens(worker=new_token(server_key), manager=new_token(server_key))


def rotate(tokens: JoinTokens, which: str, server_key: bytes) -> JoinTokens:
    """``tokens`` with a fresh ``which`` ("worker" or "manager"); the other unchanged."""
    if which not in ROLES:
        raise InvalidArgument(f"cannot rotate the {which!r} join token: choose worker or manager")
    return replace(tokens, **{which: new_token(server_key)})
