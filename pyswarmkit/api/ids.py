"""Object identifiers: 25 random base36 characters, as SwarmKit's."""

from __future__ import annotations

import secrets

ID_LENGTH = 25
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# 25 base36 digits hold 129 bits; 128 random bits always fit.
_BITS = 128


# Five base36 digits at a time: a chunk below 36**5 fits one machine word, so
# the big-integer divisions are five rather than twenty-five, and each chunk is
# spelled by two table lookups (3 + 2 digits).
_CHUNK = 36**5
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_TRIPLES = [a + b for a in _ALPHABET for b in _PAIRS]


def to_base36(value: int, width: int) -> str:
    """Encode a non-negative integer in base36, zero-padded to `width` characters."""
    if value < 0:
        raise ValueError("base36 takes non-negative integers")
    parts: list[str] = []
    while value:
        value, chunk = divmod(value, _CHUNK)
        high, low = divmod(chunk, 1296)
        parts.append(_TRIPLES[high] + _PAIRS[low])
    parts.reverse()
    text = "".join(parts).lstrip("0") or "0"
    if len(text) > width:
        raise ValueError(f"value does not fit in {width} base36 digits")
    return text.rjust(width, "0")


def from_base36(text: str) -> int:
    return int(text, 36)


def new_id() -> str:
    return to_base36(secrets.randbits(_BITS), ID_LENGTH)


def is_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in _ALPHABET for c in text)
