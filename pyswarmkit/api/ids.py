"""Object identifiers: 25 random base36 characters, as SwarmKit's."""

from __future__ import annotations

import secrets

ID_LENGTH = 25
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# 25 base36 digits hold 129 bits; 128 random bits always fit.
_BITS = 128


def to_base36(value: int, width: int) -> str:
    """Encode a non-negative integer in base36, zero-padded to `width` characters."""
    if value < 0:
        raise ValueError("base36 takes non-negative integers")
    digits: list[str] = []
    while value:
        value, rem = divmod(value, 36)
        digits.append(_ALPHABET[rem])
    text = "".join(reversed(digits)) or "0"
    if len(text) > width:
        raise ValueError(f"value does not fit in {width} base36 digits")
    return text.rjust(width, "0")


def from_base36(text: str) -> int:
    return int(text, 36)


def new_id() -> str:
    return to_base36(secrets.randbits(_BITS), ID_LENGTH)


def is_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in _ALPHABET for c in text)
