"""The durable log: torn tails, corruption, crashes between write and fsync,
segments, compaction and atomic snapshots."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pyswarmkit.raft.durable import DurableStorage, SnapshotCorruptError
from pyswarmkit.raft.fs import MemFS, OsFS
from pyswarmkit.raft.messages import ConfState, Entry, HardState, Snapshot
from pyswarmkit.raft.wal import WalCorruptError, scan

pytestmark = pytest.mark.unit

DIR = "/node"


def ents(first: int, n: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, 0, b"e%d" % i) for i in range(first, first + n)]


def open_mem(fs: MemFS, **kw: int) -> DurableStorage:
    return DurableStorage(DIR, fs, **kw)


def segment(fs: MemFS) -> str:
    names = fs.listdir(f"{DIR}/wal")
    return f"{DIR}/wal/{names[-1]}"


def copy_fs(src: MemFS, overrides: dict[str, bytes]) -> MemFS:
    """A fresh disk holding `src`'s WAL, with some files replaced."""
    fs = MemFS()
    for d in (DIR, f"{DIR}/wal", f"{DIR}/snap"):
        fs.makedirs(d)
    for sub in ("wal", "snap"):
        for name in src.listdir(f"{DIR}/{sub}"):
            path = f"{DIR}/{sub}/{name}"
            f = fs.open_append(path)
            f.write(overrides.get(path, src.read(path)))
            f.sync()
    return fs


def test_state_survives_a_restart() -> None:
    fs = MemFS()
    st = open_mem(fs)
    st.save(HardState(2, 1, 3), ents(1, 5))
    st.sync()
    st.save(HardState(3, 0, 4), ents(4, 3, term=3))  # overwrites 4 and 5
    st.sync()
    st.close()
    state = open_mem(fs).load()
    assert state.hard_state == HardState(3, 0, 4)
    assert state.entries == ents(1, 3) + ents(4, 3, term=3)
    assert state.snapshot is None


def test_many_entries_cost_one_fsync() -> None:
    fs = MemFS()
    st = open_mem(fs)
    before = fs.fsyncs
    st.save(HardState(1, 0, 0), ents(1, 10_000))
    st.save(HardState(1, 0, 100), [])
    st.sync()
    assert fs.fsyncs - before == 1
    assert len(open_mem(fs).load().entries) == 10_000


def _three_batches(last_has_hard_state: bool) -> tuple[MemFS, list[Entry]]:
    fs = MemFS()
    st = open_mem(fs)
    st.save(HardState(1, 0, 2), ents(1, 3))
    st.sync()
    st.save(HardState(1, 0, 3), ents(4, 2))
    st.sync()
    st.save(HardState(1, 0, 5) if last_has_hard_state else None, ents(6, 4))
    st.sync()
    return fs, ents(1, 5)


@pytest.mark.parametrize("last_is", ["entries", "hard-state"])
def test_a_torn_last_record_is_cut_at_every_byte_offset(last_is: str) -> None:
    fs, before_last = _three_batches(last_has_hard_state=last_is == "hard-state")
    path = segment(fs)
    data = fs.read(path)
    records, torn = scan(path, data, is_last=True)
    assert torn is None
    start = records[-1].offset
    assert data[start:] and len(data) - start > 12
    for cut in range(start, len(data)):
        disk = copy_fs(fs, {path: data[:cut]})
        st = open_mem(disk)
        state = st.load()
        if last_is == "entries":
            assert state.entries == before_last
            assert state.hard_state == HardState(1, 0, 3)
        else:
            assert state.entries == before_last + ents(6, 4)
            assert state.hard_state == HardState(1, 0, 3)
        if cut == start:
            assert st.recovery.torn_tail is None  # a clean end, nothing to cut
        else:
            assert st.recovery.torn_tail is not None
            assert (st.recovery.torn_tail.offset, st.recovery.torn_tail.path) == (start, path)
            assert st.recovery.torn_tail.dropped == cut - start
        assert disk.read(path) == data[:start]
        # The log goes on from there.
        st.save(HardState(1, 0, 5), ents(6, 1, term=2))
        st.sync()
        assert open_mem(disk).load().entries[-1] == Entry(2, 6, 0, b"e6")


def test_zeros_after_a_power_cut_count_as_a_torn_tail() -> None:
    fs, _ = _three_batches(last_has_hard_state=True)
    path = segment(fs)
    data = fs.read(path)
    disk = copy_fs(fs, {path: data + bytes(100)})
    st = open_mem(disk)
    assert st.recovery.torn_tail is not None and st.recovery.torn_tail.offset == len(data)
    assert st.load().hard_state == HardState(1, 0, 5)


