"""How change batches and store snapshots are written into the Raft log.

A log entry holds one batch and the ``now`` it commits with, so every manager
applies it identically. The objects ride in one list per kind (each decoded
and checked by its own class in one pass); ``ops`` keeps the batch's order,
one small int per change: ``op * 4 + kind``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import msgspec

from pyswarmkit.api import codec
from pyswarmkit.api.objects import KIND_OF, Cluster, Kind, Node, Service, StoreObject, Task
from pyswarmkit.store.memory import KINDS, OPS, Change, Op

# Bumped when the layout changes; a reader refuses what it does not know
# rather than applying it wrongly.
FORMAT = 1
_KIND_CODE: dict[Kind, int] = {k: i for i, k in enumerate(KINDS)}
_OP_CODE = {op: i for i, op in enumerate(OPS)}


class BatchEntry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    format: int
    now: float
    ops: list[int]
    nodes: list[Node]
    services: list[Service]
    tasks: list[Task]
    clusters: list[Cluster]


class StoreSnapshot(msgspec.Struct, array_like=True, frozen=True, gc=False):
    format: int
    index: int
    nodes: list[Node]
    services: list[Service]
    tasks: list[Task]
    clusters: list[Cluster]


class EntryError(ValueError):
    """A log entry or snapshot this version cannot read."""


def encode_batch(changes: Sequence[Change], now: float) -> bytes:
    ops: list[int] = []
    by_kind: tuple[list[StoreObject], ...] = ([], [], [], [])
    for ch in changes:
        kind = _KIND_CODE[KIND_OF[type(ch.obj)]]
        ops.append(_OP_CODE[ch.op] * 4 + kind)
        by_kind[kind].append(ch.obj)
    return codec.encode(
        BatchEntry(
            FORMAT,
            now,
            ops,
            cast(list[Node], by_kind[0]),
            cast(list[Service], by_kind[1]),
            cast(list[Task], by_kind[2]),
            cast(list[Cluster], by_kind[3]),
        )
    )


def decode_batch(data: bytes) -> tuple[list[Change], float]:
    """The batch and its ``now``; EntryError on anything this version cannot apply."""
    try:
        entry = codec.decode(data, BatchEntry)
    except codec.CodecError as exc:
        raise EntryError(f"unreadable store batch: {exc}") from None
    if entry.format != FORMAT:
        raise EntryError(f"store batch format {entry.format}, this version reads {FORMAT}")
    lists: tuple[list[StoreObject], ...] = (
        cast(list[StoreObject], entry.nodes),
        cast(list[StoreObject], entry.services),
        cast(list[StoreObject], entry.tasks),
        cast(list[StoreObject], entry.clusters),
    )
    at = [0, 0, 0, 0]
    changes: list[Change] = []
    try:
        for code in entry.ops:
            op, kind = divmod(code, 4)
            objs = lists[kind]
            changes.append(Change(cast(Op, OPS[op]), objs[at[kind]]))
            at[kind] += 1
    except IndexError:
        raise EntryError("store batch names more objects than it holds") from None
    if at != [len(x) for x in lists]:
        raise EntryError("store batch holds objects no change names")
    return changes, entry.now


def encode_snapshot(index: int, objects: dict[Kind, list[StoreObject]]) -> bytes:
    return codec.encode(
        StoreSnapshot(
            FORMAT,
            index,
            cast(list[Node], objects["node"]),
            cast(list[Service], objects["service"]),
            cast(list[Task], objects["task"]),
            cast(list[Cluster], objects["cluster"]),
        )
    )


def decode_snapshot(data: bytes) -> tuple[int, dict[Kind, list[StoreObject]]]:
    try:
        snap = codec.decode(data, StoreSnapshot, max_size=len(data))
    except codec.CodecError as exc:
        raise EntryError(f"unreadable store snapshot: {exc}") from None
    if snap.format != FORMAT:
        raise EntryError(f"store snapshot format {snap.format}, this version reads {FORMAT}")
    return snap.index, {
        "node": cast(list[StoreObject], snap.nodes),
        "service": cast(list[StoreObject], snap.services),
        "task": cast(list[StoreObject], snap.tasks),
        "cluster": cast(list[StoreObject], snap.clusters),
    }
