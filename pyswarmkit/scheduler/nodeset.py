"""Nodes ordered by load, so the least loaded suitable node is found without
scanning the cluster.

A ``LoadIndex`` keeps nodes in buckets keyed by how many tasks count toward
them; within a bucket, nodes keep the order they entered it. Walking the index
yields nodes least loaded first. The scheduler keeps one index of all ready
nodes and one per set of node-only requirements in use (constraints and
platforms), each holding only the nodes that meet them.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Hashable, Iterator

from pyswarmkit.scheduler.nodeinfo import NodeInfo


class LoadIndex:
    __slots__ = ("buckets", "counts", "key", "last_used", "members")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        # task count -> nodes with that count, in arrival order. OrderedDict, not
        # dict: a dict walks over the holes its deletions leave at the front,
        # which made each walk cost as much as the nodes that had left.
        self.buckets: dict[int, OrderedDict[str, NodeInfo]] = {}
        # the keys of ``buckets``, ascending
        self.counts: list[int] = []
        # node id -> the count it is filed under
        self.members: dict[str, int] = {}
        self.last_used = 0

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.members

    def add(self, info: NodeInfo) -> None:
        if info.id in self.members:
            return
        self._file(info, info.active)
        info.views.append(self)

    def discard(self, info: NodeInfo) -> None:
        count = self.members.get(info.id)
        if count is None:
            return
        self._unfile(info.id, count)
        info.views.remove(self)

    def refile(self, info: NodeInfo) -> None:
        """Move a node to the bucket of its current task count."""
        count = self.members[info.id]
        if count != info.active:
            self._unfile(info.id, count)
            self._file(info, info.active)

    def walk(self) -> Iterator[NodeInfo]:
        """Nodes, least loaded first. The index must not change during the walk."""
        buckets = self.buckets
        for count in self.counts:
            yield from buckets[count].values()

    def _file(self, info: NodeInfo, count: int) -> None:
        bucket = self.buckets.get(count)
        if bucket is None:
            bucket = self.buckets[count] = OrderedDict()
            insort(self.counts, count)
        bucket[info.id] = info
        self.members[info.id] = count

    def _unfile(self, node_id: str, count: int) -> None:
        bucket = self.buckets[count]
        del bucket[node_id]
        del self.members[node_id]
        if not bucket:
            del self.buckets[count]
            del self.counts[bisect_left(self.counts, count)]

    def drop(self) -> None:
        """Forget the index: unlist it from every member node."""
        for bucket in self.buckets.values():
            for info in bucket.values():
                info.views.remove(self)
        self.buckets.clear()
        self.counts.clear()
        self.members.clear()


def refile_all(info: NodeInfo) -> None:
    """After a node's task count changed, move it in every index listing it."""
    for view in info.views:
        view.refile(info)
