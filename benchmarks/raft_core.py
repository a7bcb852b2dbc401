"""Committed entries per second for a 3-member cluster of pure Raft cores.

All three cores run in this thread; messages go straight from one to the
next. Clients propose 64-byte entries in batches; an entry counts once the
leader has applied it (so a majority persisted it). The durable cases give
each member its own WAL in a temporary directory with fsync on: in clear, and
sealed (AES-GCM per record, as managers write it).

    python benchmarks/raft_core.py [--seconds 3] [--batch 2048] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from collections import deque

from pyswarmkit.raft.core import Config, RaftNode, Role
from pyswarmkit.raft.crypt import Sealer, random_key
from pyswarmkit.raft.durable import DurableStorage
from pyswarmkit.raft.fs import OsFS
from pyswarmkit.raft.messages import Message
from pyswarmkit.raft.storage import MemoryStorage, Storage

PAYLOAD = 64


class Cluster:
    def __init__(self, storages: dict[int, Storage]) -> None:
        ids = sorted(storages)
        self.storages = storages
        self.nodes = {i: RaftNode(i, ids, storages[i], random.Random(i), Config()) for i in ids}
        self.inbox: deque[Message] = deque()
        self.applied = dict.fromkeys(ids, 0)
        self.persists = 0

    def wave(self) -> bool:
        """Each member handles one Ready, then every queued message is delivered.

        Proposing between waves pipelines the batches: while followers persist
        one batch the leader persists the next, so each fsync covers new
        entries and commit updates together (group commit).
        """
        nodes, inbox = self.nodes, self.inbox
        for i, node in nodes.items():
            if node.has_ready():
                rd = node.ready()
                if rd.must_sync:
                    st = self.storages[i]
                    st.save(rd.hard_state, rd.entries, rd.snapshot)
                    st.sync()
                    self.persists += 1
                inbox.extend(rd.messages)
                if rd.committed_entries:
                    self.applied[i] += len(rd.committed_entries)
                node.advance(rd)
        if not inbox:
            return any(n.has_ready() for n in nodes.values())
        while inbox:
            m = inbox.popleft()
            nodes[m.to].step(m)
        return True

    def pump(self) -> None:
        while self.wave():
            pass

    def elect(self) -> RaftNode:
        self.nodes[1].campaign()
        self.pump()
        leader = self.nodes[1]
        assert leader.role == Role.LEADER
        return leader


def run(storages: dict[int, Storage], seconds: float, batch: int) -> dict[str, float]:
    cluster = Cluster(storages)
    leader = cluster.elect()
    payload = bytes(PAYLOAD)
    datas = [payload] * batch
    start_applied = cluster.applied[leader.id]
    persists0 = cluster.persists
    rounds = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        leader.propose_batch(datas)
        cluster.wave()
        rounds += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    cluster.pump()  # let the last batches commit
    elapsed = time.perf_counter() - t0
    committed = cluster.applied[leader.id] - start_applied
    follower_lag = max(leader.commit_index - n.commit_index for n in cluster.nodes.values())
    return {
        "entries_per_s": committed / elapsed,
        "entries": committed,
        "seconds": elapsed,
        "rounds": rounds,
        "persists": cluster.persists - persists0,
        "follower_lag": follower_lag,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per case")
    ap.add_argument("--batch", type=int, default=2048, help="proposals per round")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    memory = run({i: MemoryStorage() for i in (1, 2, 3)}, args.seconds, args.batch)
    tmp = tempfile.mkdtemp(prefix="raft-bench-")
    try:
        fs = OsFS(fsync=True)
        durable = run(
            {i: DurableStorage(f"{tmp}/{i}", fs) for i in (1, 2, 3)}, args.seconds, args.batch
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix="raft-bench-")
    try:
        fs = OsFS(fsync=True)
        sealed = run(
            {i: DurableStorage(f"{tmp}/{i}", fs, sealer=Sealer(random_key())) for i in (1, 2, 3)},
            args.seconds,
            args.batch,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        print(
            json.dumps(
                {
                    "memory_entries_per_s": round(memory["entries_per_s"]),
                    "durable_entries_per_s": round(durable["entries_per_s"]),
                    "sealed_entries_per_s": round(sealed["entries_per_s"]),
                    "batch": args.batch,
                    "payload_bytes": PAYLOAD,
                    "durable_persists_per_s": round(durable["persists"] / durable["seconds"]),
                }
            )
        )
        return
    print(f"3-member Raft cluster, {PAYLOAD}-byte proposals, batches of {args.batch}")
    print(f"{'case':<22}{'entries/s':>12}{'entries':>10}{'rounds':>8}{'persists':>10}")
    cases = (("memory", memory), ("durable (fsync on)", durable), ("durable, sealed", sealed))
    for name, r in cases:
        print(
            f"{name:<22}{r['entries_per_s']:>12,.0f}{r['entries']:>10}"
            f"{r['rounds']:>8}{r['persists']:>10}"
        )


if __name__ == "__main__":
    main()
