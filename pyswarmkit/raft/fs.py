"""The few file operations the durable log needs, on a real or a simulated disk.

`OsFS` is the real thing. `MemFS` keeps files in memory and models what a
crash does to them: bytes written but not fsynced may be lost (any prefix of
them survives, so the last record can be torn), and directory changes made
since the directory was last fsynced may be lost. The simulator runs the real
WAL code on it.
"""

from __future__ import annotations

import os
import random
from typing import Protocol

from pyswarmkit import clock


class AppendFile(Protocol):
    def write(self, data: bytes) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class FileSystem(Protocol):
    def makedirs(self, path: str) -> None: ...

    def listdir(self, path: str) -> list[str]: ...

    def read(self, path: str) -> bytes: ...

    def open_append(self, path: str) -> AppendFile:
        """Open for appending, creating the file if needed."""

    def truncate(self, path: str, size: int) -> None:
        """Cut the file to `size` bytes, durably."""

    def rename(self, src: str, dst: str) -> None: ...

    def remove(self, path: str) -> None: ...

    def sync_dir(self, path: str) -> None: ...


class _OsFile:
    __slots__ = ("_delay", "_fd", "_fsync")

    def __init__(self, path: str, fsync: bool, delay: float = 0.0) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fsync = fsync
        self._delay = delay

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def sync(self) -> None:
        if self._delay:
            clock.sleep(self._delay)  # an injected slow disk (pyswarmkit/faults.py)
        if self._fsync:
            os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsFS:
    """The local file system. `fsync=False` is for tests that do not need it;
    `sync_delay` slows every sync down (the chaos harness's slow disk)."""

    def __init__(self, fsync: bool = True, sync_delay: float = 0.0) -> None:
        self.fsync = fsync
        self.sync_delay = sync_delay

    def makedirs(self, path: str) -> None:
        os.makedirs(path, mode=0o700, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def open_append(self, path: str) -> AppendFile:
        return _OsFile(path, self.fsync, self.sync_delay)

    def truncate(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def sync_dir(self, path: str) -> None:
        if not self.fsync:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _MemFile:
    __slots__ = ("data", "synced")

    def __init__(self) -> None:
        self.data = bytearray()
        self.synced = 0  # length of the prefix known to be on disk


class _MemHandle:
    __slots__ = ("_epoch", "_file", "_fs")

    def __init__(self, fs: MemFS, f: _MemFile) -> None:
        self._fs = fs
        self._file = f
        self._epoch = fs.epoch

    def _check_up(self) -> None:
        if self._epoch != self._fs.epoch:
            raise CrashedError("file handle from before a crash")

    def write(self, data: bytes) -> None:
        self._check_up()
        self._file.data += data

    def sync(self) -> None:
        self._check_up()
        self._fs.fsyncs += 1
        self._file.synced = len(self._file.data)

    def close(self) -> None:
        pass


class CrashedError(Exception):
    """The simulated machine crashed; its open files are gone."""


class MemFS:
    def __init__(self) -> None:
        self._files: dict[str, _MemFile] = {}
        self._durable: dict[str, _MemFile] = {}  # the names as of the last sync_dir
        self._dirs: set[str] = set()
        self.epoch = 0  # bumped by each crash
        self.fsyncs = 0

    def makedirs(self, path: str) -> None:
        self._dirs.add(os.path.normpath(path))

    def listdir(self, path: str) -> list[str]:
        path = os.path.normpath(path)
        if path not in self._dirs:
            raise FileNotFoundError(path)
        return sorted(os.path.basename(p) for p in self._files if os.path.dirname(p) == path)

    def read(self, path: str) -> bytes:
        f = self._files.get(os.path.normpath(path))
        if f is None:
            raise FileNotFoundError(path)
        return bytes(f.data)

    def open_append(self, path: str) -> AppendFile:
        path = os.path.normpath(path)
        if os.path.dirname(path) not in self._dirs:
            raise FileNotFoundError(path)
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = _MemFile()
        return _MemHandle(self, f)

    def truncate(self, path: str, size: int) -> None:
        f = self._files[os.path.normpath(path)]
        del f.data[size:]
        f.synced = len(f.data)

    def rename(self, src: str, dst: str) -> None:
        src, dst = os.path.normpath(src), os.path.normpath(dst)
        self._files[dst] = self._files.pop(src)

    def remove(self, path: str) -> None:
        del self._files[os.path.normpath(path)]

    def sync_dir(self, path: str) -> None:
        path = os.path.normpath(path)
        for p in [p for p in self._durable if os.path.dirname(p) == path]:
            del self._durable[p]
        for p, f in self._files.items():
            if os.path.dirname(p) == path:
                self._durable[p] = f

    # -- testing helpers

    def crash(self, rng: random.Random) -> None:
        """Lose what a power cut may lose; open handles become unusable."""
        self.epoch += 1
        if rng.random() < 0.5:
            # Directory changes since the last sync_dir did not reach the disk.
            self._files = dict(self._durable)
        else:
            self._durable = dict(self._files)
        for f in self._files.values():
            unsynced = len(f.data) - f.synced
            if unsynced > 0:
                keep = rng.randint(0, unsynced)
                del f.data[f.synced + keep :]
            f.synced = len(f.data)

    def total_bytes(self) -> int:
        return sum(len(f.data) for f in self._files.values())

    def corrupt(self, path: str, offset: int, xor: int = 0x01) -> None:
        self._files[os.path.normpath(path)].data[offset] ^= xor
