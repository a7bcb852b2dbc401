"""Raft messages larger than one transport frame travel in parts.

A snapshot of a large store, or one entry holding a large batch (a service of
100,000 replicas is created in one), can be larger than the transport's frame
cap. The sender then splits the encoded messages into ordered parts of at
most ``CHUNK`` bytes; the receiver puts them together per sender and steps the
messages once the last part is in. A part lost or out of order spoils only
that bundle: Raft sends again what was not answered (a follower's log is
probed again, a snapshot sent again after an election timeout).

Pure: no clock, no sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Bytes per part: well under the transport's 16 MiB frame cap.
CHUNK = 4 * 1024 * 1024
# The largest bundle a receiver puts together (what it holds in memory).
MAX_SIZE = 4 * 1024 * 1024 * 1024


def split(data: bytes, chunk: int = CHUNK) -> list[tuple[int, bytes]]:
    """``data`` as (offset, bytes) parts in order."""
    return [(at, data[at : at + chunk]) for at in range(0, len(data), chunk)]


@dataclass
class _Bundle:
    bundle: int
    size: int
    parts: list[bytes] = field(default_factory=list)
    received: int = 0


class Assembler:
    """Bundles being received, at most one per sender (parts of one sender
    arrive in order, so a new bundle means the last one is gone)."""

    def __init__(self, max_size: int = MAX_SIZE) -> None:
        self.max_size = max_size
        self._bundles: dict[str, _Bundle] = {}

    def add(
        self, sender: str, bundle: int, offset: int, size: int, data: bytes
    ) -> tuple[bytes | None, str]:
        """Take one part: (the whole bundle once its last part is in, or
        None; why the part was refused, or "")."""
        if not 0 < size <= self.max_size:
            self._bundles.pop(sender, None)
            return None, f"a bundle of {size} bytes (at most {self.max_size})"
        current = self._bundles.get(sender)
        if offset == 0:
            current = self._bundles[sender] = _Bundle(bundle, size)
        elif current is None or (current.bundle, current.size) != (bundle, size):
            return None, "a part of a bundle whose start was not received"
        if offset != current.received or not data or offset + len(data) > size:
            del self._bundles[sender]
            return None, f"a part at offset {offset} where {current.received} was expected"
        current.parts.append(data)
        current.received += len(data)
        if current.received < size:
            return None, ""
        del self._bundles[sender]
        return b"".join(current.parts), ""

    def forget(self, sender: str) -> None:
        self._bundles.pop(sender, None)
