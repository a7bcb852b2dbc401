"""Write-ahead log records and segment scanning.

A segment is a sequence of records:

    length u32 | crc32(length) u32 | crc32(body) u32 | body (type u8 + payload)

The length has its own checksum so a damaged length is told apart from a
write cut short by a crash: a torn write leaves a *prefix* of what was
written, so only the last record of the last segment can be incomplete (or,
after a power cut on a real disk, be followed by zeros). Anything else that
does not check out is corruption, reported with the file and offset.

A sealed record (encryption at rest) has its type's high bit set and its
payload sealed: ``nonce | AES-GCM ciphertext | tag`` under the manager's key,
with the plain type as associated data. The framing and the CRC stay outside
and cover the ciphertext, so torn tails are found exactly as before; plain
records (written before encryption) still read.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import msgpack

from .crypt import DecryptError, Sealer
from .messages import Entry, HardState

REC_ENTRIES = 1
REC_HARD_STATE = 2
REC_SNAPSHOT = 3  # a snapshot at (index, term) is durable; `reset` drops older entries
SEALED = 0x80  # or-ed into a type: the payload is sealed
_TYPE_AD = [bytes((t,)) for t in range(128)]

_HEADER = struct.Struct("<III")
HEADER_SIZE = _HEADER.size
_LEN = struct.Struct("<I")
_HS = struct.Struct("<QQQ")
_SNAP = struct.Struct("<QQB")
MAX_RECORD = 1 << 30
ENTRIES_PER_RECORD = 4096

_new_tuple = tuple.__new__


class WalCorruptError(Exception):
    """The log is damaged somewhere other than its tail; never silently skipped."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(
            f"raft WAL corrupt: {path} at offset {offset}: {reason}; refusing to start "
            "(restore this member's data directory or remove and re-add the member)"
        )
        self.path = path
        self.offset = offset
        self.reason = reason


class TornTail(NamedTuple):
    path: str
    offset: int  # where the incomplete record started; the file is cut here
    dropped: int  # bytes removed


def encode_record(rtype: int, payload: bytes) -> bytes:
    body = bytes((rtype,)) + payload
    n = len(body)
    if n > MAX_RECORD:
        raise ValueError(f"WAL record of {n} bytes is too large")
    return _HEADER.pack(n, zlib.crc32(_LEN.pack(n)), zlib.crc32(body)) + body


def encode_sealable(rtype: int, payload: bytes, sealer: Sealer | None) -> bytes:
    if sealer is None:
        return encode_record(rtype, payload)
    return encode_record(rtype | SEALED, sealer.seal(payload, _TYPE_AD[rtype]))


def open_record(path: str, rec: Record, sealer: Sealer | None) -> tuple[int, bytes]:
    """(plain type, plain payload) of a record, sealed or not."""
    if not rec.type & SEALED:
        return rec.type, rec.payload
    rtype = rec.type & ~SEALED
    if sealer is None:
        raise WalCorruptError(path, rec.offset, "an encrypted record, and no key to open it")
    try:
        return rtype, sealer.open(rec.payload, _TYPE_AD[rtype])
    except DecryptError as exc:
        raise WalCorruptError(path, rec.offset, f"encrypted record {exc}") from None


def encode_entries(entries: Sequence[Entry], sealer: Sealer | None = None) -> list[bytes]:
    out = []
    for i in range(0, len(entries), ENTRIES_PER_RECORD):
        chunk = entries[i : i + ENTRIES_PER_RECORD]
        out.append(encode_sealable(REC_ENTRIES, msgpack.packb(chunk), sealer))
    return out


def encode_hard_state(hs: HardState, sealer: Sealer | None = None) -> bytes:
    return encode_sealable(REC_HARD_STATE, _HS.pack(*hs), sealer)


def encode_snapshot_marker(
    index: int, term: int, reset: bool, sealer: Sealer | None = None
) -> bytes:
    return encode_sealable(REC_SNAPSHOT, _SNAP.pack(index, term, 1 if reset else 0), sealer)


def decode_entries(payload: bytes) -> list[Entry]:
    raw = msgpack.unpackb(payload, use_list=False)
    for r in raw:
        if len(r) != 4 or not isinstance(r[3], bytes):
            raise ValueError("malformed entry")
    return [_new_tuple(Entry, r) for r in raw]


def decode_hard_state(payload: bytes) -> HardState:
    return HardState(*_HS.unpack(payload))


def decode_snapshot_marker(payload: bytes) -> tuple[int, int, bool]:
    index, term, reset = _SNAP.unpack(payload)
    return index, term, bool(reset)


class Record(NamedTuple):
    type: int
    payload: bytes
    offset: int


def scan(path: str, data: bytes, is_last: bool) -> tuple[list[Record], TornTail | None]:
    """Split a segment into records; cut a torn tail only in the last segment."""
    records: list[Record] = []
    for rec in _iter_records(path, data, is_last):
        if isinstance(rec, TornTail):
            return records, rec
        records.append(rec)
    return records, None


def _iter_records(path: str, data: bytes, is_last: bool) -> Iterator[Record | TornTail]:
    end = len(data)
    pos = 0
    view = memoryview(data)

    def torn_or_corrupt(reason: str) -> TornTail:
        if is_last:
            return TornTail(path, pos, end - pos)
        raise WalCorruptError(path, pos, reason + " (not the last segment)")

    while pos < end:
        if end - pos < HEADER_SIZE:
            yield torn_or_corrupt("truncated record header")
            return
        n, len_crc, body_crc = _HEADER.unpack_from(data, pos)
        if zlib.crc32(view[pos : pos + 4]) != len_crc:
            if is_last and not any(view[pos:]):
                yield TornTail(path, pos, end - pos)  # zeros after a power cut
                return
            raise WalCorruptError(path, pos, "bad record length checksum")
        if n == 0 or n > MAX_RECORD:
            raise WalCorruptError(path, pos, f"impossible record length {n}")
        body_end = pos + HEADER_SIZE + n
        if body_end > end:
            yield torn_or_corrupt("truncated record body")
            return
        body = view[pos + HEADER_SIZE : body_end]
        if zlib.crc32(body) != body_crc:
            if body_end == end:
                yield torn_or_corrupt("bad checksum in the last record")
                return
            raise WalCorruptError(path, pos, "bad record checksum")
        yield Record(body[0], bytes(body[1:]), pos)
        pos = body_end


SEGMENT_SUFFIX = ".wal"


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    if not name.endswith(SEGMENT_SUFFIX):
        return None
    stem = name[: -len(SEGMENT_SUFFIX)]
    parts = stem.split("-")
    if len(parts) != 2 or not all(len(p) == 16 for p in parts):
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        return None
