"""The Raft member actor: drives the pure Raft core from the node's ticks,
persists under ``<state-dir>/raft/``, talks to the other managers over the
transport, and applies committed batches to the store in log order.

Group commit: a proposal only queues its entry; the Ready loop runs once the
mailbox is empty (or after ``READY_EVERY`` messages under a steady stream),
so every proposal that arrived meanwhile shares one write and one fsync.

A follower's writes go to the leader: the batch is built here, sent to the
leader's member (``RaftForward``), proposed there, and answered here once this
member has applied the entry, so a write returns only after it is committed
and visible locally.

The member's state (core, log, pending proposals) lives in a ``RaftMember``
that outlives the actor, so a restarted actor carries on where the last one
stopped rather than replaying the log into the store.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Deliver, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api import codec
from pyswarmkit.api.errors import FailedPrecondition, PermissionDenied, SwarmError, Unavailable
from pyswarmkit.api.objects import ManagerStatus, Node, replace
from pyswarmkit.api.objects import RaftMember as MemberInfo
from pyswarmkit.api.protocol import (
    Body,
    Error,
    RaftForward,
    RaftJoin,
    RaftJoined,
    RaftMessages,
    RaftPart,
    RaftProposed,
)
from pyswarmkit.api.states import NodeRole, Reachability
from pyswarmkit.membership import (
    heard_reachability,
    plan_roles,
    raft_id_of,
    reachability_changes,
)
from pyswarmkit.raft import (
    CC_ADD_LEARNER,
    CC_REMOVE,
    ConfChange,
    Config,
    DurableStorage,
    Message,
    ProposalDropped,
    RaftNode,
    Role,
    decode_messages,
    to_wire,
)
from pyswarmkit.raft.crypt import Sealer
from pyswarmkit.raft.parts import CHUNK, Assembler, split
from pyswarmkit.store.entries import (
    EntryError,
    decode_batch,
    encode_batch,
    encode_group,
    encode_snapshot,
)
from pyswarmkit.store.memory import Change, MemoryStore
from pyswarmkit.store.proposer import Done
from pyswarmkit.store.replicated import Pending, ReplicatedStore
from pyswarmkit.transport.bus import Bus, Envelope

log = logging.getLogger(__name__)

# Under a steady stream of proposals, persist and apply at least this often.
READY_EVERY = 256
# The store actor hands over at most this many proposals in one message.
HOLD_AT_MOST = 256
# Writes that reach the leader between two Ready rounds share one log entry,
# up to this many bytes of batches (a larger one goes alone).
GROUP_BYTES = 1 << 20
NO_LEADER = "the swarm has no leader"
# What a writer can do: an election takes a second or two; a lost majority
# needs the operator.
NO_LEADER_HINT = (
    "try again in a few seconds; if most managers are gone for good, restart a "
    "surviving one with swarmd --force-new-cluster"
)
# How long a follower waits for the leader to take a forwarded write.
FORWARD_TIMEOUT = 5.0
# Raft messages older than this are useless to their receiver.
MESSAGE_TTL = 2.0
# The parts of a large bundle (a snapshot) may take longer to go through.
PARTS_TTL = 60.0
# A manager that joined asks the leader to make it a member this often until it is one.
JOIN_RETRY = 2.0
# How often the leader brings the managers' reachability up to date.
REACHABILITY_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class RaftPropose:
    changes: Sequence[Change]
    now: float
    on_done: Done
    built_at: int | None


@dataclass(frozen=True, slots=True)
class RaftProposals:
    """Several proposals handed over at once."""

    items: tuple[RaftPropose, ...]


@dataclass(frozen=True, slots=True)
class _Grouped:
    """A write waiting, on the leader, for the entry it will share: its
    encoded batch, its outcome's recipient, and the follower's request when
    it was forwarded (answered with where the write went)."""

    data: bytes
    changes: Sequence[Change]
    now: float
    on_done: Done
    built_at: int | None
    forwarded: Envelope | None = None


@dataclass(frozen=True, slots=True)
class _Forwarding:
    propose: RaftPropose
    expires: float
    # The Raft ID of the leader it went to.
    leader: int


class RaftMember:
    """One manager's Raft state: the core, its durable log, and the store it
    replicates. Opening it restores the store from the newest snapshot;
    committed entries after it are applied by the actor."""

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
        sealer: Sealer | None = None,
        rewrite_log: bool = False,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self.raft_dir = raft_dir
        # Told why, when this member cannot go on (its log cannot be written).
        self.on_fatal = on_fatal
        self.raft_id = raft_id_of(node_id)
        # With a sealer (the manager's Raft key) the log is encrypted at rest;
        # rewrite_log moves all of it to the sealer's key as it opens.
        self.storage = DurableStorage(str(raft_dir), sealer=sealer, rewrite=rewrite_log)
        torn = self.storage.recovery.torn_tail
        if torn is not None:
            log.warning(
                "raft log: cut %d bytes of a write torn by a crash or a full disk"
                " at offset %d of %s",
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
            self.replica.restore(snap.data, snap.index)
        self.snapshot_index = snap.index if snap is not None else 0
        # The term of the last entry applied: a new leader serves once it has
        # applied an entry of its own term (everything committed before is in).
        self.applied_term = 0
        self.on_leading = on_leading
        self.leading = False
        self.leading_event = threading.Event()
        # Set by the node once it has a transport to the other managers.
        self.bus: Bus | None = None
        # A manager that joined: (the manager to ask, this one's address) until
        # the members include it.
        self.join_via: tuple[str, str] | None = None
        self.lock = threading.Lock()
        self.closed = False
        # Kept by the actor: its ticks so far, and the tick each member was
        # last heard from at (the managers' reachability: see heard_reachability).
        self.ticks = 0
        self.heard_tick: dict[int, int] = {}

    def heard_reachability(self) -> dict[str, Reachability]:
        """The managers whose Manager Status says otherwise than whether this
        member heard from them within two election timeouts."""
        return heard_reachability(
            self.store.nodes(),
            self.members(),
            self.raft_id,
            self.heard_tick,
            self.ticks,
            2 * self.core.cfg.election_tick,
        )

    @property
    def store(self) -> MemoryStore:
        return self.replica.store

    def is_only_voter(self) -> bool:
        return self.core.voters == frozenset({self.raft_id})

    def members(self) -> frozenset[int]:
        return self.core.voters | self.core.learners

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
        # Forwarded writes waiting for the leader's answer, by message id.
        self._forwarding: dict[int, _Forwarding] = {}
        # Raft ID -> node ID of the managers in the store, and the store index it was read at.
        self._nodes: dict[int, str] = {}
        self._nodes_at = -1
        # Members heard from (their IDs proved by their keys): a manager that
        # just joined answers the leader before its store names anyone.
        self._heard: dict[int, str] = {}
        self.dropped = 0
        self._next_join = 0.0
        self._next_reach = 0.0
        self._next_roles = 0.0
        # Raft messages too large for one frame arriving in parts, by sender;
        # and the number of the last bundle this member sent in parts.
        self._assembler = Assembler()
        self._bundles = 0
        # Writes for the next log entry (leader only), and their bytes.
        self._group: list[_Grouped] = []
        self._group_bytes = 0

    def on_start(self) -> None:
        if self.member.is_only_voter() and self.core.role != Role.LEADER:
            # Nobody to wait for: lead now rather than after an election timeout.
            self.core.campaign()
        self._ready()

    def on_stop(self) -> None:
        for fwd in self._forwarding.values():
            fwd.propose.on_done(None, Unavailable("the manager is stopping"))
        self._forwarding.clear()
        group, self._group = self._group, []
        for g in group:
            if g.forwarded is None:
                g.on_done(None, Unavailable("the manager is stopping"))

    def handle(self, message: Any) -> Any:
        if self.member.closed:
            if isinstance(message, RaftPropose):
                message.on_done(None, Unavailable("the manager is stopping"))
            elif isinstance(message, RaftProposals):
                for p in message.items:
                    p.on_done(None, Unavailable("the manager is stopping"))
            return None
        if isinstance(message, RaftProposals):
            for p in message.items:
                self._propose(p)
        elif isinstance(message, RaftPropose):
            self._propose(message)
        elif isinstance(message, Tick):
            self.member.ticks += 1
            self.core.tick()
            self._expire_forwards(message.now)
            self._ask_to_join(message.now)
            self._reachability(message.now)
            self._roles(message.now)
        elif isinstance(message, Deliver):
            self._delivered(message)
        self._unready += 1
        if self._unready >= READY_EVERY or self.actor_inbox.empty():
            self._ready()
        return None

    # --- proposals ---------------------------------------------------------------

    def _propose(self, msg: RaftPropose) -> None:
        if self.core.role != Role.LEADER:
            self._forward(msg)
            return
        try:
            data = encode_batch(msg.changes, msg.now)
        except (TypeError, ValueError) as exc:
            msg.on_done(None, Unavailable(f"the write could not be encoded: {exc}"))
            return
        self._add_to_group(_Grouped(data, msg.changes, msg.now, msg.on_done, msg.built_at))

    def _add_to_group(self, item: _Grouped) -> None:
        if self._group_bytes + len(item.data) > GROUP_BYTES:
            self._propose_group()
        self._group.append(item)
        self._group_bytes += len(item.data)

    def _propose_group(self) -> None:
        """Propose the writes gathered since the last Ready as one entry."""
        group = self._group
        if not group:
            return
        self._group = []
        self._group_bytes = 0
        core = self.core
        try:
            index = core.propose(encode_group([g.data for g in group]))
        except ProposalDropped as exc:
            # Nothing of the group was appended, so each write may go on to
            # whoever leads now: a leadership change between a write's arrival
            # and the next Ready is no reason to fail it. A follower's write
            # goes back to that follower, which tries the new leader itself.
            err = Unavailable(f"the write was not accepted ({exc}): try again")
            moved = core.role != Role.LEADER
            for g in group:
                if g.forwarded is not None:
                    self._reply(g.forwarded, Error.of(err))
                elif moved:
                    self._forward(RaftPropose(g.changes, g.now, g.on_done, g.built_at))
                else:
                    g.on_done(None, err)
            return
        replica = self.member.replica
        term = core.term
        for part, g in enumerate(group):
            replica.proposed(index, Pending(term, g.changes, g.now, g.on_done, g.built_at), part)
            if g.forwarded is not None:
                self._reply(g.forwarded, RaftProposed(index, term, part))

    def _forward(self, msg: RaftPropose) -> None:
        leader = self._node_of(self.core.leader) if self.core.leader else None
        bus = self.member.bus
        if leader is None or bus is None:
            msg.on_done(None, Unavailable(f"{NO_LEADER}: {NO_LEADER_HINT}"))
            return
        now = clock.monotonic()
        env = Envelope(
            self.member.node_id,
            leader,
            "raft",
            RaftForward(encode_batch(msg.changes, msg.now)),
            deadline=now + FORWARD_TIMEOUT,
        )
        self._forwarding[env.id] = _Forwarding(msg, now + FORWARD_TIMEOUT, self.core.leader)
        if not bus.send(env):
            del self._forwarding[env.id]
            msg.on_done(None, Unavailable(f"cannot reach the leader {leader}: try again"))

    def _expire_forwards(self, now: float) -> None:
        """Fail the forwarded writes that will get no answer: those past their
        time, and at once those whose leader this member no longer follows (it
        died or lost its term: waiting out the timeout kept a writer hanging
        for seconds after a new leader was serving). Either may have reached
        the log, so neither is said to have failed."""
        leader = self.core.leader
        for i, fwd in list(self._forwarding.items()):
            if fwd.leader != leader:
                why = "the leader was lost before it answered"
            elif fwd.expires <= now:
                why = "the leader did not answer in time"
            else:
                continue
            del self._forwarding[i]
            fwd.propose.on_done(
                None,
                Unavailable(
                    f"{why}; whether the write took effect is unknown: check before trying it again"
                ),
            )

    def _ask_to_join(self, now: float) -> None:
        member = self.member
        if member.join_via is None:
            return
        if member.raft_id in member.members() and self._recorded(member.join_via[1]):
            log.info("raft: this manager is a member (term %d)", self.core.term)
            member.join_via = None
            return
        if now < self._next_join or member.bus is None:
            return
        self._next_join = now + JOIN_RETRY
        via, addr = member.join_via
        if self.core.leader:
            via = self._node_of(self.core.leader) or via
        member.bus.send(
            Envelope(member.node_id, via, "raft", RaftJoin(addr), deadline=now + JOIN_RETRY)
        )

    def _recorded(self, addr: str) -> bool:
        """Whether the swarm's store holds this manager's address (so others dial it)."""
        node = self.member.store.get_node(self.member.node_id)
        return (
            node is not None
            and node.manager_status is not None
            and (node.manager_status.addr == addr)
        )

    def _reachability(self, now: float) -> None:
        """The leader keeps each manager's Manager Status up to date."""
        member = self.member
        if not member.leading or now < self._next_reach:
            return
        self._next_reach = now + REACHABILITY_EVERY
        changes = reachability_changes(member.store.nodes(), member.heard_reachability())
        if changes:
            self._propose(RaftPropose(changes, clock.wall(), _quiet, None))

    def _roles(self, now: float) -> None:
        """The leader carries out promotions, demotions and removals."""
        member = self.member
        if not member.leading or now < self._next_roles:
            return
        self._next_roles = now + REACHABILITY_EVERY
        plan = plan_roles(member.store.nodes(), member.members(), member.raft_id)
        if plan.hand_over:
            self._hand_over()
        for rid, why in plan.remove:
            self._remove_member(rid, why)
        if plan.changes:
            for ch in plan.changes:
                if isinstance(ch.obj, Node):
                    log.info("raft: node %s is a %s now", ch.obj.id, ch.obj.role.name.lower())
            self._propose(RaftPropose(plan.changes, clock.wall(), _quiet, None))

    def _remove_member(self, rid: int, why: str) -> None:
        try:
            self.core.propose_conf_change(ConfChange(CC_REMOVE, rid))
        except ProposalDropped as exc:
            log.debug("raft: not removing member %x yet: %s", rid, exc)
            return
        log.info("raft: removing member %x (%s)", rid, why)

    def _hand_over(self) -> None:
        """This leader is being demoted: leadership goes to the most
        up-to-date other voter first."""
        core = self.core
        if core.lead_transferee:
            return
        best, best_match = 0, -1
        for rid in core.voters - {self.member.raft_id}:
            progress = core.progress(rid)
            if progress is not None and progress.match > best_match:
                best, best_match = rid, progress.match
        if best:
            log.info("raft: handing leadership over to %x before this manager is demoted", best)
            core.transfer_leadership(best)

    # --- from other managers -----------------------------------------------------

    def _delivered(self, msg: Deliver) -> None:
        env = msg.envelope
        body = env.body
        if env.expired(clock.monotonic()):
            self.dropped += 1
            return
        if env.reply_to and env.reply_to in self._forwarding:
            self._forward_answered(self._forwarding.pop(env.reply_to), body)
            return
        if isinstance(body, RaftMessages):
            self._step(env, body)
        elif isinstance(body, RaftPart):
            whole, why = self._assembler.add(
                env.source, body.bundle, body.offset, body.size, body.data
            )
            if why:
                self.dropped += 1
                log.warning("raft: dropped %s from %s", why, env.source)
            elif whole is not None:
                self._step(env, RaftMessages(whole))
        elif isinstance(body, RaftForward):
            self._forwarded(env, body)
        elif isinstance(body, RaftJoin):
            self._join(env, msg.addr, body)
        elif isinstance(body, Error) and body.request == "raft_join":
            log.warning("raft: %s refused to add this manager: %s", env.source, body.message)
        elif not isinstance(body, Error | RaftJoined):
            self.dropped += 1
            log.warning("raft: ignored %s from %s", env.kind, env.source)

    def _step(self, env: Envelope, body: RaftMessages) -> None:
        sender = raft_id_of(env.source)
        try:
            msgs = decode_messages(body.payload)
        except ValueError as exc:
            self.dropped += 1
            log.warning("raft: dropped messages from %s: %s", env.source, exc)
            return
        me = self.member.raft_id
        for m in msgs:
            if m.frm != sender or m.to != me:
                self.dropped += 1
                log.warning(
                    "raft: dropped a message from %s claiming to be %d for %d",
                    env.source,
                    m.frm,
                    m.to,
                )
                continue
            self._heard[sender] = env.source
            self.member.heard_tick[sender] = self.member.ticks
            self.core.step(m)

    def _forwarded(self, env: Envelope, body: RaftForward) -> None:
        """The leader takes a follower's batch: proposes it, and says where."""
        core = self.core
        if core.role != Role.LEADER:
            self._reply(env, Error.of(Unavailable(f"{NO_LEADER}: this manager does not lead")))
            return
        try:
            changes, now = decode_batch(body.batch)
        except EntryError as exc:
            self._reply(env, Error.of(FailedPrecondition(str(exc)), "raft_forward"))
            return
        # Applied here from the batch already decoded (and checked, before it
        # could enter the log); the follower hears the outcome when it applies.
        self._add_to_group(_Grouped(body.batch, changes, now, _quiet, None, env))

    def _forward_answered(self, fwd: _Forwarding, body: Body) -> None:
        msg = fwd.propose
        if isinstance(body, RaftProposed):
            pending = Pending(body.term, msg.changes, msg.now, msg.on_done, msg.built_at)
            self.member.replica.proposed(body.index, pending, body.part)
        elif isinstance(body, Error):
            msg.on_done(None, body.to_error())
        else:
            msg.on_done(None, Unavailable(f"the leader answered {body.kind}"))

    def _join(self, env: Envelope, addr: str, body: RaftJoin) -> None:
        """A manager that joined with the manager token becomes a member:
        recorded on its node, then added to Raft as a learner (promoted to
        voter once its log has caught up)."""
        core = self.core
        if core.role != Role.LEADER:
            self._reply(env, Error.of(Unavailable(f"{NO_LEADER}: this manager does not lead")))
            return
        node = self.member.store.get_node(env.source)
        if node is None or node.role != NodeRole.MANAGER:
            self._reply(
                env, Error.of(PermissionDenied("only a manager may join the managers"), "raft_join")
            )
            return
        raft_id = raft_id_of(node.id)
        if raft_id not in self.member.members():
            context = codec.encode(MemberInfo(raft_id, node.id, body.addr))
            try:
                core.propose_conf_change(ConfChange(CC_ADD_LEARNER, raft_id, context))
            except ProposalDropped as exc:
                self._reply(env, Error.of(Unavailable(f"not now: {exc}; try again"), "raft_join"))
                return
            log.info("raft: adding manager %s (%s) as a member", node.id, body.addr)
        status = node.manager_status
        if status is None or status.addr != body.addr or status.raft_id != raft_id:
            fresh = ManagerStatus(
                raft_id=raft_id, addr=body.addr, reachability=Reachability.REACHABLE
            )
            updated = replace(node, manager_status=fresh)
            self._propose(RaftPropose([Change("update", updated)], clock.wall(), _ignore, None))
        self._reply(env, RaftJoined(raft_id))

    def _reply(self, env: Envelope, body: Body) -> None:
        bus = self.member.bus
        if bus is None:
            return
        bus.send(
            Envelope(
                self.member.node_id,
                env.source,
                env.dest_actor,
                body,
                reply_to=env.id,
                deadline=clock.monotonic() + FORWARD_TIMEOUT,
            )
        )

    # --- the Ready loop ----------------------------------------------------------

    def _ready(self) -> None:
        self._unready = 0
        member = self.member
        core = self.core
        with member.lock:
            if member.closed:
                return
            self._propose_group()
            while core.has_ready():
                rd = core.ready()
                if rd.must_sync:
                    try:
                        member.storage.save(rd.hard_state, rd.entries, rd.snapshot)
                        member.storage.sync()
                    except OSError as exc:
                        self._storage_failed(exc)
                        return
                if rd.messages:
                    self._send(rd.messages)
                if rd.snapshot is not None:
                    member.replica.fail_pending(
                        Unavailable("the write was lost to a leader change: retry"),
                        rd.snapshot.index,
                    )
                    member.replica.restore(rd.snapshot.data, rd.snapshot.index)
                    member.snapshot_index = rd.snapshot.index
                remember = bool(self._forwarding)
                for entry in rd.committed_entries:
                    member.replica.apply(entry, remember)
                    member.applied_term = entry.term
                core.advance(rd)
            try:
                self._maybe_snapshot()
            except OSError as exc:
                self._storage_failed(exc)
                return
        self._leadership()

    def _storage_failed(self, exc: OSError) -> None:
        """A write or fsync of the log failed (a full disk, an I/O error).
        What reached the disk is now unknown, and a log written past a torn
        record would lose what follows it on replay: stop this manager now
        (as etcd does), with its log ending at most in one torn record, which
        the next start cuts off. The rest of the swarm's managers go on; this
        one catches up when started again. Called with the member's lock held."""
        member = self.member
        member.closed = True
        member.storage.abandon()
        why = exc.strerror or str(exc)
        message = (
            f"raft: cannot write this manager's log under {member.raft_dir}: {why}; "
            "this manager stops so that its log stays whole: make room on that disk "
            "and start swarmd again (it replays its log and catches up)"
        )
        # Writes forwarded to the leader, or already sent to the followers,
        # may commit all the same: their callers cannot be told they failed.
        member.replica.fail_pending(
            Unavailable(
                f"this manager stopped: it cannot write its log ({why}); whether the write "
                "took effect is unknown: check before trying it again"
            )
        )
        if member.on_fatal is not None:
            member.on_fatal(message)
        else:
            log.error("%s", message)

    def _send(self, messages: list[Message]) -> None:
        bus = self.member.bus
        if bus is None:
            return
        by_peer: dict[int, list[Any]] = {}
        for m in messages:
            by_peer.setdefault(m.to, []).append(to_wire(m))
        deadline = clock.monotonic() + MESSAGE_TTL
        for peer, wire in by_peer.items():
            node_id = self._node_of(peer)
            if node_id is None:
                self.dropped += len(wire)
                continue
            payload = msgspec.msgpack.encode(wire)
            if len(payload) > CHUNK:
                self._send_parts(node_id, payload)
                continue
            body = RaftMessages(payload)
            bus.send(Envelope(self.member.node_id, node_id, "raft", body, deadline=deadline))

    def _send_parts(self, node_id: str, payload: bytes) -> None:
        """Send messages too large for one frame (a snapshot, a huge entry)
        in parts; the same connection keeps them in order."""
        bus = self.member.bus
        if bus is None:
            return
        self._bundles += 1
        deadline = clock.monotonic() + PARTS_TTL
        for offset, data in split(payload):
            body = RaftPart(self._bundles, offset, len(payload), data)
            if not bus.send(
                Envelope(self.member.node_id, node_id, "raft", body, deadline=deadline)
            ):
                return
        log.info("raft: sent %d bytes to %s in parts", len(payload), node_id)

    def _node_of(self, raft_id: int) -> str | None:
        store = self.member.store
        if self._nodes_at != store.index:
            self._nodes = {
                raft_id_of(n.id): n.id for n in store.nodes() if n.role == NodeRole.MANAGER
            }
            self._nodes_at = store.index
        return self._nodes.get(raft_id) or self._heard.get(raft_id)

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
            # Followers have not answered a leader this new yet: give them time.
            self._next_reach = clock.monotonic() + 2 * REACHABILITY_EVERY
        log.info("raft: %s (term %d)", "leading" if leading else "not leading", core.term)
        if member.on_leading is not None:
            try:
                member.on_leading(leading)
            except Exception:
                log.exception("starting or stopping the leader's work failed")


def _ignore(batch: object, err: SwarmError | None) -> None:
    if err is not None:
        log.warning("raft: could not record a new manager: %s", err)


def _quiet(batch: object, err: SwarmError | None) -> None:
    pass


class RaftProposer:
    """The store's proposer on a manager: hands batches to the Raft member,
    those proposed together in one message (per write, the hop between the
    two actors cost as much as the rest of the leader's work)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._held: list[RaftPropose] = []

    def propose(
        self, changes: Sequence[Change], now: float, on_done: Done, built_at: int | None = None
    ) -> None:
        self._held.append(RaftPropose(changes, now, on_done, built_at))
        if len(self._held) >= HOLD_AT_MOST:
            self.flush()

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        if not self.registry.tell("raft", RaftProposals(tuple(held))):
            for p in held:
                p.on_done(None, Unavailable("the raft member is not running: try again"))
