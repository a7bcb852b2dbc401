"""The Raft member actor: drives the pure Raft core from the node's ticks,
persists under ``<state-dir>/raft/``, and applies committed batches to the
store in log order.

Group commit: a proposal only queues its entry; the Ready loop runs once the
mailbox is empty (or after ``READY_EVERY`` messages under a steady stream),
so every proposal that arrived meanwhile shares one write and one fsync.

The member's state (core, log, the store's pending proposals) lives in a
``RaftMember`` that outlives the actor, so a restarted actor carries on
where the last one stopped rather than replaying the log into the store.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import Unavailable
from pyswarmkit.raft import Config, DurableStorage, ProposalDropped, RaftNode, Role
from pyswarmkit.store.entries import encode_batch, encode_snapshot
from pyswarmkit.store.memory import Change, MemoryStore
from pyswarmkit.store.proposer import Done
from pyswarmkit.store.replicated import Pending, ReplicatedStore

log = logging.getLogger(__name__)

# Under a steady stream of proposals, persist and apply at least this often.
READY_EVERY = 256
NO_LEADER = "the swarm has no leader"


def raft_id_of(node_id: str) -> int:
    """A node's Raft ID: positive, 63 bits, the same on every manager."""
    return int.from_bytes(hashlib.sha256(node_id.encode()).digest()[:8], "big") >> 1 or 1


@dataclass(frozen=True, slots=True)
class RaftPropose:
    changes: Sequence[Change]
    now: float
    on_done: Done
    built_at: int | None


class RaftMember:
    """One manager's Raft state: the core, its durable log, and the store it
    replicates. Opening it restores the store from the newest snapshot and
    replays nothing yet: committed entries are applied by the actor."""

    def __init__(
        self,
        node_id: str,
        raft_dir: Path,
        store: MemoryStore,
        *,
        founder: bool,
        snapshot_interval: int = 10_000,
        config: Config | None = None,
        on_leading: Callable[[bool], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self.raft_id = raft_id_of(node_id)
        self.storage = DurableStorage(str(raft_dir))
        torn = self.storage.recovery.torn_tail
        if torn is not None:
            log.warning(
                "raft log: cut %d bytes of a write torn by a crash at offset %d of %s",
                torn.dropped,
                torn.offset,
                torn.path,
            )
        peers = [self.raft_id] if founder else []
        self.core = RaftNode(self.raft_id, peers, self.storage, random.Random(), config)
        self.replica = ReplicatedStore(store)
        self.snapshot_interval = snapshot_interval
        snap = self.core.snapshot
        if snap is not None:
            self.replica.restore(snap.data)
        self.snapshot_index = snap.index if snap is not None else 0
        # The term of the last entry applied: a new leader serves once it has
        # applied an entry of its own term (everything committed before is in).
        self.applied_term = 0
        self.on_leading = on_leading
        self.leading = False
        self.leading_event = threading.Event()
        self.lock = threading.Lock()
        self.closed = False

    @property
    def store(self) -> MemoryStore:
        return self.replica.store

    def is_only_voter(self) -> bool:
        return self.core.voters == frozenset({self.raft_id})

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.replica.fail_pending(Unavailable("the manager is stopping"))
            self.storage.close()


class RaftActor(GuardedActor):
    name = "raft"

    def __init__(self, member: RaftMember) -> None:
        super().__init__()
        self.member = member
        self.core = member.core
        self._unready = 0

    def on_start(self) -> None:
        if self.member.is_only_voter() and self.core.role != Role.LEADER:
            # Nobody to wait for: lead now rather than after an election timeout.
            self.core.campaign()
        self._ready()

    def handle(self, message: Any) -> Any:
        if self.member.closed:
            if isinstance(message, RaftPropose):
                message.on_done(None, Unavailable("the manager is stopping"))
            return None
        if isinstance(message, RaftPropose):
            self._propose(message)
        elif isinstance(message, Tick):
            self.core.tick()
        self._unready += 1
        if self._unready >= READY_EVERY or self.actor_inbox.empty():
            self._ready()
        return None

    def _propose(self, msg: RaftPropose) -> None:
        core = self.core
        if core.role != Role.LEADER:
            msg.on_done(None, Unavailable(f"{NO_LEADER}: try again"))
            return
        try:
            index = core.propose(encode_batch(msg.changes, msg.now))
        except ProposalDropped as exc:
            msg.on_done(None, Unavailable(f"the write was not accepted: {exc}"))
            return
        except (TypeError, ValueError) as exc:
            msg.on_done(None, Unavailable(f"the write could not be encoded: {exc}"))
            return
        self.member.replica.proposed(
            index, Pending(core.term, msg.changes, msg.now, msg.on_done, msg.built_at)
        )

    def _ready(self) -> None:
        self._unready = 0
        member = self.member
        core = self.core
        with member.lock:
            if member.closed:
                return
            while core.has_ready():
                rd = core.ready()
                if rd.must_sync:
                    member.storage.save(rd.hard_state, rd.entries, rd.snapshot)
                    member.storage.sync()
                # Messages to other managers go here once they are peers.
                if rd.snapshot is not None:
                    member.replica.fail_pending(
                        Unavailable("the write was lost to a leader change: retry"),
                        rd.snapshot.index,
                    )
                    member.replica.restore(rd.snapshot.data)
                    member.snapshot_index = rd.snapshot.index
                for entry in rd.committed_entries:
                    member.replica.apply(entry)
                    member.applied_term = entry.term
                core.advance(rd)
            self._maybe_snapshot()
        self._leadership()

    def _maybe_snapshot(self) -> None:
        member = self.member
        applied = self.core.applied_index
        clusters = member.store.clusters()
        interval = clusters[0].spec.raft.snapshot_interval if clusters else member.snapshot_interval
        if applied - member.snapshot_index < max(1, interval):
            return
        index, objects = member.store.dump()
        snap = self.core.create_snapshot(applied, encode_snapshot(index, objects))
        member.storage.save_snapshot(snap)
        member.storage.compact(snap.index - self.core.cfg.snapshot_keep)
        member.snapshot_index = snap.index
        log.info(
            "raft: snapshot of the store at index %d (%d objects)",
            snap.index,
            sum(len(objs) for objs in objects.values()),
        )

    def _leadership(self) -> None:
        member = self.member
        core = self.core
        leading = core.role == Role.LEADER and member.applied_term == core.term
        if leading == member.leading:
            return
        member.leading = leading
        if not leading:
            member.replica.fail_pending(Unavailable(f"{NO_LEADER}: try again"))
            member.leading_event.clear()
        else:
            member.leading_event.set()
        log.info("raft: %s (term %d)", "leading" if leading else "not leading", core.term)
        if member.on_leading is not None:
            try:
                member.on_leading(leading)
            except Exception:
                log.exception("starting or stopping the leader's work failed")


class RaftProposer:
    """The store's proposer on a manager: hands each batch to the Raft member."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def propose(
        self, changes: Sequence[Change], now: float, on_done: Done, built_at: int | None = None
    ) -> None:
        if not self.registry.tell("raft", RaftPropose(changes, now, on_done, built_at)):
            on_done(None, Unavailable("the raft member is not running: try again"))
