"""The durable log: WAL segments plus snapshot files, in one data directory.

    <dir>/wal/<seq>-<first index>.wal    append-only segments (see wal.py)
    <dir>/snap/<term>-<index>.snap       snapshots, written atomically

Writes are grouped: `save()` only queues records; `sync()` writes them with
one write and one fsync, so a Ready of many entries costs one fsync. A
snapshot file counts only once a WAL record names it, so a crash between the
two leaves the previous, consistent state.

Given a `Sealer`, every record and snapshot file is written encrypted (see
wal.py). A log written in clear before that (or by a member without a key)
still opens, and is rewritten sealed as it opens (so is any log opened with
`rewrite=True`, to move it to a new key): the snapshot file first
(replaced atomically), then the whole live log as one new segment under a
temporary name, renamed into place before the old segments are removed, so a
crash at any point leaves a log that opens to the same state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from typing import NamedTuple

import msgpack

from pyswarmkit.faults import fsync_delay

from .crypt import DecryptError, Sealer
from .fs import AppendFile, FileSystem, OsFS
from .messages import EMPTY_HARD_STATE, ConfState, Entry, HardState, Snapshot
from .storage import LoadedState
from .wal import (
    REC_ENTRIES,
    REC_HARD_STATE,
    REC_SNAPSHOT,
    SEALED,
    TornTail,
    WalCorruptError,
    decode_entries,
    decode_hard_state,
    decode_snapshot_marker,
    encode_entries,
    encode_hard_state,
    encode_snapshot_marker,
    open_record,
    parse_segment_name,
    scan,
    segment_name,
)

log = logging.getLogger(__name__)

SNAP_SUFFIX = ".snap"
_SNAP_MAGIC = b"PSKSNAP1"
_SNAP_MAGIC_SEALED = b"PSKSNAP2"  # the body is sealed under the member's key
_SNAP_AD = b"snapshot"
_SNAP_HEADER = struct.Struct("<8sI")


class SnapshotCorruptError(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"raft snapshot corrupt: {path}: {reason}")
        self.path = path


class RecoveryReport(NamedTuple):
    torn_tail: TornTail | None
    segments: int
    entries: int
    snapshot_index: int


def _snap_name(snap: Snapshot) -> str:
    return f"{snap.term:016x}-{snap.index:016x}{SNAP_SUFFIX}"


def _parse_snap_name(name: str) -> tuple[int, int] | None:
    if not name.endswith(SNAP_SUFFIX):
        return None
    parts = name[: -len(SNAP_SUFFIX)].split("-")
    if len(parts) != 2 or not all(len(p) == 16 for p in parts):
        return None
    try:
        return int(parts[1], 16), int(parts[0], 16)  # (index, term)
    except ValueError:
        return None


def encode_snapshot(snap: Snapshot, sealer: Sealer | None = None) -> bytes:
    body: bytes = msgpack.packb(
        [snap.index, snap.term, list(snap.conf.voters), list(snap.conf.learners), snap.data]
    )
    magic = _SNAP_MAGIC
    if sealer is not None:
        body, magic = sealer.seal(body, _SNAP_AD), _SNAP_MAGIC_SEALED
    return _SNAP_HEADER.pack(magic, zlib.crc32(body)) + body


def snapshot_is_sealed(data: bytes) -> bool:
    return data[: len(_SNAP_MAGIC_SEALED)] == _SNAP_MAGIC_SEALED


def decode_snapshot(path: str, data: bytes, sealer: Sealer | None = None) -> Snapshot:
    if len(data) < _SNAP_HEADER.size:
        raise SnapshotCorruptError(path, "file too short")
    magic, crc = _SNAP_HEADER.unpack_from(data)
    body = data[_SNAP_HEADER.size :]
    if magic not in (_SNAP_MAGIC, _SNAP_MAGIC_SEALED):
        raise SnapshotCorruptError(path, "not a snapshot file")
    if zlib.crc32(body) != crc:
        raise SnapshotCorruptError(path, "checksum mismatch")
    if magic == _SNAP_MAGIC_SEALED:
        if sealer is None:
            raise SnapshotCorruptError(path, "encrypted, and no key to open it")
        try:
            body = sealer.open(body, _SNAP_AD)
        except DecryptError as exc:
            raise SnapshotCorruptError(path, f"encrypted snapshot {exc}") from None
    try:
        index, term, voters, learners, payload = msgpack.unpackb(body)
        return Snapshot(index, term, ConfState(tuple(voters), tuple(learners)), payload)
    except (ValueError, TypeError) as e:
        raise SnapshotCorruptError(path, f"undecodable: {e}") from e


class _Segment(NamedTuple):
    seq: int
    first_index: int
    path: str


class DurableStorage:
    """Implements the `Storage` protocol on a directory."""

    def __init__(
        self,
        path: str,
        fs: FileSystem | None = None,
        segment_bytes: int = 64 << 20,
        keep_snapshots: int = 2,
        sealer: Sealer | None = None,
        rewrite: bool = False,
    ) -> None:
        self.fs: FileSystem = fs if fs is not None else OsFS(sync_delay=fsync_delay())
        self._sealer = sealer
        # Set by recovery: something on disk was written in clear.
        self._found_plain = False
        self.path = path
        self._wal_dir = os.path.join(path, "wal")
        self._snap_dir = os.path.join(path, "snap")
        self._segment_bytes = segment_bytes
        self._keep_snapshots = max(1, keep_snapshots)
        for d in (path, self._wal_dir, self._snap_dir):
            self.fs.makedirs(d)
        self._segments: list[_Segment] = []
        self._pending: list[bytes] = []
        self._dirty = False
        self._recovered_tail_size = 0
        state, self.recovery = self._recover()
        self._state: LoadedState | None = state
        self._hs = state.hard_state
        self._snap = state.snapshot
        if state.entries:
            self._last_index = state.entries[-1].index
        else:
            self._last_index = state.snapshot.index if state.snapshot else 0
        self.resealed = False
        if sealer is not None and (self._found_plain or rewrite):
            self._reseal(state)
            self.resealed = True
        if self._segments:
            self._file: AppendFile = self.fs.open_append(self._segments[-1].path)
            self._seg_size = self._recovered_tail_size
        else:
            self._open_segment(0)

    # -- Storage protocol

    def load(self) -> LoadedState:
        if self._state is None:
            raise RuntimeError("load() is only available once, right after opening")
        state, self._state = self._state, None
        return state

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        if snapshot is not None:
            self._write_snapshot_file(snapshot)
            self._pending.append(
                encode_snapshot_marker(snapshot.index, snapshot.term, True, self._sealer)
            )
            self._snap = snapshot
            self._last_index = snapshot.index
        if entries:
            self._pending.extend(encode_entries(entries, self._sealer))
            self._last_index = entries[-1].index
        if hard_state is not None:
            self._pending.append(encode_hard_state(hard_state, self._sealer))
            self._hs = hard_state

    def flush(self) -> None:
        """Write queued records without waiting for the disk (sync() does both)."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._file.write(data)
            self._seg_size += len(data)
            self._dirty = True

    def sync(self) -> None:
        self.flush()
        if self._dirty:
            self._file.sync()
            self._dirty = False
            if self._seg_size >= self._segment_bytes:
                self._open_segment(self._segments[-1].seq + 1)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        if self._snap is not None and snapshot.index <= self._snap.index:
            return
        self._write_snapshot_file(snapshot)
        self._pending.append(
            encode_snapshot_marker(snapshot.index, snapshot.term, False, self._sealer)
        )
        self._snap = snapshot
        self.sync()
        self._prune_snapshots()

    def compact(self, index: int) -> None:
        """Remove whole segments holding nothing above `index` (capped by the snapshot)."""
        if self._snap is None:
            return
        index = min(index, self._snap.index)
        segs = self._segments
        k = 0
        # Segment k+1 was started when the log ended below its first index, so
        # everything in segments <= k above `index` was rewritten later.
        while k + 1 < len(segs) and segs[k + 1].first_index <= index + 1:
            k += 1
        for seg in segs[:k]:
            self.fs.remove(seg.path)
        del segs[:k]

    def close(self) -> None:
        self.sync()
        self._file.close()

    def abandon(self) -> None:
        """Close without writing what is queued: a write has failed, and
        nothing may follow it in the log (the next open cuts a torn record)."""
        self._pending.clear()
        self._dirty = False
        with contextlib.suppress(OSError):
            self._file.close()

    @property
    def segment_paths(self) -> list[str]:
        return [s.path for s in self._segments]

    # -- internals

    def _open_segment(self, seq: int) -> None:
        if self._segments:
            self._file.close()
        path = os.path.join(self._wal_dir, segment_name(seq, self._last_index + 1))
        self._file = self.fs.open_append(path)
        self.fs.sync_dir(self._wal_dir)
        self._segments.append(_Segment(seq, self._last_index + 1, path))
        # Each segment restates the hard state and snapshot, so older segments
        # can be deleted without losing them.
        header = [encode_hard_state(self._hs, self._sealer)]
        if self._snap is not None:
            header.append(
                encode_snapshot_marker(self._snap.index, self._snap.term, False, self._sealer)
            )
        data = b"".join(header)
        self._file.write(data)
        self._file.sync()
        self._seg_size = len(data)

    def _write_snapshot_file(self, snap: Snapshot) -> None:
        final = os.path.join(self._snap_dir, _snap_name(snap))
        tmp = final + ".tmp"
        if os.path.basename(tmp) in self.fs.listdir(self._snap_dir):
            self.fs.remove(tmp)
        f = self.fs.open_append(tmp)
        f.write(encode_snapshot(snap, self._sealer))
        f.sync()
        f.close()
        self.fs.rename(tmp, final)
        self.fs.sync_dir(self._snap_dir)

    def _snap_files(self) -> list[tuple[int, int, str]]:
        out = []
        for name in self.fs.listdir(self._snap_dir):
            parsed = _parse_snap_name(name)
            if parsed is not None:
                out.append((parsed[0], parsed[1], os.path.join(self._snap_dir, name)))
        out.sort()
        return out

    def _prune_snapshots(self) -> None:
        files = self._snap_files()
        current = self._snap.index if self._snap else 0
        older = [f for f in files if f[0] <= current]
        for _, _, path in older[: -self._keep_snapshots]:
            self.fs.remove(path)

    def _reseal(self, state: LoadedState) -> None:
        """Rewrite the live state sealed under the sealer's key: what recovery
        found in clear, or all of it when moving to a new key (module doc)."""
        fs, sealer, snap = self.fs, self._sealer, state.snapshot
        for index, term, path in self._snap_files():
            if snap is not None and (index, term) == (snap.index, snap.term):
                self._write_snapshot_file(snap)  # same name: replaced atomically
            else:
                fs.remove(path)  # unused once the log names only the current one
        fs.sync_dir(self._snap_dir)
        first = state.entries[0].index if state.entries else self._last_index + 1
        seq = self._segments[-1].seq + 1 if self._segments else 0
        final = os.path.join(self._wal_dir, segment_name(seq, first))
        records = [encode_hard_state(state.hard_state, sealer)]
        if snap is not None:
            records.append(encode_snapshot_marker(snap.index, snap.term, False, sealer))
        records.extend(encode_entries(state.entries, sealer))
        data = b"".join(records)
        f = fs.open_append(final + ".tmp")
        f.write(data)
        f.sync()
        f.close()
        fs.rename(final + ".tmp", final)
        fs.sync_dir(self._wal_dir)
        for seg in self._segments:
            fs.remove(seg.path)
        fs.sync_dir(self._wal_dir)
        self._segments = [_Segment(seq, first, final)]
        self._recovered_tail_size = len(data)
        log.info("raft log at %s rewritten, encrypted under its current key", self.path)

    def _recover(self) -> tuple[LoadedState, RecoveryReport]:
        fs = self.fs
        for d in (self._snap_dir, self._wal_dir):
            for name in fs.listdir(d):
                if name.endswith(".tmp"):
                    fs.remove(os.path.join(d, name))
        segs = []
        for name in fs.listdir(self._wal_dir):
            parsed = parse_segment_name(name)
            if parsed is not None:
                segs.append(_Segment(parsed[0], parsed[1], os.path.join(self._wal_dir, name)))
        segs.sort()
        hs = EMPTY_HARD_STATE
        base: int | None = None  # index just before ents[0]
        ents: list[Entry] = []
        markers: set[tuple[int, int]] = set()
        torn: TornTail | None = None
        for k, seg in enumerate(segs):
            data = fs.read(seg.path)
            records, seg_torn = scan(seg.path, data, is_last=k == len(segs) - 1)
            for rec in records:
                if not rec.type & SEALED:
                    self._found_plain = True
                rtype, payload = open_record(seg.path, rec, self._sealer)
                try:
                    if rtype == REC_ENTRIES:
                        new = decode_entries(payload)
                        if not new:
                            continue
                        first = new[0].index
                        if base is None or first <= base:
                            base, ents = first - 1, new
                        elif first > base + len(ents) + 1:
                            raise WalCorruptError(
                                seg.path,
                                rec.offset,
                                f"entry {first} does not follow entry {base + len(ents)}",
                            )
                        else:
                            del ents[first - base - 1 :]
                            ents.extend(new)
                    elif rtype == REC_HARD_STATE:
                        hs = decode_hard_state(payload)
                    elif rtype == REC_SNAPSHOT:
                        index, term, reset = decode_snapshot_marker(payload)
                        markers.add((index, term))
                        if reset:
                            base, ents = index, []
                    else:
                        raise WalCorruptError(seg.path, rec.offset, f"unknown record {rtype}")
                except (ValueError, TypeError, struct.error, msgpack.UnpackException) as e:
                    raise WalCorruptError(seg.path, rec.offset, f"undecodable record: {e}") from e
            self._recovered_tail_size = len(data)
            if seg_torn is not None:
                torn = seg_torn
                self._recovered_tail_size = seg_torn.offset
                fs.truncate(seg.path, seg_torn.offset)
                log.warning(
                    "raft WAL: cut a torn last record in %s at offset %d (%d bytes dropped)",
                    seg_torn.path,
                    seg_torn.offset,
                    seg_torn.dropped,
                )
        self._segments = segs

        snap: Snapshot | None = None
        for index, term, path in reversed(self._snap_files()):
            if (index, term) in markers:
                raw = fs.read(path)
                if not snapshot_is_sealed(raw):
                    self._found_plain = True
                snap = decode_snapshot(path, raw, self._sealer)
                if (snap.index, snap.term) != (index, term):
                    raise SnapshotCorruptError(path, "contents do not match its name")
                break

        where = self._wal_dir
        if snap is not None:
            if base is not None and ents:
                if base > snap.index:
                    raise WalCorruptError(
                        where, 0, f"entries start at {base + 1}, after snapshot {snap.index}"
                    )
                if base + len(ents) < snap.index:
                    base, ents = snap.index, []
                elif base < snap.index and ents[snap.index - base - 1].term != snap.term:
                    raise WalCorruptError(where, 0, f"entry {snap.index} disagrees with snapshot")
            if hs.commit < snap.index:
                hs = hs._replace(commit=snap.index)
        elif base:
            raise WalCorruptError(where, 0, f"entries start at {base + 1} but no snapshot")
        last = base + len(ents) if base is not None else (snap.index if snap else 0)
        if snap is not None:
            last = max(last, snap.index)
        if hs.commit > last:
            raise WalCorruptError(where, 0, f"commit {hs.commit} beyond last entry {last}")
        report = RecoveryReport(torn, len(segs), len(ents), snap.index if snap else 0)
        return LoadedState(hs, snap, ents), report
