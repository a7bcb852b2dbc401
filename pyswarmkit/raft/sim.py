"""Seeded fault simulator for the Raft core: `python -m pyswarmkit.raft.sim`.

One seed draws a whole run: cluster size and timing, message loss, delay,
duplication and reordering, symmetric and one-way partitions, crashes (which
lose unsynced writes and may tear the last WAL record) and restarts from the
real durable log on a simulated disk, membership changes and leadership
transfers during faults, and client proposals throughout. Everything runs in
one thread on virtual time, so a seed replays exactly.

A run has two phases. Safety: faults as above, with the invariants of
`simcheck` checked after every step. Liveness: the network heals, every
member restarts, and within a bound a fresh proposal must be acknowledged and
every member of the configuration must have applied every acknowledged
proposal.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack

from .core import Config, ProposalDropped, RaftNode, Ready, Role
from .crypt import Sealer
from .durable import DurableStorage
from .fs import MemFS
from .messages import (
    CC_ADD_LEARNER,
    CC_NAMES,
    CC_REMOVE,
    ConfChange,
    Message,
    from_wire,
    to_wire,
)
from .simcheck import Checker, Violation, snapshot_data

TICK = 10  # virtual time units per nominal tick

# Event kinds, in the heap as (time, seq, kind, arg).
_TICK, _DELIVER, _RESTART, _CHAOS, _PROPOSE, _HEAL = range(6)


@dataclass
class Params:
    """Everything the seed decides up front."""

    nodes: int
    churn: bool
    election_tick: int
    heartbeat_tick: int
    max_msg_entries: int
    max_inflight: int
    snapshot_every: int
    snapshot_keep: int
    segment_bytes: int
    loss: float
    dup: float
    max_delay: int
    long_delay: float
    chaos_every: int
    propose_every: int
    safety_time: int
    liveness_time: int
    wire_every: int  # every n-th message goes through msgpack and back
    restart_max: int  # ticks a crashed member stays down, at most
    # Relative weights of the fault actions.
    w_crash: float
    w_partition: float
    w_heal: float
    w_conf: float
    w_transfer: float
    # Chance that a member crashes while persisting a Ready (leaders only, or all).
    crash_on_write: float
    crash_leaders_only: bool

    @staticmethod
    def draw(rng: random.Random, nodes: int | None, long_run: bool) -> Params:
        # Two seeds in five are "churn" runs: a small cluster whose
        # leaders keep crashing mid-replication, one entry per message. That
        # is where old-term entries get re-replicated by new leaders (the
        # Raft paper's Figure 8), so commit-rule bugs surface there.
        churn = rng.random() < 0.4
        n = nodes if nodes is not None else (3 if churn else rng.choice((3, 3, 5, 5, 7)))
        et = rng.randint(4, 10)
        return Params(
            nodes=n,
            churn=churn,
            election_tick=et,
            heartbeat_tick=rng.choice((1, 1, 2)),
            max_msg_entries=1 if churn else rng.choice((1, 2, 4, 16, 64)),
            max_inflight=rng.choice((1, 2, 4, 256)),
            snapshot_every=rng.choice((5, 10, 20, 40, 1000)),
            snapshot_keep=rng.choice((0, 1, 3, 10)),
            segment_bytes=rng.choice((256, 1024, 8192, 1 << 20)),
            loss=rng.choice((0.0, 0.01, 0.05, 0.1, 0.25)),
            dup=rng.choice((0.0, 0.01, 0.05)),
            max_delay=rng.choice((2, 5, 10, 20)),
            long_delay=rng.choice((0.0, 0.01, 0.05)),
            chaos_every=rng.choice((20, 40)) if churn else rng.choice((40, 80, 150, 300)),
            propose_every=rng.choice((5, 10, 20, 40)),
            safety_time=rng.randint(150, 300) * TICK * (4 if long_run else 1) * (3 if churn else 1),
            liveness_time=400 * TICK,
            wire_every=rng.choice((1, 7, 50)),
            restart_max=5 if churn else rng.choice((5, 20, 60)),
            w_crash=6.0 if churn else rng.choice((1.0, 3.0, 6.0)),
            w_partition=rng.choice((1.0, 3.0, 6.0)),
            w_heal=rng.choice((1.0, 2.0)),
            w_conf=rng.choice((0.5, 2.0, 4.0)),
            w_transfer=rng.choice((0.2, 1.0)),
            crash_on_write=rng.choice((0.05, 0.1)) if churn else rng.choice((0.0, 0.01, 0.03)),
            crash_leaders_only=rng.random() < 0.5,
        )


@dataclass
class SimNode:
    id: int
    fs: MemFS
    tick_every: int
    peers: tuple[int, ...]
    core: RaftNode | None = None
    storage: DurableStorage | None = None
    app_index: int = 0
    app_digest: int = 0
    last_snapshot: int = 0
    commit: int = 0  # in-memory commit of this incarnation
    durable_commit: int = 0  # commit of the last synced hard state
    led_term: int = 0
    crash_armed: str = ""  # "sync" or "send": where the crash happens
    crash_countdown: int = 0  # Readies to persist before it does
    # index -> (term, data) proposed here while leader, not yet applied
    proposals: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    starts: int = 0  # how many times its storage was opened

    @property
    def up(self) -> bool:
        return self.core is not None


class _Crash(Exception):
    pass


class Cluster:
    def __init__(
        self, seed: int, nodes: int | None = None, long_run: bool = False, verbose: bool = False
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.p = Params.draw(self.rng, nodes, long_run)
        self.verbose = verbose
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, int, object]] = []
        self.check = Checker()
        self.nodes: dict[int, SimNode] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.liveness = False
        self._next_id = self.p.nodes + 1
        self._proposal_seq = 0
        self._msg_count = 0
        self._link_clock: dict[tuple[int, int], int] = {}
        self.liveness_time = self.p.liveness_time
        self.stats = {"steps": 0, "msgs": 0, "dropped": 0, "crashes": 0, "elections": 0}
        self.stats.update({"conf_changes": 0, "snapshots_sent": 0, "acked": 0, "torn": 0})
        peers = tuple(range(1, self.p.nodes + 1))
        for nid in peers:
            self._add_node(nid, peers)
        self._schedule(self._jitter(self.p.chaos_every), _CHAOS, None)
        self._schedule(self._jitter(self.p.propose_every), _PROPOSE, None)

    # -- plumbing

    def _log(self, text: str) -> None:
        if self.verbose:
            print(f"{self.now:7d} {text}")

    def _schedule(self, delay: int, kind: int, arg: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, kind, arg))

    def _jitter(self, mean: int) -> int:
        return self.rng.randint(1, 2 * mean)

    def _config(self) -> Config:
        p = self.p
        return Config(
            election_tick=p.election_tick,
            heartbeat_tick=p.heartbeat_tick,
            max_msg_entries=p.max_msg_entries,
            max_msg_bytes=64 * p.max_msg_entries,
            max_inflight_msgs=p.max_inflight,
            snapshot_keep=p.snapshot_keep,
        )

    def _add_node(self, nid: int, peers: tuple[int, ...]) -> SimNode:
        node = SimNode(nid, MemFS(), TICK + self.rng.randint(-1, 1), peers)
        self.nodes[nid] = node
        self._start(node)
        self._schedule(self.rng.randint(1, TICK), _TICK, nid)
        return node

    def _start(self, node: SimNode) -> None:
        # Odd members encrypt their log from their first restart on: the rewrite
        # of a log written in clear, then sealed records, under the same faults.
        sealer = Sealer(bytes([node.id % 256]) * 32) if node.id % 2 and node.starts else None
        node.starts += 1
        storage = DurableStorage(
            f"/data/{node.id}", node.fs, segment_bytes=self.p.segment_bytes, sealer=sealer
        )
        if storage.recovery.torn_tail is not None:
            self.stats["torn"] += 1
        core = RaftNode(
            node.id, node.peers, storage, random.Random(self.rng.getrandbits(64)), self._config()
        )
        node.storage, node.core = storage, core
        if core.commit_index < node.durable_commit:
            raise Violation(
                f"node {node.id} restarted with commit {core.commit_index}, "
                f"below its durable commit {node.durable_commit}"
            )
        node.commit = core.commit_index
        snap = core.snapshot
        if snap is not None:
            node.app_digest = self.check.on_restore(node.id, snap)
            node.app_index = snap.index
            node.last_snapshot = snap.index
        else:
            node.app_index = node.app_digest = node.last_snapshot = 0
        node.proposals.clear()
        node.led_term = 0
        self._log(f"n{node.id} start commit={core.commit_index} last={core.last_index}")

    def _crash(self, node: SimNode) -> None:
        assert node.storage is not None
        self.stats["crashes"] += 1
        self._log(f"n{node.id} crash")
        node.core = None
        node.storage = None
        node.crash_armed = ""
        node.fs.crash(self.rng)
        if not self.liveness:
            self._schedule(self.rng.randint(1, self.p.restart_max) * TICK, _RESTART, node.id)

    # -- driving a member

    def _drive(self, node: SimNode) -> None:
        core = node.core
        while core is not None and core.has_ready():
            rd = core.ready()
            self._handle_ready(node, core, rd)
            core = node.core

    def _handle_ready(self, node: SimNode, core: RaftNode, rd: Ready) -> None:
        check = self.check
        storage = node.storage
        assert storage is not None
        check.on_ready(node.id, core, rd)
        if rd.role == Role.LEADER and node.led_term != rd.term:
            node.led_term = rd.term
            self.stats["elections"] += 1
            self._log(f"n{node.id} leads term {rd.term}")
            check.check_new_leader(node.id, core)
        p = self.p
        if (
            p.crash_on_write
            and rd.must_sync
            and not self.liveness
            and not node.crash_armed
            and (rd.role == Role.LEADER or not p.crash_leaders_only)
            and self.rng.random() < p.crash_on_write
        ):
            node.crash_armed = self.rng.choice(("sync", "send"))
            node.crash_countdown = 0
        storage.save(rd.hard_state, rd.entries, rd.snapshot)
        if node.crash_armed and rd.must_sync:
            if node.crash_countdown > 0:
                node.crash_countdown -= 1
            elif node.crash_armed == "sync":
                storage.flush()  # written, not fsynced: the crash keeps any prefix
                self._crash(node)
                return
        storage.sync()
        if rd.hard_state is not None:
            if rd.hard_state.commit < node.durable_commit:
                raise Violation(f"node {node.id}: durable commit went down")
            node.durable_commit = rd.hard_state.commit
            # A commit counts once persisted: a leader may count its own
            # unsynced entries, but nothing leaves it before this point.
            check.on_commit(node.id, core, node.commit, rd.hard_state.commit)
            node.commit = rd.hard_state.commit
        if node.crash_armed == "send" and rd.must_sync and node.crash_countdown == 0:
            self._crash(node)
            return
        for m in rd.messages:
            self._send(m)
        if rd.snapshot is not None:
            node.app_digest = check.on_restore(node.id, rd.snapshot)
            node.app_index = rd.snapshot.index
            node.last_snapshot = rd.snapshot.index
            node.proposals = {i: v for i, v in node.proposals.items() if i > node.app_index}
        for e in rd.committed_entries:
            node.app_digest = check.on_apply(node.id, node.app_index, node.app_digest, e)
            node.app_index = e.index
            mine = node.proposals.pop(e.index, None)
            if mine is not None and mine == (e.term, e.data):
                check.on_ack(e.index, e.term, e.data)
                self.stats["acked"] += 1
        core.advance(rd)
        if node.app_index - node.last_snapshot >= self.p.snapshot_every:
            snap = core.create_snapshot(
                node.app_index, snapshot_data(node.app_index, node.app_digest)
            )
            storage.save_snapshot(snap)
            storage.compact(snap.index - self.p.snapshot_keep)
            node.last_snapshot = snap.index

    # -- network

    def _send(self, m: Message) -> None:
        self.stats["msgs"] += 1
        if m.snapshot is not None:
            self.stats["snapshots_sent"] += 1
        rng = self.rng
        p = self.p
        if (m.frm, m.to) in self.blocked or (not self.liveness and rng.random() < p.loss):
            self.stats["dropped"] += 1
            return
        self._msg_count += 1
        if self._msg_count % p.wire_every == 0:
            m = from_wire(msgpack.unpackb(msgpack.packb(to_wire(m))))
        if self.liveness:
            # A healed network behaves like TCP: no loss, FIFO on each link.
            link = (m.frm, m.to)
            at = max(self.now + rng.randint(1, p.max_delay), self._link_clock.get(link, 0))
            self._link_clock[link] = at
            self._schedule(at - self.now, _DELIVER, m)
            return
        for _ in range(2 if rng.random() < p.dup else 1):
            if rng.random() < p.long_delay:
                delay = rng.randint(p.max_delay, 30 * TICK)
            else:
                delay = rng.randint(1, p.max_delay)
            self._schedule(delay, _DELIVER, m)

    # -- faults and clients

    def _leader(self) -> SimNode | None:
        best: SimNode | None = None
        for node in self.nodes.values():
            core = node.core
            if (
                core is not None
                and core.role == Role.LEADER
                and (best is None or (best.core is not None and core.term > best.core.term))
            ):
                best = node
        return best

    def _up_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.up]

    def _propose(self) -> None:
        up = self._up_nodes()
        if not up:
            return
        node = self._leader() if self.rng.random() < 0.8 else self.rng.choice(up)
        if node is None or node.core is None:
            return
        core = node.core
        count = self.rng.choice((1, 1, 1, 2, 5))
        try:
            for _ in range(count):
                self._proposal_seq += 1
                data = b"p%d" % self._proposal_seq
                index = core.propose(data)
                node.proposals[index] = (core.term, data)
        except ProposalDropped:
            return
        self._log(f"n{node.id} proposed {count} up to {core.last_index}")
        self._drive(node)

    def _chaos(self) -> None:
        rng = self.rng
        up = self._up_nodes()
        p = self.p
        actions: list[tuple[float, Callable[[], None]]] = [
            (p.w_crash, self._chaos_crash),
            (p.w_partition, self._chaos_partition),
            (p.w_heal, self._chaos_heal),
            (p.w_conf, self._chaos_conf_change),
            (p.w_transfer, self._chaos_transfer),
        ]
        if not up:
            return
        total = sum(w for w, _ in actions)
        r = rng.random() * total
        for w, act in actions:
            r -= w
            if r <= 0:
                act()
                return

    def _chaos_crash(self) -> None:
        rng = self.rng
        up = self._up_nodes()
        leader = self._leader()
        node = leader if leader is not None and rng.random() < 0.5 else rng.choice(up)
        how = rng.choice(("now", "sync", "send"))
        if how == "now":
            self._crash(node)
        else:
            node.crash_armed = how
            node.crash_countdown = rng.choice((0, 0, 1, 2, 5))
            self._log(f"n{node.id} will crash at {how} after {node.crash_countdown} Readies")

    def _chaos_partition(self) -> None:
        rng = self.rng
        ids = sorted(self.nodes)
        kind = rng.choice(("isolate", "isolate-leader", "split", "oneway"))
        blocked: set[tuple[int, int]] = set()
        if kind in ("isolate", "isolate-leader"):
            leader = self._leader()
            victim = leader.id if kind == "isolate-leader" and leader else rng.choice(ids)
            for other in ids:
                if other != victim:
                    blocked.add((victim, other))
                    blocked.add((other, victim))
        elif kind == "split":
            rng.shuffle(ids)
            cut = rng.randint(1, len(ids) - 1)
            a, b = ids[:cut], ids[cut:]
            for x in a:
                for y in b:
                    blocked.add((x, y))
                    blocked.add((y, x))
        else:
            for _ in range(rng.randint(1, len(ids))):
                x, y = rng.sample(ids, 2)
                blocked.add((x, y))
        self.blocked = blocked
        self._log(f"partition {kind}: {sorted(blocked)}")
        self._schedule(rng.randint(5, 80) * TICK, _HEAL, blocked)

    def _chaos_heal(self) -> None:
        self.blocked = set()
        self._log("heal")

    def _chaos_conf_change(self) -> None:
        leader = self._leader()
        if leader is None or leader.core is None:
            return
        core = leader.core
        rng = self.rng
        voters, learners = sorted(core.voters), sorted(core.learners)
        n = self.p.nodes
        # Voters stay within [n - 2, n + 1] (at least 2); learners come and go.
        options = []
        if len(voters) + len(learners) <= n and len(self.nodes) < n + 6:
            options.append(ConfChange(CC_ADD_LEARNER, self._next_id))
        if len(voters) > max(2, n - 2):
            options.append(ConfChange(CC_REMOVE, rng.choice(voters)))
        if learners:
            options.append(ConfChange(CC_REMOVE, rng.choice(learners)))
        if not options:
            return
        cc = rng.choice(options)
        grow = cc.type == CC_ADD_LEARNER
        nid = cc.node_id
        try:
            core.propose_conf_change(cc)
        except ProposalDropped as e:
            self._log(f"n{leader.id} conf change {CC_NAMES[cc.type]} {cc.node_id}: {e}")
            return
        self.stats["conf_changes"] += 1
        self._log(f"n{leader.id} proposes {CC_NAMES[cc.type]} {cc.node_id}")
        if grow:
            self._next_id += 1
            self._add_node(nid, ())
        self._drive(leader)

    def _chaos_transfer(self) -> None:
        leader = self._leader()
        if leader is None or leader.core is None:
            return
        core = leader.core
        targets = sorted(v for v in core.voters if v != leader.id)
        if not targets:
            return
        to = self.rng.choice(targets)
        self._log(f"n{leader.id} transfers leadership to {to}")
        core.transfer_leadership(to)
        self._drive(leader)

    # -- main loop

    def _start_liveness(self) -> int:
        """Heal everything; returns the time allowed to finish.

        The bound is a fixed 400 ticks plus the time the seed's flow control
        (entries per message, messages in flight, delay) needs to move the
        backlog of uncommitted entries to the slowest member.
        """
        self.liveness = True
        self.blocked = set()
        self._log("--- liveness phase: network healed, all members restart")
        for node in self.nodes.values():
            node.crash_armed = ""
            if not node.up:
                self._start(node)
                self._drive(node)
        p = self.p
        last = max((n.core.last_index for n in self.nodes.values() if n.core), default=0)
        applied = min((n.app_index for n in self.nodes.values()), default=0)
        per_entry = 2 * (p.max_delay + 1) / (p.max_msg_entries * p.max_inflight)
        self.liveness_time = p.liveness_time + int(3 * max(0, last - applied) * per_entry)
        return self.liveness_time

    def _liveness_done(self, fresh_index: int) -> bool:
        if not fresh_index or fresh_index not in self.check.acked:
            return False
        want = max(self.check.acked)
        for nid in self.check.members():
            node = self.nodes.get(nid)
            if node is None or node.app_index < want:
                return False
        return True

    def run(self) -> None:
        p = self.p
        end_safety = p.safety_time
        deadline = end_safety + p.liveness_time  # extended at the heal
        fresh_index = 0
        fresh_data = b""
        queue = self._queue
        nodes = self.nodes
        while queue:
            when, _, kind, arg = heapq.heappop(queue)
            if not self.liveness and when >= end_safety:
                self.now = end_safety
                deadline = end_safety + self._start_liveness()
                heapq.heappush(queue, (when, 0, kind, arg))
                continue
            if when > deadline:
                break
            self.now = when
            self.stats["steps"] += 1
            if kind == _DELIVER:
                assert isinstance(arg, Message)
                node = nodes.get(arg.to)
                if node is None or node.core is None or (arg.frm, arg.to) in self.blocked:
                    continue
                node.core.step(arg)
                self._drive(node)
            elif kind == _TICK:
                assert isinstance(arg, int)
                node = nodes[arg]
                self._schedule(node.tick_every, _TICK, arg)
                if node.core is None:
                    continue
                node.core.tick()
                self._drive(node)
            elif kind == _PROPOSE:
                # Clients stop when the network heals; then only the fresh
                # proposal below must get through.
                if not self.liveness:
                    self._schedule(self._jitter(p.propose_every), _PROPOSE, None)
                    self._propose()
            elif kind == _CHAOS:
                if not self.liveness:
                    self._schedule(self._jitter(p.chaos_every), _CHAOS, None)
                    self._chaos()
            elif kind == _RESTART:
                assert isinstance(arg, int)
                node = nodes[arg]
                if not node.up:
                    self._start(node)
                    self._drive(node)
            elif kind == _HEAL and self.blocked is arg:
                self._chaos_heal()
            if self.liveness:
                if not fresh_index:
                    fresh_index, fresh_data = self._fresh_proposal()
                elif fresh_index not in self.check.acked:
                    fresh_index = self._fresh_still_pending(fresh_index, fresh_data)
                if self._liveness_done(fresh_index):
                    self.check.check_acked()
                    return
        self._liveness_failure(fresh_index)

    def _fresh_proposal(self) -> tuple[int, bytes]:
        leader = self._leader()
        if leader is None or leader.core is None:
            return 0, b""
        self._proposal_seq += 1
        data = b"fresh%d" % self._proposal_seq
        try:
            index = leader.core.propose(data)
        except ProposalDropped:
            return 0, b""
        leader.proposals[index] = (leader.core.term, data)
        self._drive(leader)
        return index, data

    def _fresh_still_pending(self, index: int, data: bytes) -> int:
        # Like a client, give up on a proposal whose leader has lost its term
        # (the entry may never commit) and propose afresh.
        for node in self.nodes.values():
            mine = node.proposals.get(index)
            core = node.core
            if (
                mine is not None
                and mine[1] == data
                and core is not None
                and core.role == Role.LEADER
                and core.term == mine[0]
            ):
                return index
        return 0

    def _liveness_failure(self, fresh_index: int) -> None:
        lagging = []
        want = max(self.check.acked, default=0)
        for nid in self.check.members():
            node = self.nodes.get(nid)
            if node is None or node.app_index < want:
                lagging.append((nid, node.app_index if node else None))
        leader = self._leader()
        raise Violation(
            f"liveness: after healing, not done within {self.liveness_time} time units "
            f"(fresh proposal {'acked' if fresh_index in self.check.acked else 'not acked'}, "
            f"leader {leader.id if leader else None}, members {list(self.check.members())}, "
            f"lagging {lagging}, acked up to {want})"
        )


@dataclass
class Outcome:
    seed: int
    nodes: int
    violation: str
    stats: dict[str, int]


def run_seed(
    seed: int, nodes: int | None = None, long_run: bool = False, verbose: bool = False
) -> Outcome:
    cluster = Cluster(seed, nodes, long_run, verbose)
    try:
        cluster.run()
        violation = ""
    except Violation as e:
        violation = str(e)
    except Exception as e:  # a crash of the core is a failure of this seed too
        violation = f"exception: {type(e).__name__}: {e}"
        if verbose:
            raise
    return Outcome(seed, cluster.p.nodes, violation, cluster.stats)


def replay_command(seed: int, nodes: int | None, long_run: bool) -> str:
    cmd = f"python -m pyswarmkit.raft.sim --seeds 1 --start {seed}"
    if nodes is not None:
        cmd += f" --nodes {nodes}"
    if long_run:
        cmd += " --long"
    return cmd + " --verbose"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyswarmkit.raft.sim", description=__doc__)
    ap.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--nodes", type=int, choices=(3, 5, 7), help="cluster size (default: seeded)")
    ap.add_argument("--long", action="store_true", help="4x longer safety phase per seed")
    ap.add_argument("--verbose", action="store_true", help="trace every event (for replays)")
    args = ap.parse_args(argv)
    # Torn tails are expected here (the simulator makes them); don't print each.
    logging.getLogger("pyswarmkit.raft.durable").setLevel(logging.ERROR)
    started = time.perf_counter()
    violations = 0
    totals: dict[str, int] = {}
    for seed in range(args.start, args.start + args.seeds):
        out = run_seed(seed, args.nodes, args.long, args.verbose)
        for k, v in out.stats.items():
            totals[k] = totals.get(k, 0) + v
        if out.violation:
            violations += 1
            print(
                f"seed {seed} ({out.nodes} nodes): {out.violation}"
                f" -- replay: {replay_command(seed, args.nodes, args.long)}",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    detail = " ".join(f"{k}={v}" for k, v in totals.items())
    print(f"seeds: {args.seeds}  violations: {violations}  ({elapsed:.1f}s; {detail})")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
