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
    """Exactly one of the two is set."""

    dek: bytes | None = None
    wrapped: bytes | None = None

    @property
    def locked(self) -> bool:
        return self.wrapped is not None

    def open(self, unlock_key: bytes | None) -> bytes:
        """The DEK; a wrapped one needs the unlock key (UnlockKeyError if wrong)."""
        if self.dek is not None:
            return self.dek
        assert self.wrapped is not None
        if unlock_key is None:
            raise DekFileError("the raft key is locked: an unlock key is needed")
        return unwrap_dek(self.wrapped, unlock_key)


def encode(dek: bytes, unlock_key: bytes | None) -> bytes:
    if unlock_key is None:
        doc = {"format": _FORMAT, "dek": base64.b64encode(dek).decode()}
    else:
        wrapped = wrap_dek(dek, unlock_key)
        doc = {"format": _FORMAT, "wrapped": base64.b64encode(wrapped).decode()}
    return json.dumps(doc).encode() + b"\n"


def decode(path: str, data: bytes) -> DekFile:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError("not a key file of a known format")
        if "dek" in doc:
            dek = base64.b64decode(doc["dek"], validate=True)
            if len(dek) != KEY_SIZE:
                raise ValueError(f"a key of {len(dek)} bytes")
            return DekFile(dek=dek)
        return DekFile(wrapped=base64.b64decode(doc["wrapped"], validate=True))
    except (ValueError, KeyError, TypeError) as exc:
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


def write(state_dir: Path, dek: bytes, unlock_key: bytes | None) -> None:
    path = dek_path(state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, encode(dek, unlock_key))
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
    own writes the file, the newest wish winning over any older one."""

    def __init__(self, state_dir: Path, dek: bytes, wrapped_under: bytes | None) -> None:
        self.state_dir = state_dir
        self.dek = dek
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
                    write(self.state_dir, self.dek, key)
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
