"""Exits of local processes as they happen, for the process executor: one
thread waits on a pidfd per process (Linux's pidfd_open; readable once the
process has exited, child or not), so no task is polled per tick.

Whether a process has exited is always decided by the caller's ``check``
(``ProcessController.poll``: it reaps a child, compares an adopted process's
start time), never by the pidfd alone: a pidfd opened after the pid was
reused names the wrong process, and ``check`` is run once right after
registering to catch exactly that, and an exit before the pidfd was open.
Where a pidfd cannot be had (no pidfd_open, out of file descriptors) the
process is checked in turn instead, ``FALLBACK_SLICE`` of them every
``FALLBACK_PERIOD`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# Seconds between checks of the processes no pidfd watches, and how many of
# them are checked each time (in turn, as the executor actor polled them).
FALLBACK_PERIOD = 0.1
FALLBACK_SLICE = 2000

Check = Callable[[], "int | None"]
Notify = Callable[[str, int, str], None]


def in_turn(keys: list[str], turn: int, size: int) -> tuple[list[str], int]:
    """The next ``size`` of ``keys`` from position ``turn``, wrapping around,
    and where the next turn starts. Pure."""
    if len(keys) <= size:
        return keys, 0
    start = turn % len(keys)
    return (keys + keys)[start : start + size], start + size


class PidWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notify: Notify | None = None
        self._selector: selectors.BaseSelector | None = None
        # key (task ID) -> (pidfd or -1, check)
        self._entries: dict[str, tuple[int, Check]] = {}
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._turn = 0

    @property
    def started(self) -> bool:
        return self._notify is not None

    def start(self, notify: Notify) -> None:
        # A second start (a restarted executor actor) replaces the first run.
        self.close()
        self._notify = notify
        self._stopped = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="process-exits", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is None:
            return
        self._stopped.set()
        self._wake()
        self._thread.join(timeout=5)
        self._thread = None
        with self._lock:
            for fd, _ in self._entries.values():
                if fd >= 0:
                    os.close(fd)
            self._entries.clear()
            if self._selector is not None:
                self._selector.close()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._notify = None

    def add(self, key: str, pid: int, check: Check) -> None:
        """Report ``key`` once ``check`` says its process exited. Nothing is
        watched before ``start``: the caller polls then."""
        if not self.started:
            return
        fd = -1
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError) as exc:
            log.debug("no pidfd for pid %d (%s): checking it every %gs", pid, exc, FALLBACK_PERIOD)
        with self._lock:
            if self._selector is None:
                if fd >= 0:
                    os.close(fd)
                return
            self._entries[key] = (fd, check)
            if fd >= 0:
                self._selector.register(fd, selectors.EVENT_READ, key)
        self._wake()
        self._check(key)

    def discard(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> tuple[int, Check] | None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry[0] >= 0:
            if self._selector is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(entry[0])
            os.close(entry[0])
        return entry

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _check(self, key: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return
        try:
            code = entry[1]()
        except Exception:
            log.exception("checking task %s failed", key)
            code = None
        if code is None:
            return
        with self._lock:
            if self._entries.get(key) is not entry:
                return
            self._drop(key)
        if self._notify is not None:
            self._notify(key, code, "")

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stopped.is_set():
            with self._lock:
                fallback = [k for k, (fd, _) in self._entries.items() if fd < 0]
            timeout = FALLBACK_PERIOD if fallback else None
            try:
                ready = selector.select(timeout)
            except (OSError, ValueError):
                if self._stopped.is_set():
                    return
                raise
            for sel_key, _ in ready:
                if sel_key.data is None:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    continue
                key = str(sel_key.data)
                self._check(key)
                with self._lock:
                    entry = self._entries.get(key)
                    if entry is not None and entry[0] >= 0:
                        # Readable yet not exited by ``check``'s account (a pid
                        # reused before the pidfd opened): checked in turn from now on.
                        with contextlib.suppress(KeyError, ValueError):
                            selector.unregister(entry[0])
                        os.close(entry[0])
                        self._entries[key] = (-1, entry[1])
            fallback, self._turn = in_turn(fallback, self._turn, FALLBACK_SLICE)
            for key in fallback:
                self._check(key)
