"""Frames of the network transport, and the small pure rules around them.

A frame is one MessagePack array whose items are encoded envelopes. Envelopes
are encoded once, by the sender's thread; a frame is an array header followed
by their bytes, so batching costs a join, not a second encoding.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

# The most bytes an array header takes (0xdd and a 32-bit count).
HEADER_MAX = 5
# Batches are cut at about this size, well under any sensible frame cap:
# one huge frame would hold up everything behind it on the receiving side.
BATCH_BYTES = 256 * 1024


def array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def frame_of(encoded: list[bytes]) -> bytes:
    return array_header(len(encoded)) + b"".join(encoded)


@dataclass(frozen=True, slots=True)
class Oversize:
    """An envelope that alone does not fit in a frame."""

    item: object
    size: int


def batches(
    items: Iterable[tuple[bytes, T]], max_frame: int, batch_bytes: int = BATCH_BYTES
) -> Iterator[tuple[bytes, list[T]] | Oversize]:
    """Cut ``(encoded, tag)`` pairs, in order, into frames no larger than
    ``max_frame`` (and about ``batch_bytes``); yields each frame with the tags
    of what it holds, or an ``Oversize`` for an envelope too large to send."""
    limit = min(max_frame, max(batch_bytes, 1))
    datas: list[bytes] = []
    tags: list[T] = []
    size = 0
    for data, tag in items:
        n = len(data)
        if n + HEADER_MAX > max_frame:
            yield Oversize(tag, n)
            continue
        if datas and size + n + HEADER_MAX > limit:
            yield frame_of(datas), tags
            datas, tags, size = [], [], 0
        datas.append(data)
        tags.append(tag)
        size += n
    if datas:
        yield frame_of(datas), tags


@dataclass
class LogLimiter:
    """At most one log line per key per ``every`` seconds; the lines held back
    are counted and reported with the next one let through."""

    every: float = 10.0
    max_keys: int = 4096
    _seen: dict[object, list[float]] = field(default_factory=dict)

    def allow(self, key: object, now: float) -> int | None:
        """None: stay quiet. Otherwise log, saying how many were held back."""
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.every:
            entry[1] += 1
            return None
        if entry is None and len(self._seen) >= self.max_keys:
            # Many keys (an attacker making new ones): forget the stale ones.
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.every}
            if len(self._seen) >= self.max_keys:
                return None
        held = int(entry[1]) if entry is not None else 0
        self._seen[key] = [now, 0]
        return held


def held_note(held: int) -> str:
    return f" ({held} more like it since the last report)" if held else ""
