"""A tiny in-process network of Raft cores for scripted tests."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from pyswarmkit.raft.core import Config, RaftNode, Role
from pyswarmkit.raft.messages import (
    CC_ADD_VOTER,
    ENTRY_CONF_CHANGE,
    ENTRY_NORMAL,
    ConfChange,
    Entry,
    HardState,
    Message,
)
from pyswarmkit.raft.storage import MemoryStorage

Drop = Callable[[Message], bool]


class Net:
    def __init__(self, ids: Iterable[int] = (1, 2, 3), config: Config | None = None) -> None:
        self.config = config or Config()
        self.peers = tuple(ids)
        self.nodes: dict[int, RaftNode] = {}
        self.storages: dict[int, MemoryStorage] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.drops: list[Drop] = []
        self.sent: list[Message] = []  # every message that was delivered
        self.queue: deque[Message] = deque()
        for i in self.peers:
            self.add(i, self.peers)

    def add(self, nid: int, peers: tuple[int, ...] = ()) -> RaftNode:
        self.storages[nid] = MemoryStorage()
        self.applied[nid] = []
        node = RaftNode(nid, peers, self.storages[nid], random.Random(nid), self.config)
        self.nodes[nid] = node
        return node

    def restart(self, nid: int) -> RaftNode:
        """A crash (losing nothing that was persisted) and a restart."""
        self.queue = deque(m for m in self.queue if m.to != nid and m.frm != nid)
        node = RaftNode(nid, (), self.storages[nid], random.Random(nid + 100), self.config)
        self.nodes[nid] = node
        snap = node.snapshot
        # The application restores the snapshot; later entries come again.
        self.applied[nid] = [
            e for e in self.applied[nid] if snap is not None and e.index <= snap.index
        ]
        return node

    def flush(self, nid: int) -> list[Message]:
        """Handle the member's Readies the way a caller must; return its messages."""
        node = self.nodes[nid]
        out: list[Message] = []
        while node.has_ready():
            rd = node.ready()
            self.storages[nid].save(rd.hard_state, rd.entries, rd.snapshot)
            out.extend(rd.messages)
            if rd.snapshot is not None:
                self.applied[nid] = [e for e in self.applied[nid] if e.index <= rd.snapshot.index]
            self.applied[nid].extend(rd.committed_entries)
            node.advance(rd)
        return out

    def _dropped(self, m: Message) -> bool:
        return (m.frm, m.to) in self.blocked or any(d(m) for d in self.drops)

    def send(self, msgs: Iterable[Message]) -> None:
        self.queue.extend(m for m in msgs if m.to in self.nodes and not self._dropped(m))

    def settle(self, limit: int = 100_000) -> None:
        """Deliver until no member has anything left to say."""
        for _ in range(limit):
            for nid in list(self.nodes):
                self.send(self.flush(nid))
            if not self.queue:
                return
            while self.queue:
                m = self.queue.popleft()
                if m.to in self.nodes and (m.frm, m.to) not in self.blocked:
                    self.sent.append(m)
                    self.nodes[m.to].step(m)
        raise AssertionError("network did not settle")

    def tick(self, times: int = 1, only: Iterable[int] | None = None) -> None:
        ids = list(only) if only is not None else list(self.nodes)
        for _ in range(times):
            for nid in ids:
                self.nodes[nid].tick()
            self.settle()

    def elect(self, nid: int) -> RaftNode:
        self.nodes[nid].campaign()
        self.settle()
        node = self.nodes[nid]
        assert node.role == Role.LEADER, f"{nid} did not win: {node.role}"
        return node

    def isolate(self, nid: int) -> None:
        for other in self.nodes:
            if other != nid:
                self.blocked.add((nid, other))
                self.blocked.add((other, nid))

    def heal(self) -> None:
        self.blocked.clear()
        self.drops.clear()

    def leader(self) -> RaftNode | None:
        leaders = [n for n in self.nodes.values() if n.role == Role.LEADER]
        return max(leaders, key=lambda n: n.term) if leaders else None

    def datas(self, nid: int) -> list[bytes]:
        return [e.data for e in self.applied[nid] if e.data and e.type == ENTRY_NORMAL]

    def sent_of(self, mtype: int) -> list[Message]:
        return [m for m in self.sent if m.type == mtype]


def bootstrap(n: int = 3) -> list[Entry]:
    return [
        Entry(1, i, ENTRY_CONF_CHANGE, ConfChange(CC_ADD_VOTER, i).encode())
        for i in range(1, n + 1)
    ]


def with_log(net: Net, nid: int, terms: list[int], term: int, commit: int = 3) -> RaftNode:
    """Replace member `nid` by one whose log is the bootstrap plus `terms`."""
    storage = MemoryStorage()
    ents = bootstrap(len(net.peers))
    base = len(ents)
    ents += [Entry(t, base + 1 + k, ENTRY_NORMAL, b"t%d" % t) for k, t in enumerate(terms)]
    storage.save(HardState(term, 0, commit), ents)
    net.storages[nid] = storage
    net.applied[nid] = []
    node = RaftNode(nid, (), storage, random.Random(nid), net.config)
    net.nodes[nid] = node
    return node
