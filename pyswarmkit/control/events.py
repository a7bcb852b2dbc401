"""The manager's recent history: a bounded ring of committed store batches,
for ``events.since`` (and the ``swarmctl events`` to come).

Each committed batch is kept as its store index, the time it was committed
(wall clock, given by the caller: this core reads no clock), and one row per
changed object. A reader asks for what came after an index it saw; when
batches after that index have already left the ring it is told so, never
handed a history with a hole in it.

Rows are plain lists, one column per name in ``FIELDS``, so a reply of
10,000 events stays small and cheap to encode:

    index, time, op, kind, id, state, desired_state, node_id, service_id

``state`` is the task's observed state (or the node's status) by name,
``desired_state`` the task's desired state; columns that do not apply to a
kind are empty strings.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from pyswarmkit.api.errors import FailedPrecondition, InvalidArgument
from pyswarmkit.api.objects import Node, Task
from pyswarmkit.store.memory import KINDS, EventBatch

FIELDS = (
    "index",
    "time",
    "op",
    "kind",
    "id",
    "state",
    "desired_state",
    "node_id",
    "service_id",
)
# Events (rows) the ring holds at most; whole batches leave it, oldest first.
DEFAULT_CAPACITY = 200_000
# Rows one answer holds at most, unless the request asks for fewer. A batch is
# never split, so one larger batch still comes whole.
DEFAULT_LIMIT = 20_000

Row = list[Any]


def row(index: int, time: float, op: str, obj: Any, kind: str) -> Row:
    if isinstance(obj, Task):
        return [
            index,
            time,
            op,
            kind,
            obj.id,
            obj.status.state.name,
            obj.desired_state.name,
            obj.node_id,
            obj.service_id,
        ]
    if isinstance(obj, Node):
        return [index, time, op, kind, obj.id, obj.status.state.name, "", "", ""]
    return [index, time, op, kind, obj.id, "", "", "", ""]


@dataclass(slots=True)
class Page:
    rows: list[Row]
    # Pass this as the next ``index``: everything up to it has been answered.
    next: int
    # Events after this index are all still held.
    oldest: int


class EventRing:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the ring must hold at least one event")
        self.capacity = capacity
        # (index, rows) per committed batch, oldest first.
        self._batches: collections.deque[tuple[int, list[Row]]] = collections.deque()
        self._rows = 0
        # The newest index recorded, and the newest index that left the ring.
        self.newest = 0
        self.dropped = 0
        # Batches are kept from the first reader on: until someone reads,
        # keeping rows of every batch (100,000 tasks in one) is work for nobody.
        self.reading = False

    def __len__(self) -> int:
        return self._rows

    def start_at(self, index: int) -> None:
        """Nothing before ``index`` will be recorded: readers start there."""
        if not self._batches:
            self.newest = self.dropped = max(self.newest, index)

    def record(self, batch: EventBatch, time: float) -> None:
        """Keep one committed batch, committed at ``time``."""
        index = batch.index
        if not self.reading:
            self.newest = self.dropped = max(self.newest, index)
            return
        rows = [row(index, time, ev.op, ev.obj, ev.kind) for ev in batch.events]
        self._batches.append((index, rows))
        self._rows += len(rows)
        self.newest = max(self.newest, index)
        while self._rows > self.capacity and len(self._batches) > 1:
            old, dropped = self._batches.popleft()
            self._rows -= len(dropped)
            self.dropped = max(self.dropped, old)

    def since(
        self, index: int | None, kinds: frozenset[str] | None = None, limit: int = DEFAULT_LIMIT
    ) -> Page:
        """The events of the batches committed after ``index``, at most about
        ``limit`` of them, of ``kinds`` only if given. ``index`` None: none,
        only where the ring is now (a reader's starting point)."""
        self.reading = True
        if index is None:
            return Page([], self.newest, self.dropped)
        if index < self.dropped:
            raise FailedPrecondition(
                f"events after index {index} have left the event ring (it holds those after "
                f"{self.dropped}): start again from the current index"
            )
        batches = self._batches
        # Readers follow the newest batches: look from the end.
        start = len(batches)
        while start > 0 and batches[start - 1][0] > index:
            start -= 1
        out: list[Row] = []
        # Everything held answered: up to the newest index (indexes with no
        # batch, a refused write's, are answered too).
        last = max(index, self.newest)
        for i in range(start, len(batches)):
            rows = batches[i][1]
            if out and len(out) + len(rows) > limit:
                last = batches[i - 1][0]
                break
            if kinds is None:
                out.extend(rows)
            else:
                out.extend(r for r in rows if r[3] in kinds)
        return Page(out, last, self.dropped)


def parse_request(body: dict[str, Any]) -> tuple[int | None, frozenset[str] | None, int]:
    """``events.since``'s arguments: ``index`` (omitted: where the ring is
    now), ``kinds`` (a list of object kinds), ``limit`` (rows per answer)."""
    index = body.get("index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise InvalidArgument("request field 'index' must be a whole number of at least 0")
    kinds = body.get("kinds")
    chosen: frozenset[str] | None = None
    if kinds is not None:
        if not isinstance(kinds, list | tuple) or not all(isinstance(k, str) for k in kinds):
            raise InvalidArgument("request field 'kinds' must be a list of object kinds")
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise InvalidArgument(
                f"unknown object kind {unknown[0]!r} in 'kinds': choose from {', '.join(KINDS)}"
            )
        chosen = frozenset(kinds)
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgument("request field 'limit' must be a whole number of at least 1")
    return index, chosen, limit