def test_a_flipped_bit_mid_file_is_an_error_naming_file_and_offset() -> None:
    fs, _ = _three_batches(last_has_hard_state=True)
    path = segment(fs)
    data = fs.read(path)
    records, _ = scan(path, data, is_last=True)
    victim = records[len(records) // 2]
    end = records[len(records) // 2 + 1].offset
    for pos in range(victim.offset, end):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            with pytest.raises(WalCorruptError) as err:
                open_mem(copy_fs(fs, {path: bytes(bad)}))
            assert err.value.path == path
            assert err.value.offset == victim.offset
            assert path in str(err.value) and f"offset {victim.offset}" in str(err.value)


def test_damage_in_an_older_segment_is_an_error_even_at_its_end() -> None:
    fs = MemFS()
    st = open_mem(fs, segment_bytes=200)
    for i in range(1, 40, 3):
        st.save(HardState(1, 0, i), ents(i, 3))
        st.sync()
    names = fs.listdir(f"{DIR}/wal")
    assert len(names) > 2
    first = f"{DIR}/wal/{names[0]}"
    data = fs.read(first)
    with pytest.raises(WalCorruptError, match="not the last segment"):
        open_mem(copy_fs(fs, {first: data[:-3]}))


@pytest.mark.parametrize("seed", range(40))
def test_a_crash_between_write_and_fsync_loses_only_unsynced_records(seed: int) -> None:
    rng = random.Random(seed)
    fs = MemFS()
    st = open_mem(fs, segment_bytes=rng.choice((150, 1 << 20)))
    st.save(HardState(1, 0, 2), ents(1, 3))
    st.sync()
    synced = ents(1, 3)
    st.save(HardState(2, 2, 3), ents(4, 5, term=2))
    st.save(None, ents(9, 2, term=2))
    st.flush()  # written, never fsynced
    fs.crash(rng)
    state = open_mem(fs).load()
    # Whatever survived is a whole-record prefix of what was written.
    assert state.entries in (synced, synced + ents(4, 5, term=2), synced + ents(4, 7, term=2))
    assert state.hard_state in (HardState(1, 0, 2), HardState(2, 2, 3))
    if state.hard_state == HardState(2, 2, 3):
        assert len(state.entries) >= 8


def test_fsynced_records_survive_any_crash() -> None:
    for seed in range(20):
        fs = MemFS()
        st = open_mem(fs, segment_bytes=100)
        for i in range(1, 30, 2):
            st.save(HardState(1, 1, i), ents(i, 2))
            st.sync()
        fs.crash(random.Random(seed))
        state = open_mem(fs).load()
        assert state.entries == ents(1, 30)
        assert state.hard_state == HardState(1, 1, 29)


def snap_at(index: int, term: int = 1) -> Snapshot:
    return Snapshot(index, term, ConfState((1, 2, 3), ()), b"state@%d" % index)


def test_compaction_removes_old_segments_and_keeps_what_restart_needs() -> None:
    fs = MemFS()
    st = open_mem(fs, segment_bytes=300)
    for i in range(1, 200, 10):
        st.save(HardState(1, 0, i + 9), ents(i, 10))
        st.sync()
    segments_before = len(fs.listdir(f"{DIR}/wal"))
    st.save_snapshot(snap_at(150))
    st.compact(150 - 20)  # keep 20 entries behind the snapshot
    segments_after = len(fs.listdir(f"{DIR}/wal"))
    assert segments_after < segments_before
    st.save(HardState(1, 0, 205), ents(200, 6))
    st.sync()
    state = open_mem(fs).load()
    assert state.snapshot == snap_at(150)
    assert state.entries[0].index <= 131
    assert state.entries[-1].index == 205
    assert [e.index for e in state.entries] == list(range(state.entries[0].index, 206))


def test_old_snapshots_are_pruned() -> None:
    fs = MemFS()
    st = open_mem(fs, keep_snapshots=2)
    st.save(HardState(1, 0, 30), ents(1, 30))
    st.sync()
    for i in (10, 20, 30):
        st.save_snapshot(snap_at(i))
    names = fs.listdir(f"{DIR}/snap")
    assert len(names) == 2 and names[-1].endswith(f"{30:016x}.snap")


def test_an_installed_snapshot_replaces_the_log() -> None:
    fs = MemFS()
    st = open_mem(fs)
    st.save(HardState(1, 0, 2), ents(1, 5))
    st.sync()
    snap = snap_at(50, term=4)
    st.save(HardState(4, 0, 50), [], snap)
    st.save(None, ents(51, 2, term=4))
    st.sync()
    state = open_mem(fs).load()
    assert state.snapshot == snap
    assert state.entries == ents(51, 2, term=4)
    assert state.hard_state.commit == 50


def test_a_snapshot_without_its_log_record_does_not_count() -> None:
    # Crash after the snapshot file was renamed into place, before the WAL
    # said so: the member restarts from its previous, consistent state.
    fs = MemFS()
    st = open_mem(fs)
    st.save(HardState(1, 0, 2), ents(1, 5))
    st.sync()
    st._write_snapshot_file(snap_at(40, term=3))
    fs.crash(random.Random(0))
    state = open_mem(fs).load()
    assert state.snapshot is None
    assert state.entries == ents(1, 5)


def test_half_written_snapshot_files_are_cleaned_up() -> None:
    fs = MemFS()
    st = open_mem(fs)
    st.save(HardState(1, 0, 2), ents(1, 5))
    st.sync()
    f = fs.open_append(f"{DIR}/snap/0000000000000001-0000000000000005.snap.tmp")
    f.write(b"partial")
    f.sync()
    fs.sync_dir(f"{DIR}/snap")
    open_mem(fs)
    assert fs.listdir(f"{DIR}/snap") == []


def test_a_damaged_snapshot_file_is_an_error() -> None:
    fs = MemFS()
    st = open_mem(fs)
    st.save(HardState(1, 0, 5), ents(1, 5))
    st.sync()
    st.save_snapshot(snap_at(5))
    (name,) = fs.listdir(f"{DIR}/snap")
    fs.corrupt(f"{DIR}/snap/{name}", 20)
    with pytest.raises(SnapshotCorruptError, match=name):
        open_mem(fs)


def test_on_a_real_disk(tmp_path: Path) -> None:
    st = DurableStorage(str(tmp_path), OsFS(fsync=True))
    st.save(HardState(3, 2, 4), ents(1, 6))
    st.sync()
    st.save_snapshot(snap_at(4))
    st.close()
    (seg,) = os.listdir(tmp_path / "wal")
    path = tmp_path / "wal" / seg
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x10\x00\x00")  # a torn header
    again = DurableStorage(str(tmp_path), OsFS(fsync=True))
    assert again.recovery.torn_tail is not None
    assert path.stat().st_size == size
    state = again.load()
    assert state.hard_state == HardState(3, 2, 4)
    assert state.snapshot == snap_at(4)
    assert state.entries == ents(1, 6)


class DiskSpy:
    """Stands in for `os` inside raft/fs.py: passes every call through and
    records, per file descriptor, whether bytes were written since its last
    fdatasync/fsync."""

    def __init__(self) -> None:
        self.unsynced: set[int] = set()
        self.writes = 0
        self.syncs = 0
        self.log: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        self.writes += 1
        self.unsynced.add(fd)
        self.log.append(f"write {fd}")
        return os.write(fd, data)

    def fdatasync(self, fd: int) -> None:
        self._synced(fd, "fdatasync")
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        self._synced(fd, "fsync")
        os.fsync(fd)

    def _synced(self, fd: int, how: str) -> None:
        self.syncs += 1
        self.unsynced.discard(fd)
        self.log.append(f"{how} {fd}")

    def close(self, fd: int) -> None:
        # Closing does not make written bytes durable: an fd closed unsynced
        # stays in `unsynced` (its number may be reused, which only adds).
        os.close(fd)


def test_sync_returns_only_after_the_disk_has_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What sync() returns is what Raft acknowledges (a vote, an append): the
    # records must have been through fdatasync (or fsync) on their file first.
    import pyswarmkit.raft.fs as fs_module

    spy = DiskSpy()
    monkeypatch.setattr(fs_module, "os", spy)
    st = DurableStorage(str(tmp_path), OsFS(fsync=True))
    assert not spy.unsynced, spy.log  # the new segment's header is durable too
    for first in (1, 4, 9):
        writes, syncs = spy.writes, spy.syncs
        st.save(HardState(2, 1, first), ents(first, 3, term=2))
        assert spy.writes == writes  # save() only queues
        st.sync()
        assert spy.writes > writes and spy.syncs > syncs
        assert not spy.unsynced, spy.log
    st.save_snapshot(snap_at(5))
    assert not spy.unsynced, spy.log
    st.close()
    assert not spy.unsynced, spy.log


def test_without_fsync_nothing_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The spy above can tell: with fsync off, written bytes stay unsynced.
    import pyswarmkit.raft.fs as fs_module

    spy = DiskSpy()
    monkeypatch.setattr(fs_module, "os", spy)
    st = DurableStorage(str(tmp_path), OsFS(fsync=False))
    st.save(HardState(2, 1, 1), ents(1, 3))
    st.sync()
    assert spy.unsynced and spy.syncs == 0
