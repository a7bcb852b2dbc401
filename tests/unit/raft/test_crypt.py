"""Encryption at rest: the pure crypto, the DEK file, and a sealed log
(reading back, wrong keys, damage, migration of a log written in clear)."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest

from pyswarmkit.raft import crypt, dekfile
from pyswarmkit.raft.crypt import DecryptError, Sealer, UnlockKeyError
from pyswarmkit.raft.durable import DurableStorage, SnapshotCorruptError, decode_snapshot
from pyswarmkit.raft.fs import MemFS, OsFS
from pyswarmkit.raft.messages import ConfState, Entry, HardState, Snapshot
from pyswarmkit.raft.wal import SEALED, WalCorruptError, scan

pytestmark = pytest.mark.unit

DIR = "/node"
KEY = bytes(range(32))
SECRET = b"s3cr3t-payload-0123456789"


def ents(first: int, n: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, 0, SECRET + b"%d" % i) for i in range(first, first + n)]


def all_bytes(fs: MemFS) -> bytes:
    out = b""
    for sub in ("wal", "snap"):
        for name in fs.listdir(f"{DIR}/{sub}"):
            out += fs.read(f"{DIR}/{sub}/{name}")
    return out


# --- the pure functions --------------------------------------------------------


def test_seal_and_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    s = Sealer(KEY)
    a, b = s.seal(b"hello", b"ad"), s.seal(b"hello", b"ad")
    assert a != b  # random nonces
    assert s.open(a, b"ad") == b"hello" == s.open(b, b"ad")
    assert len(a) == len(b"hello") + crypt.OVERHEAD


@pytest.mark.parametrize(
    "damage",
    [
        "wrong key",
        "wrong ad",
        "flipped byte",
        "truncated",
        "too short",
    ],
)
def test_opening_anything_but_what_was_sealed_is_a_clear_error(damage: str) -> None:
    sealed = Sealer(KEY).seal(b"payload", b"ad")
    key, ad = KEY, b"ad"
    if damage == "wrong key":
        key = bytes(32)
    elif damage == "wrong ad":
        ad = b"other"
    elif damage == "flipped byte":
        sealed = sealed[:15] + bytes((sealed[15] ^ 1,)) + sealed[16:]
    elif damage == "truncated":
        sealed = sealed[:-1]
    else:
        sealed = sealed[:10]
    with pytest.raises(DecryptError):
        Sealer(key).open(sealed, ad)


def test_unlock_keys_print_as_docker_prints_them_and_parse_back() -> None:
    text = crypt.format_unlock_key(KEY)
    assert text.startswith("SWMKEY-1-") and "=" not in text
    assert len(text) == len("SWMKEY-1-") + 43
    assert crypt.parse_unlock_key(text) == KEY
    assert crypt.parse_unlock_key(f"  {text}\n") == KEY


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "must start with SWMKEY-1-"),
        ("SWMKEY-2-AAAA", "must start with SWMKEY-1-"),
        ("SWMKEY-1-not*base64!", "not base64"),
        ("SWMKEY-1-AAAA", "holds 3 bytes"),
        # 43 characters carry 258 bits: a last character with the spare bits set.
        ("SWMKEY-1-" + "A" * 42 + "B", "not base64"),
    ],
)
def test_a_malformed_unlock_key_is_one_clear_line(text: str, why: str) -> None:
    with pytest.raises(UnlockKeyError, match=why):
        crypt.parse_unlock_key(text)


def test_a_dek_wrapped_under_one_key_opens_only_with_that_key() -> None:
    dek = crypt.random_key()
    wrapped = crypt.wrap_dek(dek, KEY)
    assert dek not in wrapped
    assert crypt.unwrap_dek(wrapped, KEY) == dek
    with pytest.raises(UnlockKeyError, match="invalid key provided"):
        crypt.unwrap_dek(wrapped, bytes(32))
    with pytest.raises(UnlockKeyError, match="invalid key provided"):
        crypt.unwrap_dek(wrapped[:-3], KEY)


def test_the_dek_file_is_private_and_holds_the_key_wrapped_or_clear(tmp_path: Path) -> None:
    made = dekfile.load_or_create(tmp_path)
    assert made.dek is not None and not made.locked
    path = dekfile.dek_path(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert dekfile.load_or_create(tmp_path) == made
    dekfile.write(tmp_path, made.dek, KEY)
    locked = dekfile.read(tmp_path)
    assert locked is not None and locked.locked and locked.dek is None
    assert made.dek not in path.read_bytes()
    assert locked.open(KEY) == made.dek
    with pytest.raises(UnlockKeyError):
        locked.open(bytes(32))
    path.write_text("{not json")
    with pytest.raises(dekfile.DekFileError, match="is damaged"):
        dekfile.read(tmp_path)


# --- a sealed log ------------------------------------------------------------------


def test_a_sealed_log_reads_back_and_holds_nothing_in_clear() -> None:
    fs = MemFS()
    st = DurableStorage(DIR, fs, sealer=Sealer(KEY))
    st.save(HardState(2, 1, 3), ents(1, 5))
    st.sync()
    snap = Snapshot(3, 1, ConfState((1,), ()), SECRET + b"-in-the-snapshot")
    st.save_snapshot(snap)
    st.close()
    assert SECRET not in all_bytes(fs)
    records, _ = scan("x", fs.read(f"{DIR}/wal/{fs.listdir(f'{DIR}/wal')[0]}"), True)
    assert records and all(r.type & SEALED for r in records)
    state = DurableStorage(DIR, fs, sealer=Sealer(KEY)).load()
    assert state.hard_state == HardState(2, 1, 3)
    assert state.entries == ents(1, 5)
    assert state.snapshot == snap


def test_a_sealed_log_opened_with_the_wrong_key_or_none_is_refused() -> None:
    fs = MemFS()
    st = DurableStorage(DIR, fs, sealer=Sealer(KEY))
    st.save(HardState(2, 1, 3), ents(1, 5))
    st.close()
    with pytest.raises(WalCorruptError, match="does not decrypt with this key"):
        DurableStorage(DIR, fs, sealer=Sealer(bytes(32)))
    with pytest.raises(WalCorruptError, match="no key to open it"):
        DurableStorage(DIR, fs)


def test_a_tampered_sealed_record_is_corruption_naming_file_and_offset() -> None:
    fs = MemFS()
    st = DurableStorage(DIR, fs, sealer=Sealer(KEY))
    st.save(HardState(2, 1, 3), ents(1, 5))
    st.sync()
    st.save(HardState(2, 1, 4), ents(6, 1))
    st.close()
    path = f"{DIR}/wal/{fs.listdir(f'{DIR}/wal')[0]}"
    records, _ = scan(path, fs.read(path), True)
    target = records[1]  # the entries: not the last record, so not a torn tail
    fs.corrupt(path, target.offset + 40)
    with pytest.raises(WalCorruptError, match=f"at offset {target.offset}: bad record checksum"):
        DurableStorage(DIR, fs, sealer=Sealer(KEY))


def test_a_tampered_sealed_snapshot_is_an_error() -> None:
    fs = MemFS()
    st = DurableStorage(DIR, fs, sealer=Sealer(KEY))
    st.save(HardState(2, 1, 3), ents(1, 5))
    st.save_snapshot(Snapshot(3, 1, ConfState((1,), ()), SECRET))
    st.close()
    path = f"{DIR}/snap/{fs.listdir(f'{DIR}/snap')[0]}"
    with pytest.raises(SnapshotCorruptError, match="no key to open it"):
        decode_snapshot(path, fs.read(path))
    with pytest.raises(SnapshotCorruptError, match="does not decrypt with this key"):
        decode_snapshot(path, fs.read(path), Sealer(bytes(32)))
    fs.corrupt(path, 30)
    with pytest.raises(SnapshotCorruptError, match="checksum mismatch"):
        DurableStorage(DIR, fs, sealer=Sealer(KEY))


def test_a_log_written_in_clear_opens_and_is_rewritten_sealed() -> None:
    fs = MemFS()
    old = DurableStorage(DIR, fs, segment_bytes=300)  # several segments, as before
    for k in range(6):
        old.save(HardState(1, 1, 3 * k + 3), ents(3 * k + 1, 3))
        old.sync()
    old.save_snapshot(Snapshot(9, 1, ConfState((1,), ()), SECRET + b"-snap"))
    old.save(HardState(1, 1, 19), ents(19, 1))
    old.close()
    assert SECRET in all_bytes(fs)
    before = DurableStorage(DIR, fs).load()

    st = DurableStorage(DIR, fs, sealer=Sealer(KEY))
    assert st.resealed
    assert st.load() == before
    assert SECRET not in all_bytes(fs)
    assert len(fs.listdir(f"{DIR}/wal")) == 1 and len(fs.listdir(f"{DIR}/snap")) == 1
    st.save(HardState(1, 1, 20), ents(20, 1))
    st.close()
    again = DurableStorage(DIR, fs, sealer=Sealer(KEY))
    assert not again.resealed
    assert again.load().entries == before.entries + ents(20, 1)


@pytest.mark.parametrize("seed", range(30))
def test_a_crash_during_the_rewrite_loses_nothing(seed: int) -> None:
    """Crash the disk after a random number of the rewrite's file operations:
    the log opens (sealed or not yet) to the same state."""
    rng = random.Random(seed)
    fs = MemFS()
    old = DurableStorage(DIR, fs, segment_bytes=300)
    for k in range(6):
        old.save(HardState(1, 1, 3 * k + 3), ents(3 * k + 1, 3))
        old.sync()
    old.save_snapshot(Snapshot(9, 1, ConfState((1,), ()), b"snap"))
    old.close()
    before = DurableStorage(DIR, fs).load()

    class Crash(Exception):
        pass

    budget = [rng.randint(0, 12)]
    for name in ("rename", "remove", "sync_dir", "open_append"):
        real = getattr(fs, name)

        def counted(*a: object, _real: object = real) -> object:
            if budget[0] == 0:
                raise Crash
            budget[0] -= 1
            return _real(*a)  # type: ignore[operator]

        setattr(fs, name, counted)
    with contextlib.suppress(Crash):
        DurableStorage(DIR, fs, sealer=Sealer(KEY)).close()
    for name in ("rename", "remove", "sync_dir", "open_append"):
        delattr(fs, name)
    fs.crash(rng)
    assert DurableStorage(DIR, fs, sealer=Sealer(KEY)).load() == before


def test_on_a_real_disk_nothing_is_in_clear(tmp_path: Path) -> None:
    st = DurableStorage(str(tmp_path), OsFS(fsync=False), sealer=Sealer(KEY))
    st.save(HardState(1, 1, 2), ents(1, 2))
    st.save_snapshot(Snapshot(2, 1, ConfState((1,), ()), SECRET))
    st.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_bytes(), path


# --- moving to a new key --------------------------------------------------------


def test_a_sealer_opens_with_its_older_keys_and_seals_with_its_own() -> None:
    old, new = bytes(32), KEY
    by_old = Sealer(old).seal(b"x")
    both = Sealer(new, also_opens=(old,))
    assert both.open(by_old) == b"x"
    assert Sealer(new).open(both.seal(b"y")) == b"y"
    with pytest.raises(DecryptError):
        Sealer(old).open(both.seal(b"y"))


def test_a_log_opened_with_rewrite_moves_to_the_new_key() -> None:
    old, new = bytes(32), KEY
    fs = MemFS()
    st = DurableStorage(DIR, fs, segment_bytes=300, sealer=Sealer(old))
    for k in range(6):
        st.save(HardState(1, 1, 3 * k + 3), ents(3 * k + 1, 3))
        st.sync()
    st.save_snapshot(Snapshot(9, 1, ConfState((1,), ()), b"snap"))
    st.close()
    before = DurableStorage(DIR, fs, sealer=Sealer(old)).load()
    moved = DurableStorage(DIR, fs, sealer=Sealer(new, also_opens=(old,)), rewrite=True)
    assert moved.resealed and moved.load() == before
    moved.close()
    assert DurableStorage(DIR, fs, sealer=Sealer(new)).load() == before
    with pytest.raises(WalCorruptError, match="does not decrypt"):
        DurableStorage(DIR, fs, sealer=Sealer(old))


def test_the_dek_file_keeps_a_pending_key_the_same_way_as_the_key(tmp_path: Path) -> None:
    dek, pending = crypt.random_key(), crypt.random_key()
    dekfile.write(tmp_path, dek, None, pending)
    found = dekfile.read(tmp_path)
    assert found is not None and found.keys(None) == (dek, pending)
    dekfile.write(tmp_path, dek, KEY, pending)
    raw = dekfile.dek_path(tmp_path).read_bytes()
    assert dek not in raw and pending not in raw
    found = dekfile.read(tmp_path)
    assert found is not None and found.keys(KEY) == (dek, pending)


def test_autolock_turning_on_draws_a_pending_key_a_rotation_keeps_it(tmp_path: Path) -> None:
    dek = crypt.random_key()
    dekfile.write(tmp_path, dek, None)
    keeper = dekfile.DekKeeper(tmp_path, dek, None)
    try:
        keeper.want(KEY)
        assert keeper.settled(10)
        found = dekfile.read(tmp_path)
        assert found is not None and found.locked
        current, pending = found.keys(KEY)
        assert current == dek and pending is not None and pending != dek
        other = bytes(range(1, 33))
        keeper.want(other)
        assert keeper.settled(10)
        found = dekfile.read(tmp_path)
        assert found is not None and found.keys(other) == (dek, pending)
        with pytest.raises(UnlockKeyError):
            found.keys(KEY)
        keeper.want(None)
        assert keeper.settled(10)
        found = dekfile.read(tmp_path)
        assert found is not None and found.keys(None) == (dek, pending)
    finally:
        keeper.stop()


def test_replayed_history_is_not_acted_on_only_where_it_ends() -> None:
    k1, k2 = b"1" * 32, b"2" * 32
    replay = dekfile.ReplayFilter(replay_to=10, applied=0, latest=None)
    assert replay.start() is None
    # Old news: the cluster passed through "off" (None) and two keys.
    assert replay.batch(1, [None]) is None
    assert replay.batch(5, [k1]) is None
    assert replay.batch(7, [None]) is None
    assert replay.batch(9, [k2]) is None
    # Caught up (an entry without a cluster change): where history ended.
    assert replay.batch(10, []) == (k2,)
    assert replay.batch(11, []) is None
    assert replay.batch(12, [None]) == (None,)


def test_with_nothing_to_replay_the_stores_state_counts_at_once() -> None:
    k1 = b"1" * 32
    assert dekfile.ReplayFilter(5, 5, (k1,)).start() == (k1,)
    assert dekfile.ReplayFilter(5, 5, None).start() is None
    assert dekfile.ReplayFilter(5, 3, (k1,)).start() is None
