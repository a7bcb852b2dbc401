"""The one rule every actor follows: a message that makes a handler raise is
logged, with the message, and the actor goes on serving the next one.

Subclasses implement ``handle`` instead of pykka's ``on_receive``. An actor
that stops anyway (a failure in pykka itself, a ``stop`` from outside) is the
node's supervisor's business: it restarts it or ends the node.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable
from typing import Any

import pykka

from pyswarmkit import clock
from pyswarmkit.actors.messages import DeliverBatch, StoreEvents
from pyswarmkit.store.memory import EventBatch, MemoryStore

log = logging.getLogger(__name__)

# Messages can hold whole batches; the log gets their start.
_SHOWN = 300
# The same failure (kind of message, kind of error) is logged in full at most
# this often; the ones in between are counted and the count logged with the next.
LOG_EVERY = 10.0


def shown(message: Any) -> str:
    text = repr(message)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


class GuardedActor(pykka.ThreadingActor):
    name = "actor"
    # The node stops its actors in order; an actor that failed to stop must
    # not also keep the process from exiting.
    use_daemon_thread = True
    # Handler failures so far; tests and the supervisor read it.
    failures = 0

    @staticmethod
    def _create_actor_inbox() -> Any:
        """pykka's hook for the mailbox. SimpleQueue is queue.Queue without
        the task tracking no actor uses, in C: a hand-off between threads
        costs a quarter less, and every message crosses one."""
        return queue.SimpleQueue()

    def on_receive(self, message: Any) -> Any:
        if type(message) is DeliverBatch:
            for item in message.items:
                self.on_receive(item)
            return None
        try:
            return self.handle(message)
        except Exception as exc:
            self.failures += 1
            self.log_failure(message, exc)
            return None

    def log_failure(self, message: Any, exc: BaseException, doing: str = "") -> None:
        """Log a failure with what caused it, but a failure that repeats on
        every tick only once per ``LOG_EVERY`` seconds (a flood hides the rest)."""
        key = (type(message).__name__, type(exc).__name__, doing)
        seen: dict[tuple[str, str, str], list[float]] = self.__dict__.setdefault("_logged", {})
        now = clock.monotonic()
        entry = seen.get(key)
        if entry is not None and now - entry[0] < LOG_EVERY:
            entry[1] += 1
            return
        suppressed = int(entry[1]) if entry is not None else 0
        seen[key] = [now, 0]
        more = f" ({suppressed} more like it since the last report)" if suppressed else ""
        what = f" {doing}" if doing else ""
        log.error(
            "%s failed%s on %s; carrying on%s",
            self.name,
            what,
            shown(message),
            more,
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    def handle(self, message: Any) -> Any:
        raise NotImplementedError


def watch_store(store: MemoryStore, ref: pykka.ActorRef[Any]) -> Callable[[], None]:
    """Send each committed batch to ``ref`` as ``StoreEvents``; returns the cancel.

    A dead actor's watch (one its supervisor is replacing) drops batches
    quietly: the new actor reads the store afresh when it starts."""

    def forward(batch: EventBatch) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(StoreEvents(batch))

    return store.watch(forward)
