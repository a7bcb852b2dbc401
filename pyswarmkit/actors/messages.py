"""Messages between the actors of one node."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyswarmkit.api.errors import SwarmError
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

if TYPE_CHECKING:
    from pyswarmkit.transport.bus import Envelope


@dataclass(frozen=True, slots=True)
class Tick:
    """``now`` is monotonic (for durations), ``wall`` the wall clock (for timestamps)."""

    now: float
    wall: float


@dataclass(frozen=True, slots=True)
class StoreEvents:
    batch: EventBatch


@dataclass(frozen=True, slots=True)
class Propose:
    """Commit ``changes`` as one batch; ``on_done`` runs on the store's thread
    and must only hand the outcome on."""

    changes: Sequence[Change]
    now: float
    on_done: Callable[[EventBatch | None, SwarmError | None], None]


@dataclass(frozen=True, slots=True)
class Transact:
    """Build a batch from the newest state, on the store's thread, and commit it.

    For read-modify-write that must not lose to a concurrent write (status
    reports, node registration): ``build`` sees every batch committed before it."""

    build: Callable[[MemoryStore], Sequence[Change]]
    now: float
    on_done: Callable[[EventBatch | None, SwarmError | None], None]


@dataclass(frozen=True, slots=True)
class Committed:
    """The outcome of an actor's own proposal, sent back to it."""

    batch: EventBatch | None
    error: SwarmError | None
    context: Any = None


@dataclass(frozen=True, slots=True)
class Deliver:
    """A message from another node's (or this node's) actor, via the transport,
    decoded and checked; ``addr`` is the sender's address as its connection shows it."""

    envelope: Envelope
    addr: str


@dataclass(frozen=True, slots=True)
class DeliverBatch:
    """Several ``Deliver`` for one actor that arrived together (one network
    frame): one mailbox put for all of them. A ``GuardedActor`` handles each
    in turn, as if it had been sent alone."""

    items: tuple[Deliver, ...]


@dataclass(frozen=True, slots=True)
class ControlRequest:
    method: str
    body: dict[str, Any]
    reply: Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ExecutorEvent:
    """What happened to a task in the executor: prepared, started (or "waiting":
    started, to run once its health check passes), healthy, or exited."""

    kind: str
    task_id: str
    pid: int = 0
    exit_code: int = 0
    err: str = ""


@dataclass(frozen=True, slots=True)
class ExecutorEvents:
    """The executor's events from handling one message, in order: one message
    per batch rather than per task, since at scale the per-message cost of the
    mailboxes dominates."""

    events: tuple[ExecutorEvent, ...]
