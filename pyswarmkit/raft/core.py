"""The pure Raft core: one member's state machine, driven etcd-style.

    tick() / step(msg) / propose(data) ...   inputs
    ready() -> Ready                          outputs: persist, send, apply
    advance(ready)                            "all of that is done"

No I/O, no clock, no threads, no global randomness (the caller passes a
seeded `random.Random`). See docs/raft.md for how a caller drives it.

Decisions worth knowing:
- Membership follows the Raft dissertation §4.1: a member uses the latest
  configuration in its log, committed or not; a leader starts a change only
  when the previous one is committed and it has committed an entry of its own
  term (the fix for the single-server change bug). Changes add or remove one
  member; new members start as learners and are promoted once caught up.
- The leader counts its own unpersisted entries towards commit. That is safe
  because the caller persists a Ready before it sends or applies anything in it.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import accumulate, count
from operator import attrgetter

from .log import RaftLog
from .messages import (
    CC_ADD_LEARNER,
    CC_ADD_VOTER,
    CC_REMOVE,
    CONTEXT_TRANSFER,
    EMPTY_CONF_STATE,
    ENTRY_CONF_CHANGE,
    ENTRY_NORMAL,
    MSG_APP,
    MSG_APP_RESP,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESP,
    MSG_PRE_VOTE,
    MSG_PRE_VOTE_RESP,
    MSG_SNAP,
    MSG_TIMEOUT_NOW,
    MSG_VOTE,
    MSG_VOTE_RESP,
    ConfChange,
    ConfState,
    Entry,
    HardState,
    Message,
    Snapshot,
    apply_conf_change,
)
from .progress import PROBE, REPLICATE, SNAPSHOT, Progress
from .storage import StateSource

_DATA = attrgetter("data")
_TYPE = attrgetter("type")


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class ProposalDropped(Exception):
    """The proposal was not appended; the message says why (e.g. not the leader)."""


@dataclass(frozen=True, slots=True)
class Config:
    election_tick: int = 10
    heartbeat_tick: int = 1
    # A follower campaigns after election_tick plus a random [0, spread) more
    # ticks, spread = election_tick * election_spread (at least one). Raft's
    # usual [T, 2T) window lets a failover take up to 2T plus the vote; half
    # keeps it near 1.5T, and split votes stay rare because members' tick
    # phases differ, so "the same tick" rarely means "the same moment".
    election_spread: float = 0.5
    # Flow control of appends: per message, and messages in flight per follower.
    max_msg_entries: int = 8192
    max_msg_bytes: int = 1 << 20
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0  # 0: unbounded
    # Entries kept behind a snapshot so slow followers need no InstallSnapshot.
    snapshot_keep: int = 500
    check_quorum: bool = True
    pre_vote: bool = True
    auto_promote: bool = True

    def __post_init__(self) -> None:
        if self.heartbeat_tick < 1 or self.election_tick <= self.heartbeat_tick:
            raise ValueError("need 1 <= heartbeat_tick < election_tick")
        if not 0 < self.election_spread <= 1:
            raise ValueError("election_spread must be in (0, 1]")
        if self.max_msg_entries < 1 or self.max_inflight_msgs < 1:
            raise ValueError("max_msg_entries and max_inflight_msgs must be >= 1")


@dataclass(slots=True)
class Ready:
    """What the caller must do, in this order: persist, send, apply."""

    hard_state: HardState | None  # persist (None: unchanged)
    entries: list[Entry]  # persist; may overwrite a suffix already persisted
    snapshot: Snapshot | None  # persist, then restore the application from it
    messages: list[Message]  # send only after persisting the above
    committed_entries: list[Entry]  # apply in order (after the snapshot)
    leader: int = 0
    role: Role = Role.FOLLOWER
    term: int = 0
    # Things only a leader does (scheduling, ...) start or stop on this.
    soft_state_changed: bool = False

    @property
    def must_sync(self) -> bool:
        return bool(self.hard_state is not None or self.entries or self.snapshot is not None)


_WON, _LOST, _PENDING = 0, 1, 2


class RaftNode:
    """One Raft member. Not thread-safe: drive it from one thread or actor."""

    def __init__(
        self,
        id: int,
        peers: Sequence[int],
        storage: StateSource,
        rng: random.Random,
        config: Config | None = None,
    ) -> None:
        if id <= 0:
            raise ValueError("raft ids must be positive")
        self.id = id
        self.cfg = config or Config()
        self._rng = rng
        state = storage.load()
        snap = state.snapshot
        entries = list(state.entries)
        offset, offset_term = (snap.index, snap.term) if snap else (0, 0)
        if entries:
            first = entries[0].index
            if first > offset + 1:
                raise ValueError(f"storage: entries start at {first}, after snapshot {offset}")
            if first <= offset:
                # Entries kept behind the snapshot: the first becomes the log's base.
                offset, offset_term = first, entries[0].term
                del entries[0]
        hs = state.hard_state
        if state.is_empty and peers:
            # Bootstrap: every initial member writes the same entries, so their
            # logs agree from the start (joiners get them by replication).
            entries = [
                Entry(1, i, ENTRY_CONF_CHANGE, ConfChange(CC_ADD_VOTER, p).encode())
                for i, p in enumerate(sorted(set(peers)), start=1)
            ]
            hs = HardState(1, 0, len(entries))
            self.log = RaftLog(0, 0, entries, committed=len(entries), applied=0)
            self.log.stable = 0
        else:
            applied = snap.index if snap else 0
            # A snapshot only ever holds committed state.
            committed = max(hs.commit, applied)
            self.log = RaftLog(offset, offset_term, entries, committed=committed, applied=applied)
            if self.log.committed > self.log.last_index:
                raise ValueError(
                    f"storage: commit {hs.commit} beyond last index {self.log.last_index}"
                )
        self.term = hs.term
        self.vote = hs.vote
        self._prev_hs = state.hard_state
        self._snapshot = snap
        self._pending_snapshot: Snapshot | None = None
        # Configuration: `_conf_base` holds at `_conf_base_index`; `_conf_log`
        # lists the configuration entries after it, in log order.
        self._conf_base = snap.conf if snap else EMPTY_CONF_STATE
        self._conf_base_index = snap.index if snap else 0
        self._conf_log: list[tuple[int, ConfChange]] = []
        self._note_conf_entries(self.log.entries)
        self.voters: frozenset[int] = frozenset()
        self.learners: frozenset[int] = frozenset()
        self._prev_voters: frozenset[int] = frozenset()  # before the latest change
        self.role = Role.FOLLOWER
        self.lead = 0
        self._recompute_conf()
        self._msgs: list[Message] = []
        self._prs: dict[int, Progress] = {}
        self._votes: dict[int, bool] = {}
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self.cfg.election_tick
        self._lead_transferee = 0
        self._term_start_index = 0
        self._prev_soft = (0, Role.FOLLOWER)
        self._reset(self.term)

    # ------------------------------------------------------------------ views

    @property
    def leader(self) -> int:
        return self.lead

    @property
    def commit_index(self) -> int:
        return self.log.committed

    @property
    def applied_index(self) -> int:
        return self.log.applied

    @property
    def last_index(self) -> int:
        return self.log.last_index

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (taken here, received, or loaded at start)."""
        return self._snapshot

    @property
    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    @property
    def lead_transferee(self) -> int:
        return self._lead_transferee

    def progress(self, node_id: int) -> Progress | None:
        """The leader's view of a follower (None when not leader)."""
        return self._prs.get(node_id) if self.role == Role.LEADER else None

    # ------------------------------------------------------------- inputs

    def tick(self) -> None:
        if self.role == Role.LEADER:
            self._tick_leader()
        else:
            self._election_elapsed += 1
            if self._election_elapsed >= self._randomized_timeout and self._promotable():
                self._election_elapsed = 0
                self._hup(transfer=False)

    def campaign(self) -> None:
        """Start an election now (as if the election timer had fired)."""
        self._hup(transfer=False)

    def propose(self, data: bytes) -> int:
        """Append `data` to the leader's log; returns its index."""
        self._check_proposable()
        index = self.log.last_index + 1
        self.log.entries.append(Entry(self.term, index, ENTRY_NORMAL, data))
        self._leader_appended()
        return index

    def propose_batch(self, datas: Iterable[bytes]) -> int:
        """Append many proposals at once; returns the index of the first."""
        self._check_proposable()
        first = self.log.last_index + 1
        term = self.term
        self.log.entries.extend(
            [Entry(term, i, ENTRY_NORMAL, d) for i, d in zip(count(first), datas)]
        )
        if self.log.last_index >= first:
            self._leader_appended()
        return first

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Propose one membership change; returns its index.

        ADD_LEARNER adds a non-voting member (promoted automatically once
        caught up when `auto_promote`), ADD_VOTER promotes a learner, REMOVE
        removes a voter or learner. A leader removing itself keeps leading
        until the change commits, then hands over and steps down.
        """
        self._check_proposable()
        why = self._conf_change_refused(cc)
        if why:
            raise ProposalDropped(why)
        return self._append_conf_change(cc)

    def transfer_leadership(self, to: int) -> None:
        """Hand leadership to voter `to` (Raft dissertation §3.10)."""
        if self.role != Role.LEADER:
            raise ProposalDropped("not the leader")
        if to == self.id or to not in self.voters:
            raise ValueError(f"cannot transfer leadership to {to}: not another voter")
        if self._lead_transferee == to:
            return
        self._lead_transferee = to
        self._election_elapsed = 0  # the transfer must finish within an election timeout
        pr = self._prs[to]
        if pr.match == self.log.last_index:
            self._send(Message(MSG_TIMEOUT_NOW, to, self.id, self.term))
        else:
            self._send_append(to)

    def report_snapshot(self, to: int, ok: bool) -> None:
        """The transport's word on a snapshot send; failure retries via probing."""
        pr = self._prs.get(to)
        if self.role != Role.LEADER or pr is None or pr.state != SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = True  # wait for a heartbeat answer before retrying

    def step(self, m: Message) -> None:
        if m.to != self.id:
            return
        if m.term > self.term:
            if m.type == MSG_VOTE or m.type == MSG_PRE_VOTE:
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead != 0
                    and self._election_elapsed < self.cfg.election_tick
                )
                # §4.2.3: while we hear from a leader, ignore (pre-)votes, so a
                # member that cannot hear the leader cannot depose it.
                if in_lease and m.context != CONTEXT_TRANSFER:
                    return
            if m.type == MSG_PRE_VOTE or (m.type == MSG_PRE_VOTE_RESP and not m.reject):
                # A pre-vote carries a future term; it changes nothing here.
                pass
            elif m.type in (MSG_APP, MSG_HEARTBEAT, MSG_SNAP):
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, 0)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (
                MSG_APP,
                MSG_HEARTBEAT,
            ):
                # A stale leader (e.g. back from a partition) learns our term and
                # steps down; without this it could wait forever, since pre-vote
                # keeps our term from reaching it through elections.
                self._send(Message(MSG_APP_RESP, m.frm, self.id, self.term))
            elif m.type == MSG_PRE_VOTE:
                self._send(Message(MSG_PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return

        if m.type == MSG_VOTE or m.type == MSG_PRE_VOTE:
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # ------------------------------------------------------------- outputs

    def has_ready(self) -> bool:
        log = self.log
        return bool(
            self._msgs
            or log.last_index > log.stable
            or log.committed > log.applied
            or self._pending_snapshot is not None
            or self._hard_state() != self._prev_hs
            or (self.lead, self.role) != self._prev_soft
        )

    def ready(self) -> Ready:
        """Everything to do since the last advance(). Call advance() after it."""
        hs = self._hard_state()
        msgs = self._msgs
        self._msgs = []
        soft = (self.lead, self.role)
        return Ready(
            hard_state=hs if hs != self._prev_hs else None,
            entries=self.log.unstable(),
            snapshot=self._pending_snapshot,
            messages=msgs,
            committed_entries=self.log.next_committed(),
            leader=self.lead,
            role=self.role,
            term=self.term,
            soft_state_changed=soft != self._prev_soft,
        )

    def advance(self, rd: Ready) -> None:
        """The caller persisted, sent and applied everything in `rd`."""
        log = self.log
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
        if rd.snapshot is not None:
            if self._pending_snapshot is rd.snapshot:
                self._pending_snapshot = None
            if log.stable < rd.snapshot.index:
                log.stable = rd.snapshot.index
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            applied = rd.committed_entries[-1].index
            if applied > log.applied:
                log.applied = applied
        self._prev_soft = (rd.leader, rd.role)

    def create_snapshot(self, index: int, data: bytes) -> Snapshot:
        """The application's state at applied `index` is `data`: keep it as the
        latest snapshot and compact the log, keeping `snapshot_keep` entries."""
        log = self.log
        if index > log.applied:
            raise ValueError(f"snapshot at {index} is beyond applied {log.applied}")
        if self._snapshot is not None and index <= self._snapshot.index:
            raise ValueError(f"snapshot at {index} is not newer than {self._snapshot.index}")
        term = log.term(index)
        if term is None:
            raise ValueError(f"snapshot at {index}: entry already compacted")
        conf = self._conf_base
        rest: list[tuple[int, ConfChange]] = []
        for i, cc in self._conf_log:
            if i <= index:
                conf = apply_conf_change(conf, cc)
            else:
                rest.append((i, cc))
        self._conf_base, self._conf_base_index, self._conf_log = conf, index, rest
        snap = Snapshot(index, term, conf, data)
        self._snapshot = snap
        keep_from = min(index - self.cfg.snapshot_keep, log.stable)
        if keep_from > log.offset:
            log.compact(keep_from)
        return snap

    # ------------------------------------------------------------- internals

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _send(self, m: Message) -> None:
        self._msgs.append(m)

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = 0
        self.lead = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        et = self.cfg.election_tick
        spread = max(1, int(et * self.cfg.election_spread))
        self._randomized_timeout = et + self._rng.randrange(spread)
        self._lead_transferee = 0
        self._votes = {}
        self._prs = {}

    def _become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        log = self.log
        nxt = log.last_index + 1
        cfg = self.cfg
        for pid in sorted(self.voters | self.learners):
            self._prs[pid] = Progress(nxt, cfg.max_inflight_msgs, cfg.max_inflight_bytes)
        # §5.4.2 / §8: an empty entry of our term lets earlier entries commit.
        log.entries.append(Entry(self.term, nxt, ENTRY_NORMAL, b""))
        self._term_start_index = nxt
        own = self._prs.get(self.id)
        if own is not None:
            own.match, own.next = nxt, nxt + 1
            own.recent_active = True
        if self._maybe_commit():
            self._after_commit()

    def _hup(self, transfer: bool) -> None:
        if self.role == Role.LEADER or not self._promotable():
            return
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            # Pre-vote (§9.6): ask first, without touching our term, so a member
            # that cannot win never forces the others to a higher term.
            self.role = Role.PRE_CANDIDATE
            self._votes = {}
            self.lead = 0
            term = self.term + 1
            mtype = MSG_PRE_VOTE
        else:
            self._reset(self.term + 1)
            self.role = Role.CANDIDATE
            self.vote = self.id
            term = self.term
            mtype = MSG_VOTE
        result = self._poll(self.id, True)
        if result == _WON:
            if pre:
                self._campaign(pre=False, transfer=False)
            else:
                self._become_leader()
                self._bcast_append()
            return
        log = self.log
        last_index, last_term = log.last_index, log.last_term
        context = CONTEXT_TRANSFER if transfer else 0
        for pid in sorted(self.voters):
            if pid != self.id:
                self._send(
                    Message(
                        mtype,
                        pid,
                        self.id,
                        term,
                        log_term=last_term,
                        index=last_index,
                        context=context,
                    )
                )

    def _poll(self, pid: int, granted: bool) -> int:
        self._votes.setdefault(pid, granted)
        voters = self.voters
        yes = no = 0
        for v, g in self._votes.items():
            if v in voters:
                if g:
                    yes += 1
                else:
                    no += 1
        q = len(voters) // 2 + 1
        if yes >= q:
            return _WON
        if no > len(voters) - q:
            return _LOST
        return _PENDING

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MSG_PRE_VOTE
        resp = MSG_PRE_VOTE_RESP if pre else MSG_VOTE_RESP
        can_vote = (
            self.vote == m.frm
            or (self.vote == 0 and self.lead == 0)
            or (pre and m.term > self.term)
        )
        # §5.2 one vote per term, §5.4.1 only for an up-to-date log.
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp, m.frm, self.id, m.term))
            if not pre:
                self._election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp, m.frm, self.id, self.term, reject=True))

    # -- follower / candidate

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MSG_APP:
            self._election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif t == MSG_HEARTBEAT:
            self._election_elapsed = 0
            self.lead = m.frm
            log = self.log
            log.commit_to(min(m.commit, log.last_index))
            self._send(Message(MSG_HEARTBEAT_RESP, m.frm, self.id, self.term))
        elif t == MSG_SNAP:
            self._election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t == MSG_TIMEOUT_NOW:
            self._hup(transfer=True)

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in (MSG_APP, MSG_HEARTBEAT, MSG_SNAP):
            # Someone won this term (§5.2).
            self._become_follower(self.term, m.frm)
            self._step_follower(m)
            return
        expected = MSG_PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MSG_VOTE_RESP
        if t != expected:
            return
        result = self._poll(m.frm, not m.reject)
        if result == _WON:
            if self.role == Role.PRE_CANDIDATE:
                self._campaign(pre=False, transfer=False)
            else:
                self._become_leader()
                self._bcast_append()
        elif result == _LOST:
            self._become_follower(self.term, 0)

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(Message(MSG_APP_RESP, m.frm, self.id, self.term, index=log.committed))
            return
        if log.term(m.index) != m.log_term:
            # §5.3 consistency check failed. Tell the leader the last index at
            # which our log could agree, so it skips a whole term per round trip.
            hint = log.find_conflict_by_term(min(m.index, log.last_index), m.log_term)
            self._send(
                Message(
                    MSG_APP_RESP,
                    m.frm,
                    self.id,
                    self.term,
                    index=m.index,
                    reject=True,
                    hint=hint,
                    log_term=log.term(hint) or 0,
                )
            )
            return
        ents = m.entries
        last_new = m.index + len(ents)
        k = log.find_conflict(m.index, ents)
        if k < len(ents):
            first = ents[k].index
            if first <= log.last_index:
                log.truncate_after(first - 1)  # raises if it would touch committed entries
                self._conf_truncated(first)
            new = ents if k == 0 else ents[k:]
            log.append(new)
            if any(map(_TYPE, new)):
                self._note_conf_entries(new)
                self._recompute_conf()
        log.commit_to(min(m.commit, last_new))
        self._send(Message(MSG_APP_RESP, m.frm, self.id, self.term, index=last_new))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        log = self.log
        if snap is None:
            return
        if snap.index <= log.committed:
            self._send(Message(MSG_APP_RESP, m.frm, self.id, self.term, index=log.committed))
            return
        if log.term(snap.index) == snap.term:
            # We already have the entries; just learn they are committed.
            log.commit_to(snap.index)
        else:
            log.restore(snap)
            self._snapshot = snap
            self._pending_snapshot = snap
            self._conf_base, self._conf_base_index, self._conf_log = snap.conf, snap.index, []
            self._recompute_conf()
        self._send(Message(MSG_APP_RESP, m.frm, self.id, self.term, index=log.last_index))

    # -- leader

    def _tick_leader(self) -> None:
        cfg = self.cfg
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= cfg.election_tick:
            self._election_elapsed = 0
            if cfg.check_quorum and not self._quorum_active():
                # Check-quorum (§6.2): a leader that cannot hear a majority for an
                # election timeout steps down, so clients go find the real one.
                self._become_follower(self.term, 0)
                return
            self._lead_transferee = 0  # a transfer that did not finish is abandoned
        for pr in self._prs.values():
            if pr.state == SNAPSHOT:
                pr.snap_elapsed += 1
                if pr.snap_elapsed >= cfg.election_tick:
                    # No answer: assume the snapshot was lost and probe again.
                    pr.pending_snapshot = 0
                    pr.become_probe()
        if self._heartbeat_elapsed >= cfg.heartbeat_tick:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _quorum_active(self) -> bool:
        active = 0
        for pid, pr in self._prs.items():
            if pid == self.id:
                continue
            if pr.recent_active and pid in self.voters:
                active += 1
            pr.recent_active = False
        if self.id in self.voters:
            active += 1
        return active >= len(self.voters) // 2 + 1

    def _bcast_heartbeat(self) -> None:
        committed = self.log.committed
        for pid, pr in self._prs.items():
            if pid != self.id:
                # Never tell a follower to commit past what it is known to hold.
                self._send(
                    Message(MSG_HEARTBEAT, pid, self.id, self.term, commit=min(pr.match, committed))
                )

    def _bcast_append(self) -> None:
        for pid in self._prs:
            if pid != self.id:
                self._send_append(pid)

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self._prs[to]
        if pr.is_paused():
            return False
        log = self.log
        if pr.next > log.last_index + 1:
            pr.next = log.last_index + 1
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None:
            return self._send_snapshot(to, pr)
        cfg = self.cfg
        ents = log.slice(pr.next, min(pr.next + cfg.max_msg_entries, log.last_index + 1))
        if not ents and not send_if_empty:
            return False
        size = 0
        if ents:
            size = sum(map(len, map(_DATA, ents)))
            if size > cfg.max_msg_bytes and len(ents) > 1:
                sizes = list(accumulate(map(len, map(_DATA, ents))))
                n = max(1, bisect_right(sizes, cfg.max_msg_bytes))
                ents = ents[:n]
                size = sizes[n - 1]
        self._send(
            Message(
                MSG_APP,
                to,
                self.id,
                self.term,
                log_term=prev_term,
                index=prev,
                commit=log.committed,
                entries=ents,
            )
        )
        if ents:
            if pr.state == REPLICATE:
                last = ents[-1].index
                pr.next = last + 1
                pr.add_inflight(last, size)
            else:
                pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        snap = self._snapshot
        if snap is None:
            return False
        pr.become_snapshot(snap.index)
        self._send(Message(MSG_SNAP, to, self.id, self.term, snapshot=snap))
        return True

    def _step_leader(self, m: Message) -> None:
        t = m.type
        pr = self._prs.get(m.frm)
        if pr is None:
            return
        if t == MSG_APP_RESP:
            pr.recent_active = True
            if m.reject:
                hint = m.hint
                if m.log_term > 0:
                    hint = self.log.find_conflict_by_term(m.hint, m.log_term)
                if pr.maybe_decr_to(m.index, hint):
                    if pr.state == REPLICATE:
                        pr.become_probe()
                    self._send_append(m.frm)
                return
            was_paused = pr.is_paused()
            if not pr.maybe_update(m.index):
                return
            if pr.state == PROBE:
                pr.become_replicate()
            elif pr.state == SNAPSHOT:
                if pr.match >= pr.pending_snapshot:
                    pr.become_probe()
                    pr.become_replicate()
            else:
                pr.free_le(m.index)
            if self._maybe_commit():
                self._bcast_append()
                self._after_commit()
                if self.role != Role.LEADER:
                    return
            elif was_paused:
                self._send_append(m.frm)
            while self._send_append(m.frm, send_if_empty=False):
                pass
            if m.frm == self._lead_transferee and pr.match == self.log.last_index:
                self._send(Message(MSG_TIMEOUT_NOW, m.frm, self.id, self.term))
            self._maybe_promote(m.frm, pr)
        elif t == MSG_HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == REPLICATE and pr.full():
                pr.free_first()
            if pr.match < self.log.last_index:
                self._send_append(m.frm)

    def _maybe_commit(self) -> bool:
        """Raft §5.3/§5.4.2: commit the highest index a majority holds, but only
        by counting replicas of an entry from the current term."""
        voters = self.voters
        if not voters:
            return False
        prs = self._prs
        matches = sorted((prs[v].match if v in prs else 0 for v in voters), reverse=True)
        index = matches[len(matches) // 2]
        log = self.log
        if index > log.committed and log.term(index) == self.term:
            return log.commit_to(index)
        return False

    def _after_commit(self) -> None:
        # A leader removed (or demoted) by a now-committed change steps down,
        # handing over to the most up-to-date voter (dissertation §4.2.2).
        if self.id in self.voters or self._last_conf_index() > self.log.committed:
            return
        best, best_match = 0, -1
        for pid in sorted(self.voters):
            pr = self._prs.get(pid)
            if pr is not None and pr.match > best_match:
                best, best_match = pid, pr.match
        if best and best_match == self.log.last_index:
            self._send(Message(MSG_TIMEOUT_NOW, best, self.id, self.term))
        self._become_follower(self.term, 0)

    def _check_proposable(self) -> None:
        if self.role != Role.LEADER:
            raise ProposalDropped(f"not the leader (leader is {self.lead or 'unknown'})")
        if self._lead_transferee:
            raise ProposalDropped(f"leadership is moving to {self._lead_transferee}")

    def _leader_appended(self) -> None:
        own = self._prs.get(self.id)
        if own is not None:
            own.match = self.log.last_index
            own.next = own.match + 1
        if self._maybe_commit():
            self._after_commit()
        if self.role == Role.LEADER:
            self._bcast_append()

    def _conf_change_refused(self, cc: ConfChange) -> str:
        log = self.log
        if log.committed < self._term_start_index:
            return "configuration change refused: the leader has not committed in its term yet"
        if self._last_conf_index() > log.committed:
            return "configuration change refused: another change is in progress"
        nid = cc.node_id
        if nid <= 0:
            return f"configuration change refused: invalid member id {nid}"
        if cc.type == CC_ADD_LEARNER:
            if nid in self.voters or nid in self.learners:
                return f"configuration change refused: {nid} is already a member"
        elif cc.type == CC_ADD_VOTER:
            if nid not in self.learners:
                return f"configuration change refused: {nid} must join as a learner first"
        elif cc.type == CC_REMOVE:
            if nid not in self.voters and nid not in self.learners:
                return f"configuration change refused: {nid} is not a member"
            if self.voters == {nid}:
                return "configuration change refused: cannot remove the last voter"
        else:
            return f"configuration change refused: unknown type {cc.type}"
        return ""

    def _append_conf_change(self, cc: ConfChange) -> int:
        index = self.log.last_index + 1
        e = Entry(self.term, index, ENTRY_CONF_CHANGE, cc.encode())
        self.log.entries.append(e)
        self._note_conf_entries((e,))
        self._recompute_conf()
        self._leader_appended()
        return index

    def _maybe_promote(self, pid: int, pr: Progress) -> None:
        if (
            self.cfg.auto_promote
            and pid in self.learners
            and pr.match >= self.log.committed
            and not self._lead_transferee
        ):
            cc = ConfChange(CC_ADD_VOTER, pid)
            if not self._conf_change_refused(cc):
                self._append_conf_change(cc)

    # -- configuration

    def _promotable(self) -> bool:
        if self.id in self.voters:
            return True
        # Our own removal is still uncommitted and we may hold the only
        # up-to-date log (the others cannot win without our vote): stand anyway,
        # counting only the votes of the new configuration. Safe because a
        # majority of it overlaps every majority of the one before.
        return self._last_conf_index() > self.log.committed and self.id in self._prev_voters

    def _last_conf_index(self) -> int:
        return self._conf_log[-1][0] if self._conf_log else self._conf_base_index

    def _note_conf_entries(self, ents: Iterable[Entry]) -> None:
        base = self._conf_base_index
        for e in ents:
            if e.type == ENTRY_CONF_CHANGE and e.index > base:
                self._conf_log.append((e.index, ConfChange.decode(e.data)))

    def _conf_truncated(self, first_removed: int) -> None:
        cl = self._conf_log
        if cl and cl[-1][0] >= first_removed:
            while cl and cl[-1][0] >= first_removed:
                cl.pop()
            self._recompute_conf()

    def _recompute_conf(self) -> None:
        cs = self._conf_base
        prev = cs
        for _, cc in self._conf_log:
            prev, cs = cs, apply_conf_change(cs, cc)
        self._prev_voters = frozenset(prev.voters)
        self.voters = frozenset(cs.voters)
        self.learners = frozenset(cs.learners)
        if self.role == Role.LEADER:
            cfg = self.cfg
            members = self.voters | self.learners
            for pid in sorted(members):
                if pid not in self._prs:
                    pr = Progress(
                        self.log.last_index + 1, cfg.max_inflight_msgs, cfg.max_inflight_bytes
                    )
                    self._prs[pid] = pr
            for pid in list(self._prs):
                if pid not in members and pid != self.id:
                    del self._prs[pid]
            if self._lead_transferee and self._lead_transferee not in self.voters:
                self._lead_transferee = 0
