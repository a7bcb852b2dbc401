"""What the leader knows about each follower's log, and its flow control.

A follower is in one of three states:
- PROBE: we don't know where its log diverges; one append per heartbeat
  interval until an answer arrives.
- REPLICATE: its log matches ours up to `match`; appends are streamed
  optimistically, bounded by the in-flight window.
- SNAPSHOT: it needs a snapshot; nothing else is sent until it answers or the
  attempt times out.
"""

from __future__ import annotations

from collections import deque

PROBE = 0
REPLICATE = 1
SNAPSHOT = 2

STATE_NAMES = {PROBE: "probe", REPLICATE: "replicate", SNAPSHOT: "snapshot"}


class Progress:
    __slots__ = (
        "inflight",
        "inflight_bytes",
        "match",
        "max_inflight",
        "max_inflight_bytes",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "snap_elapsed",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int, max_inflight_bytes: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snap_elapsed = 0
        self.recent_active = False
        # (last index, bytes) of each append in flight, oldest first.
        self.inflight: deque[tuple[int, int]] = deque()
        self.inflight_bytes = 0
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes

    def __repr__(self) -> str:
        return (
            f"<Progress {STATE_NAMES[self.state]} match={self.match} next={self.next}"
            f" inflight={len(self.inflight)}>"
        )

    def _reset_inflight(self) -> None:
        self.inflight.clear()
        self.inflight_bytes = 0

    def become_probe(self) -> None:
        # After a snapshot, assume it landed; a rejection will move us back.
        if self.state == SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self._reset_inflight()

    def become_replicate(self) -> None:
        self.state = REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self._reset_inflight()

    def become_snapshot(self, index: int) -> None:
        self.state = SNAPSHOT
        self.pending_snapshot = index
        self.snap_elapsed = 0
        self.probe_sent = False
        self._reset_inflight()

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement up to `index`; False if it tells us nothing new."""
        updated = False
        if self.match < index:
            self.match = index
            self.probe_sent = False
            updated = True
        if self.next < index + 1:
            self.next = index + 1
        return updated

    def maybe_decr_to(self, rejected: int, hint: int) -> bool:
        """A rejection of the append after `rejected`; False if it is stale."""
        if self.state == REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == PROBE:
            return self.probe_sent
        if self.state == REPLICATE:
            return self.full()
        return True

    def full(self) -> bool:
        return len(self.inflight) >= self.max_inflight or (
            self.max_inflight_bytes > 0 and self.inflight_bytes >= self.max_inflight_bytes
        )

    def add_inflight(self, last: int, size: int) -> None:
        self.inflight.append((last, size))
        self.inflight_bytes += size

    def free_le(self, index: int) -> None:
        inflight = self.inflight
        while inflight and inflight[0][0] <= index:
            self.inflight_bytes -= inflight.popleft()[1]

    def free_first(self) -> None:
        if self.inflight:
            self.inflight_bytes -= self.inflight.popleft()[1]
