"""The store actor: the one writer. It hands batches to the proposer and
reports each outcome; reads go straight to the shared MemoryStore.

A ``Transact`` is built from the committed state while earlier batches may
still be on their way through Raft. The store refuses, at commit, a batch that
writes an object changed since it was read; when other writes came in between,
the proposer says so (``StaleWrite``) and the batch is built again from the new
state, so nobody sees a conflict their own earlier write caused.

A bad batch (a build function that raises, an object the store does not know)
fails only its own proposal, with the error handed back to whoever proposed
it; the next batch is applied as if nothing happened."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor, shown
from pyswarmkit.actors.messages import Propose, Transact
from pyswarmkit.api.errors import Internal, SwarmError
from pyswarmkit.metrics import Metrics
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import Done, Proposer, StaleWrite

log = logging.getLogger(__name__)

# After a batch this large, let go of it at once (see _Release).
RELEASE_AFTER = 1000
# A transaction rebuilt this many times against newer state and still refused
# reports the refusal: something keeps writing the same objects.
MAX_REBUILDS = 8


class _Release:
    """Sent to itself after a large batch: pykka keeps the last message an
    actor handled until the next one arrives, and the store may get none for
    a long time, which would pin a whole batch (and the memory around it)."""


def _trim_heap() -> None:
    """Hand freed memory back to the system (glibc keeps it otherwise)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


@dataclass(frozen=True, slots=True)
class _Rebuild:
    """A transaction to build again: what it read changed before it committed."""

    transact: Transact
    done: Done
    attempt: int


class _RebuiltDone:
    """The transaction built again has its outcome: the next one may be built."""


class StoreActor(GuardedActor):
    name = "store"

    def __init__(
        self, store: MemoryStore, proposer: Proposer, metrics: Metrics | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.proposer = proposer
        self.metrics = metrics
        # Transactions to build again, one at a time: each is built once the
        # one before it has committed, so writes racing for one object all get
        # through in one more round each rather than racing again.
        self._rebuilds: collections.deque[_Rebuild] = collections.deque()
        self._rebuilding = False

    def on_stop(self) -> None:
        with contextlib.suppress(Exception):
            self.proposer.flush()

    def handle(self, message: Any) -> Any:
        try:
            self._handle(message)
        finally:
            if self.actor_inbox.empty():
                # The proposer may hold proposals back to hand them on together.
                try:
                    self.proposer.flush()
                except Exception as exc:  # a bug must not take the only writer down
                    self.failures += 1
                    self.log_failure(message, exc, "handing proposals on")
        return None

    def _handle(self, message: Any) -> Any:
        if isinstance(message, _Release):
            _trim_heap()
            return None
        if isinstance(message, _Rebuild):
            self._rebuilds.append(message)
            self._next_rebuild()
        elif isinstance(message, _RebuiltDone):
            self._rebuilding = False
            self._next_rebuild()
        elif isinstance(message, Transact):
            self._transact(message, self._timed(_once(message.on_done, message)), 0)
        elif isinstance(message, Propose):
            done = self._timed(_once(message.on_done, message))
            self._propose(message.changes, message.now, done, message)
        return None

    def _timed(self, done: Done) -> Done:
        """``done``, recording how long the write took to its outcome."""
        metrics = self.metrics
        if metrics is None:
            return done
        started = clock.monotonic()

        def timed(batch: EventBatch | None, err: SwarmError | None) -> None:
            metrics.committed(clock.monotonic() - started, None if err is None else err.code)
            done(batch, err)

        return timed

    def _next_rebuild(self) -> None:
        while self._rebuilds and not self._rebuilding:
            r = self._rebuilds.popleft()
            self._rebuilding = self._transact(r.transact, r.done, r.attempt)

    def _transact(self, message: Transact, done: Done, attempt: int) -> bool:
        """Build and propose; whether a batch went to the proposer."""
        # Under the store's lock: the Raft member applies batches on its own
        # thread, and a build must see one state throughout.
        failure: SwarmError | None = None
        with self.store.reading():
            built_at = self.store.index
            try:
                changes: Sequence[Change] = message.build(self.store)
            except SwarmError as err:
                changes, failure = (), err
            except Exception as exc:
                self.failures += 1
                self.log_failure(message, exc, "building a transaction")
                changes = ()
                failure = Internal(f"store write failed: {type(exc).__name__}: {exc}")
        if not changes:
            done(None, failure)
            return False
        me = self.actor_ref
        rebuilt = attempt > 0

        def outcome(batch: EventBatch | None, err: SwarmError | None) -> None:
            again = isinstance(err, StaleWrite) and attempt < MAX_REBUILDS
            with contextlib.suppress(pykka.ActorDeadError):
                if again:
                    me.tell(_Rebuild(message, done, attempt + 1))
                if rebuilt:
                    me.tell(_RebuiltDone())
                if again:
                    return
            if isinstance(err, StaleWrite):
                err = err.cause
            done(batch, err)

        self._propose(changes, message.now, outcome, message, built_at)
        return True

    def _propose(
        self,
        changes: Sequence[Change],
        now: float,
        done: Done,
        message: Any,
        built_at: int | None = None,
    ) -> None:
        try:
            self.proposer.propose(changes, now, done, built_at)
        except Exception as exc:  # a bug must not take the only writer down
            self.failures += 1
            self.log_failure(message, exc, "proposing")
            done(None, Internal(f"store write failed: {type(exc).__name__}: {exc}"))
        if len(changes) >= RELEASE_AFTER:
            self.actor_ref.tell(_Release())


def _once(on_done: Done, message: Any) -> Done:
    """The proposer's answer, delivered at most once and never raising here: a
    caller's callback that fails is its own bug, not the store's."""
    called = False

    def done(batch: EventBatch | None, err: SwarmError | None) -> None:
        nonlocal called
        if called:
            return
        called = True
        try:
            on_done(batch, err)
        except Exception:
            log.exception("the outcome of %s could not be handed back", shown(message))

    return done
