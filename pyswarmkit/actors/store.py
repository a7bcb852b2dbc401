"""The store actor: the one writer. It hands batches to the proposer and
reports each outcome; reads go straight to the shared MemoryStore."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
from typing import Any

import pykka

from pyswarmkit.actors.messages import Propose, Transact
from pyswarmkit.api.errors import Internal, SwarmError
from pyswarmkit.store.memory import MemoryStore
from pyswarmkit.store.proposer import Proposer

log = logging.getLogger(__name__)

# After a batch this large, let go of it at once (see _Release).
RELEASE_AFTER = 1000


class _Release:
    """Sent to itself after a large batch: pykka keeps the last message an
    actor handled until the next one arrives, and the store may get none for
    a long time, which would pin a whole batch (and the memory around it)."""


def _trim_heap() -> None:
    """Hand freed memory back to the system (glibc keeps it otherwise)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


class StoreActor(pykka.ThreadingActor):
    def __init__(self, store: MemoryStore, proposer: Proposer) -> None:
        super().__init__()
        self.store = store
        self.proposer = proposer

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Release):
            _trim_heap()
            return None
        if isinstance(message, Transact):
            try:
                changes = message.build(self.store)
            except SwarmError as err:
                message.on_done(None, err)
                return None
            except Exception as exc:
                log.exception("building a transaction failed")
                message.on_done(None, Internal(f"store write failed: {exc}"))
                return None
            if not changes:
                message.on_done(None, None)
                return None
            message = Propose(changes, message.now, message.on_done)
        if isinstance(message, Propose):
            try:
                self.proposer.propose(message.changes, message.now, message.on_done)
            except Exception as exc:  # a bug must not take the only writer down
                log.exception("proposal failed")
                message.on_done(None, Internal(f"store write failed: {exc}"))
            if len(message.changes) >= RELEASE_AFTER:
                self.actor_ref.tell(_Release())
        return None
