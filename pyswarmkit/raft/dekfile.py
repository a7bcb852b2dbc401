"""A manager's Raft data encryption key on disk.

``<state-dir>/certificates/raft-dek.json`` (mode 0600) holds either the DEK in
clear (autolock off) or the DEK wrapped under the unlock key (autolock on),
never both. It is replaced atomically: written beside, fsynced, renamed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .crypt import KEY_SIZE, random_key, unwrap_dek, wrap_dek

log = logging.getLogger(__name__)

DEK_FILE = "raft-dek.json"
_FORMAT = 1


class DekFileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DekFile:
    """The DEK, in clear or wrapped; and, while the log is being moved to a
    new key, that pending key, kept the same way."""

    dek: bytes | None = None
    wrapped: bytes | None = None
    pending_dek: bytes | None = None
    pending_wrapped: bytes | None = None

    @property
    def locked(self) -> bool:
        return self.wrapped is not None

    def open(self, unlock_key: bytes | None) -> bytes:
        """The DEK; a wrapped one needs the unlock key (UnlockKeyError if wrong)."""
        return self.keys(unlock_key)[0]

    def keys(self, unlock_key: bytes | None) -> tuple[bytes, bytes | None]:
        """(the DEK, the pending DEK or None)."""
        if self.dek is not None:
            return self.dek, self.pending_dek
        assert self.wrapped is not None
        if unlock_key is None:
            raise DekFileError("the raft key is locked: an unlock key is needed")
        pending = self.pending_wrapped
        return (
            unwrap_dek(self.wrapped, unlock_key),
            unwrap_dek(pending, unlock_key) if pending is not None else None,
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encode(dek: bytes, unlock_key: bytes | None, pending: bytes | None = None) -> bytes:
    doc: dict[str, object] = {"format": _FORMAT}
    if unlock_key is None:
        doc["dek"] = _b64(dek)
        if pending is not None:
            doc["pending_dek"] = _b64(pending)
    else:
        doc["wrapped"] = _b64(wrap_dek(dek, unlock_key))
        if pending is not None:
            doc["pending_wrapped"] = _b64(wrap_dek(pending, unlock_key))
    return json.dumps(doc).encode() + b"\n"


def _key(doc: dict[str, object], name: str) -> bytes | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    key = base64.b64decode(value, validate=True)
    if name.endswith("dek") and len(key) != KEY_SIZE:
        raise ValueError(f"a key of {len(key)} bytes")
    return key


def decode(path: str, data: bytes) -> DekFile:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError("not a key file of a known format")
        found = DekFile(
            _key(doc, "dek"),
            _key(doc, "wrapped"),
            _key(doc, "pending_dek"),
            _key(doc, "pending_wrapped"),
        )
        if (found.dek is None) == (found.wrapped is None):
            raise ValueError("it holds no key, or two")
        if found.pending_dek is not None and found.dek is None:
            raise ValueError("a pending key in clear beside a wrapped one")
        if found.pending_wrapped is not None and found.wrapped is None:
            raise ValueError("a wrapped pending key beside one in clear")
        return found
    except (ValueError, TypeError) as exc:
        raise DekFileError(f"{path} is damaged: {exc}") from None


def dek_path(state_dir: Path) -> Path:
    return state_dir / "certificates" / DEK_FILE


def read(state_dir: Path) -> DekFile | None:
    path = dek_path(state_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(str(path), data)


def write(
    state_dir: Path, dek: bytes, unlock_key: bytes | None, pending: bytes | None = None
) -> None:
    path = dek_path(state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, encode(dek, unlock_key, pending))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_or_create(state_dir: Path) -> DekFile:
    """This manager's DEK file; a manager without one (new, or from before
    encryption) gets a fresh key in clear."""
    found = read(state_dir)
    if found is not None:
        return found
    dek = random_key()
    write(state_dir, dek, None)
    return DekFile(dek=dek)


class DekKeeper:
    """Keeps a manager's DEK file as the cluster object says: wrapped under the
    unlock key while autolock is on, in clear when it is off. ``want`` only
    records the newest wish (store watchers must not block); a thread of its
    own writes the file, the newest wish winning over any older one.

    When autolock turns on, the DEK has been on disk in clear: a new one is
    drawn and kept beside it as pending (wrapped too); the manager moves its
    log to it the next time it opens the log."""

    def __init__(self, state_dir: Path, dek: bytes, wrapped_under: bytes | None) -> None:
        self.state_dir = state_dir
        self.dek = dek
        self.pending: bytes | None = None
        self.wrapped_under = wrapped_under
        self._wish: tuple[bytes | None] | None = None
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="raft-key", daemon=True)
        self._thread.start()

    def want(self, unlock_key: bytes | None) -> None:
        with self._cond:
            self._wish = (unlock_key,)
            self._cond.notify_all()

    def settled(self, timeout: float) -> bool:
        """Whether every wish so far is on disk, waiting at most ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._wish is None and not self._busy, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wish is not None or self._stopped)
                if self._wish is None:
                    return
                (key,), self._wish = self._wish, None
                self._busy = True
            try:
                if key != self.wrapped_under:
                    if key is not None and self.wrapped_under is None and self.pending is None:
                        self.pending = random_key()
                    write(self.state_dir, self.dek, key, self.pending)
                    self.wrapped_under = key
                    log.info(
                        "raft key %s",
                        "wrapped under the unlock key (autolock on)"
                        if key
                        else "kept in clear (autolock off)",
                    )
            except OSError as exc:
                log.error("could not rewrite %s: %s", dek_path(self.state_dir), exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


# What the DEK file should be under: an unlock key, or None for in clear.
Wish = tuple[bytes | None]


class ReplayFilter:
    """Of the wishes a manager's committed cluster objects make, those to act
    on. The entries up to the commit index on disk at start replay history
    this manager followed before: only the state they end in counts, so a
    cluster object passing through "autolock off" on the way never puts the
    key in clear on disk. Pure: fed each committed batch's index and wishes."""

    def __init__(self, replay_to: int, applied: int, latest: Wish | None) -> None:
        self.replay_to = replay_to
        self.caught_up = applied >= replay_to
        self.latest = latest

    def start(self) -> Wish | None:
        return self.latest if self.caught_up else None

    def batch(self, index: int, wishes: list[bytes | None]) -> Wish | None:
        if wishes:
            self.latest = (wishes[-1],)
        if self.caught_up:
            return self.latest if wishes else None
        if index >= self.replay_to:
            self.caught_up = True
            return self.latest
        return None
