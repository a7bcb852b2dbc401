"""How change batches and store snapshots are written into the Raft log.

A log entry holds one batch and the ``now`` it commits with, so every manager
applies it identically. The objects ride in one list per kind (each decoded
and checked by its own class in one pass); ``ops`` keeps the batch's order,
one small int per change: ``op * 4 + kind`` for the first four kinds (node,
service, task, cluster), ``12 + op * 2 + (kind - 4)`` for the kinds that came
later (secret, config). Their lists are trailing fields: entries and
snapshots written before they existed still read, and a reader of before
them reads a batch that holds none (it ignores trailing fields).

A group entry holds several independent batches (writes that arrived at the
leader together): one log entry, one fsync share and one apply pass for all of
them, while each batch still commits or fails on its own. Its bytes are the
batches' own encodings behind a two-element header, so grouping costs no
second encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, cast

import msgspec

from pyswarmkit.api import codec
from pyswarmkit.api.objects import (
    KIND_OF,
    Cluster,
    Config,
    Kind,
    Node,
    Secret,
    Service,
    StoreObject,
    Task,
)
from pyswarmkit.store.memory import KINDS, OPS, Change, Op

# Bumped when the layout changes; a reader refuses what it does not know
# rather than applying it wrongly.
FORMAT = 1
GROUP_FORMAT = 2
# How a group entry starts: a 2-array whose first element is GROUP_FORMAT (a
# single batch starts with a 7-array whose first element is FORMAT).
_GROUP_HEAD = b"\x92\x02"
_KIND_CODE: dict[Kind, int] = {k: i for i, k in enumerate(KINDS)}
_OP_CODE = {op: i for i, op in enumerate(OPS)}
_OP_OF: tuple[Op, ...] = cast(tuple[Op, ...], OPS)


# The first four kinds: op * 4 + kind (0..11); the later ones from here on.
_LATER = len(OPS) * 4
_LATER_KINDS = len(KINDS) - 4
OpCode = Annotated[int, msgspec.Meta(ge=0, le=_LATER + len(OPS) * _LATER_KINDS - 1)]


def _op_code(op: int, kind: int) -> int:
    return op * 4 + kind if kind < 4 else _LATER + op * _LATER_KINDS + kind - 4


class BatchEntry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    format: int
    now: float
    ops: list[OpCode]
    nodes: list[Node]
    services: list[Service]
    tasks: list[Task]
    clusters: list[Cluster]
    secrets: list[Secret] = []
    configs: list[Config] = []


class GroupEntry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    format: int
    batches: list[BatchEntry]


class StoreSnapshot(msgspec.Struct, array_like=True, frozen=True, gc=False):
    format: int
    index: int
    nodes: list[Node]
    services: list[Service]
    tasks: list[Task]
    clusters: list[Cluster]
    secrets: list[Secret] = []
    configs: list[Config] = []


class EntryError(ValueError):
    """A log entry or snapshot this version cannot read."""


def encode_batch(changes: Sequence[Change], now: float) -> bytes:
    ops: list[int] = []
    by_kind: tuple[list[StoreObject], ...] = tuple([] for _ in KINDS)
    for ch in changes:
        kind = _KIND_CODE[KIND_OF[type(ch.obj)]]
        ops.append(_op_code(_OP_CODE[ch.op], kind))
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
            cast(list[Secret], by_kind[4]),
            cast(list[Config], by_kind[5]),
        )
    )


def encode_group(batches: Sequence[bytes]) -> bytes:
    """One entry holding ``batches`` (each an ``encode_batch`` output, in the
    order they are to be applied). A lone batch is written as itself."""
    if len(batches) == 1:
        return batches[0]
    n = len(batches)
    if n < 16:
        head = bytes((0x90 | n,))
    elif n < 1 << 16:
        head = b"\xdc" + n.to_bytes(2, "big")
    else:
        head = b"\xdd" + n.to_bytes(4, "big")
    return b"".join((_GROUP_HEAD, head, *batches))


def batches_in(data: bytes) -> int:
    """How many batches an entry holds, from its header alone (0 when the
    header is not one this version writes: ``decode_entry`` says why)."""
    if data[:2] != _GROUP_HEAD:
        return 1
    head = data[2:3]
    if not head:
        return 0
    first = head[0]
    if first & 0xF0 == 0x90:
        return first & 0x0F
    if first == 0xDC:
        return int.from_bytes(data[3:5], "big")
    if first == 0xDD:
        return int.from_bytes(data[3:7], "big")
    return 0


def decode_entry(data: bytes) -> list[tuple[list[Change], float]]:
    """The batches of an entry (one, or a group's), each with its ``now``;
    EntryError on anything this version cannot apply."""
    if data[:2] != _GROUP_HEAD:
        return [decode_batch(data)]
    try:
        group = codec.decode(data, GroupEntry)
    except codec.CodecError as exc:
        raise EntryError(f"unreadable store batch group: {exc}") from None
    return [_changes_of(entry) for entry in group.batches]


def decode_batch(data: bytes) -> tuple[list[Change], float]:
    """The batch and its ``now``; EntryError on anything this version cannot apply."""
    try:
        entry = codec.decode(data, BatchEntry)
    except codec.CodecError as exc:
        raise EntryError(f"unreadable store batch: {exc}") from None
    return _changes_of(entry)


def _changes_of(entry: BatchEntry) -> tuple[list[Change], float]:
    if entry.format != FORMAT:
        raise EntryError(f"store batch format {entry.format}, this version reads {FORMAT}")
    lists: tuple[list[StoreObject], ...] = (
        cast(list[StoreObject], entry.nodes),
        cast(list[StoreObject], entry.services),
        cast(list[StoreObject], entry.tasks),
        cast(list[StoreObject], entry.clusters),
        cast(list[StoreObject], entry.secrets),
        cast(list[StoreObject], entry.configs),
    )
    at = [0] * len(KINDS)
    changes: list[Change] = []
    append = changes.append
    try:
        for code in entry.ops:
            if code < _LATER:
                kind, op = code & 3, code >> 2
            else:
                op, later = divmod(code - _LATER, _LATER_KINDS)
                kind = 4 + later
            append(Change(_OP_OF[op], lists[kind][at[kind]]))
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
            cast(list[Secret], objects.get("secret", [])),
            cast(list[Config], objects.get("config", [])),
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
        "secret": cast(list[StoreObject], snap.secrets),
        "config": cast(list[StoreObject], snap.configs),
    }
