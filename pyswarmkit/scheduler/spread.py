"""Spreading a group of identical tasks over the nodes that can take them.

The least loaded node wins: fewest tasks of the group's service, then fewest
tasks in total. Nodes where the service's current spec failed at least
``MAX_FAILURES`` times within ``FAILURE_WINDOW`` seconds go last. Placement
preferences first split the group evenly across label values (a decision
tree, one level per preference), then spread within each value.

Placing is incremental: a ``Filler`` hands out nodes best first, draining a
lazy source of untouched nodes and a heap of the nodes it already gave tasks
to, so a group of k tasks costs about k heap operations, not k scans.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container, Iterable, Iterator

from pyswarmkit.api.objects import Node, Task
from pyswarmkit.scheduler.constraint import preference_value
from pyswarmkit.scheduler.filters import Requirements, fits_now
from pyswarmkit.scheduler.nodeinfo import NodeInfo
from pyswarmkit.scheduler.pipeline import Pipeline

MAX_FAILURES = 5
FAILURE_WINDOW = 300.0

Assign = Callable[[Task, NodeInfo], None]
HeapEntry = tuple[int, int, int, int, NodeInfo]


class Group:
    """One pass over one group: its requirements, service, and shunned nodes."""

    __slots__ = ("assign", "bad", "req", "service_id")

    def __init__(
        self, req: Requirements, service_id: str, bad: dict[str, int], assign: Assign
    ) -> None:
        self.req = req
        self.service_id = service_id
        # node id -> recent failures, for nodes at or above MAX_FAILURES
        self.bad = bad
        self.assign = assign

    def key(self, info: NodeInfo, seq: int) -> HeapEntry:
        return (
            self.bad.get(info.id, 0),
            info.by_service.get(self.service_id, 0),
            info.active,
            seq,
            info,
        )


class Filler:
    """Gives tasks to nodes best first.

    ``fresh`` yields nodes that all rank before any other candidate (in the
    flat case: nodes without the service's tasks and not shunned, least loaded
    first); ``rest`` is called once ``fresh`` runs dry and returns the other
    candidates. Both must yield only nodes passing the group's static filters.
    """

    __slots__ = ("fresh", "group", "heap", "rest", "seq", "touched")

    def __init__(
        self,
        group: Group,
        fresh: Iterator[NodeInfo] | None,
        rest: Callable[[], Iterable[NodeInfo]] | None,
    ) -> None:
        self.group = group
        self.fresh = fresh
        self.rest = rest
        self.heap: list[HeapEntry] = []
        self.seq = 0
        self.touched: set[str] = set()

    def fill(self, tasks: Iterator[Task], want: int) -> int:
        """Place up to ``want`` tasks from ``tasks``; returns how many were placed.
        A task is taken from ``tasks`` only once a node for it is found."""
        group = self.group
        req = group.req
        dynamic = req.dynamic
        heap = self.heap
        placed = 0
        while placed < want:
            info = next(self.fresh, None) if self.fresh is not None else None
            if info is None:
                self.fresh = None
                if self.rest is not None:
                    self._load_rest()
                if not heap:
                    break
                info = heapq.heappop(heap)[-1]
            task = next(tasks, None)
            if task is None:
                # Nothing left to place: keep the node for a later call.
                self._push(info)
                break
            group.assign(task, info)
            self.touched.add(info.id)
            placed += 1
            if not dynamic or fits_now(req, info):
                self._push(info)
        return placed

    def _push(self, info: NodeInfo) -> None:
        self.seq += 1
        heapq.heappush(self.heap, self.group.key(info, self.seq))

    def _load_rest(self) -> None:
        assert self.rest is not None
        group, req, touched = self.group, self.group.req, self.touched
        dynamic = req.dynamic
        for info in self.rest():
            if info.id not in touched and (not dynamic or fits_now(req, info)):
                self.seq += 1
                self.heap.append(group.key(info, self.seq))
        heapq.heapify(self.heap)
        self.rest = None


def fresh_nodes(
    walk: Iterator[NodeInfo], skip: Container[str], bad: dict[str, int], req: Requirements
) -> Iterator[NodeInfo]:
    """From a least-loaded-first walk, the nodes without the service's tasks
    (``skip`` is looked up live) and not shunned that fit the dynamic filters."""
    dynamic = req.dynamic
    for info in walk:
        node_id = info.id
        if node_id in skip or node_id in bad:
            continue
        if dynamic and not fits_now(req, info):
            continue
        yield info


# --- placement preferences ------------------------------------------------------


class Branch:
    """A node of the decision tree: the service's tasks under it, and either
    children by label value or (at a leaf) the nodes that pass the filters."""

    __slots__ = ("children", "filler", "nodes", "tasks", "value")

    def __init__(self, value: str = "") -> None:
        self.value = value
        self.tasks = 0
        self.children: dict[str, Branch] | None = None
        self.nodes: list[NodeInfo] = []
        self.filler: Filler | None = None


def spread_descriptors(prefs: Iterable[str]) -> tuple[str, ...]:
    """The preferences the scheduler can act on (label spreads), in order."""
    probe = Node(id="")
    return tuple(p for p in prefs if preference_value(p, probe) is not None)


def build_tree(
    infos: Iterable[NodeInfo], descriptors: tuple[str, ...], service_id: str, pipeline: Pipeline
) -> Branch:
    """Every known node adds its tasks of the service to the branches it falls
    in, as in Docker, so the split accounts for tasks on unusable nodes too;
    only nodes that pass the filters become candidates."""
    root = Branch()
    for info in infos:
        count = info.by_service.get(service_id, 0)
        branch = root
        for descriptor in descriptors:
            value = preference_value(descriptor, info.node) or ""
            branch.tasks += count
            if branch.children is None:
                branch.children = {}
            child = branch.children.get(value)
            if child is None:
                child = branch.children[value] = Branch(value)
            branch = child
        branch.tasks += count
        if pipeline.passes(info):
            branch.nodes.append(info)
    return root


def water_fill(counts: list[int], n: int) -> list[int]:
    """Split ``n`` new tasks over branches holding ``counts`` (ascending) so the
    totals end as even as possible; extra tasks go to the first branches."""
    k = len(counts)
    prefix = sum(counts)
    while k > 0:
        level = (prefix + n) // k
        if counts[k - 1] <= level:
            break
        k -= 1
        prefix -= counts[k]
    extra = prefix + n - level * k
    alloc = [0] * len(counts)
    for i in range(k):
        alloc[i] = level - counts[i] + (1 if i < extra else 0)
    return alloc


def place_on_branch(branch: Branch, n: int, tasks: Iterator[Task], group: Group) -> int:
    """Place up to ``n`` tasks under ``branch``; returns how many were placed."""
    if branch.children is None:
        if branch.filler is None:
            leaf_nodes = branch.nodes
            branch.filler = Filler(group, None, lambda: leaf_nodes)
        return branch.filler.fill(tasks, n)
    placed = 0
    usable = list(branch.children.values())
    while placed < n and usable:
        usable.sort(key=lambda b: (b.tasks, b.value))
        alloc = water_fill([b.tasks for b in usable], n - placed)
        full: list[Branch] = []
        for child, want in zip(usable, alloc, strict=True):
            if want == 0:
                continue
            got = place_on_branch(child, want, tasks, group)
            child.tasks += got
            placed += got
            if got < want:
                full.append(child)
        if not full:
            # Everything asked for was placed; only rounding can leave work.
            continue
        usable = [b for b in usable if b not in full]
    return placed
