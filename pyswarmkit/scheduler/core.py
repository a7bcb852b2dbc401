"""The scheduling core: takes store events in, gives placement decisions out.

It implements ``SchedulerCore`` (see base.py) and is pure: no clock (``now``
is an argument), no I/O, no threads.

- Tasks in PENDING without a node are grouped by service and spec version and
  placed a group at a time (filters in filters.py, spreading in spread.py).
  Tasks pre-assigned to a node (e.g. by the global orchestrator) are checked
  against that node only.
- A decision counts toward its node at once; the store event for the task
  later replaces it. An event about a task always wins over a decision still
  in flight; ``rejected`` undoes the decisions of a refused batch.
- A task that fits nowhere stays PENDING with a message saying why. It is
  tried again only once something could have made room (a node changed, or a
  task stopped counting toward one).
- Events are debounced: work becomes due ``DEBOUNCE_GAP`` after the last
  relevant batch, or ``MAX_LATENCY`` after the first one, whichever comes
  first. Events come a committed batch at a time, not one object at a time
  as in SwarmKit (whose gap is 50 ms), so the gap only has to let a burst of
  batches finish arriving: a few ms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from pyswarmkit.api.objects import Node, Task, TaskStatus, replace
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.scheduler.filters import Requirements, fits_now, meets_static, requirements_of
from pyswarmkit.scheduler.nodeinfo import NodeInfo, counts_toward_node, same_accounting
from pyswarmkit.scheduler.nodeset import LoadIndex, refile_all
from pyswarmkit.scheduler.pipeline import Pipeline, no_suitable_node
from pyswarmkit.scheduler.spread import (
    FAILURE_WINDOW,
    MAX_FAILURES,
    Filler,
    Group,
    build_tree,
    fresh_nodes,
    place_on_branch,
    spread_descriptors,
)
from pyswarmkit.store.memory import Change, EventBatch

DEBOUNCE_GAP = 0.002
MAX_LATENCY = 1.0

ASSIGNED_MESSAGE = "scheduler assigned task to node"
CONFIRMED_MESSAGE = "scheduler confirmed task can run on preassigned node"

_PENDING = TaskState.PENDING
_ASSIGNED = TaskState.ASSIGNED
_RUNNING = TaskState.RUNNING
_FAILED_STATES = (TaskState.FAILED, TaskState.REJECTED)

# Keep at most this many load indexes for constraint/platform sets besides the
# one of all ready nodes; the least recently used go first.
MAX_VIEWS = 64
_BASE_VIEW_KEY: tuple[Any, ...] = ((), ())


def _with_node_status(task: Task, node_id: str, status: TaskStatus) -> Task:
    return replace(task, node_id=node_id, status=status)


def _same_for_scheduling(old: Node, new: Node) -> bool:
    """Whether no filter, explanation or preference can tell the two versions apart
    (e.g. only the status message changed)."""
    return (
        old.spec == new.spec
        and old.role == new.role
        and old.description == new.description
        and old.status.state == new.status.state
        and old.status.addr == new.status.addr
    )


class Scheduler:
    """The filter-pipeline scheduling core (``SchedulerCore``).

    ``debounce_gap`` and ``max_latency`` (seconds) tune ``due``; ``max_views``
    bounds the load indexes kept for distinct constraint sets.
    """

    def __init__(
        self,
        debounce_gap: float = DEBOUNCE_GAP,
        max_latency: float = MAX_LATENCY,
        max_views: int = MAX_VIEWS,
    ) -> None:
        self.debounce_gap = debounce_gap
        self.max_latency = max_latency
        self.max_views = max_views
        self._clear()

    def _clear(self) -> None:
        self._infos: dict[str, NodeInfo] = {}
        # Our view of every task between PENDING and RUNNING, decisions included.
        self._tasks: dict[str, Task] = {}
        self._queue: dict[str, Task] = {}
        self._preassigned: dict[str, Task] = {}
        self._preassigned_ids: set[str] = set()
        # Tried and did not fit; retried when _epoch moves past _waiting_epoch.
        self._waiting: dict[str, Task] = {}
        self._epoch = 0
        self._waiting_epoch = 0
        # Decisions not yet seen back from the store: task id -> task before.
        self._inflight: dict[str, Task] = {}
        # service id -> nodes with tasks of it counting toward them
        self._svc_nodes: dict[str, dict[str, None]] = {}
        # (service id, spec version) -> node id -> failure times
        self._failures: dict[tuple[str, int], dict[str, list[float]]] = {}
        self._failures_pruned = -math.inf
        self._views: dict[Any, LoadIndex] = {}
        self._view_reqs: dict[Any, Requirements] = {}
        self._req_cache: dict[tuple[Any, ...], Requirements] = {}
        self._pass = 0
        self._first_at: float | None = None
        self._last_at = 0.0
        self._stirred = False
        # per pass
        self._changes: list[Change] = []
        self._touched: dict[str, NodeInfo] = {}
        self._assigned = 0
        # requirements key -> assignment count when they were found to fit nowhere
        self._unfit: dict[Any, int] = {}
        # tasks that found no node this pass, explained once the pass is done
        self._stuck: list[Task] = []
        self._now = 0.0
        self._wall = 0.0
        self._statuses: dict[str, TaskStatus] = {}
        # Settling after a reset (see reset): nodes READY then that have not
        # yet been seen UNKNOWN and READY again, those seen UNKNOWN, and until
        # when placing waits for them.
        self._awaiting: set[str] = set()
        self._marked: set[str] = set()
        self._settle_until = -math.inf

    # --- SchedulerCore ---------------------------------------------------------

    def reset(
        self, nodes: Iterable[Node], tasks: Iterable[Task], now: float, settle: float = 0.0
    ) -> None:
        """Take the store's state afresh. ``settle`` > 0 (a new leader): for up
        to that many seconds, place nothing while nodes READY in the store have
        not come back to this leader. Its dispatcher marks them UNKNOWN until
        they register, and placing meanwhile put a whole service on the first
        node to register, a few milliseconds before the others."""
        self._clear()
        nodes = list(nodes)
        for node in nodes:
            self._on_node(node.id, node)
        for task in tasks:
            self._on_task(task.id, task, now, failures=False)
        self._stirred = False
        self._first_at = None
        if settle > 0:
            self._awaiting = {n.id for n in nodes if n.status.state == NodeState.READY}
            self._settle_until = now + settle

    def observe(self, batch: EventBatch, now: float) -> None:
        on_task = self._on_task
        tasks = self._tasks
        infos = self._infos
        inflight = self._inflight
        for ev in batch.events:
            kind = ev.kind
            if kind == "task":
                obj = ev.obj
                assert isinstance(obj, Task)
                tid = obj.id
                # The common case, inline: a task placed on a node moving on
                # toward RUNNING there (agents' status reports), weighing the
                # same as the version we hold.
                old = tasks.get(tid)
                if (
                    old is not None
                    and ev.op != "delete"
                    and _ASSIGNED <= obj.status.state <= _RUNNING
                    and old.status.state <= _RUNNING
                    and obj.node_id
                    and (old.spec is obj.spec or same_accounting(old, obj))
                    and old.node_id == obj.node_id
                    and old.service_id == obj.service_id
                ):
                    info = infos.get(obj.node_id)
                    if info is None or tid in info.tasks:
                        inflight.pop(tid, None)
                        if info is not None:
                            info.tasks[tid] = obj
                        tasks[tid] = obj
                        continue
                on_task(tid, None if ev.op == "delete" else obj, now)
            elif kind == "node":
                obj = ev.obj
                assert isinstance(obj, Node)
                self._on_node(obj.id, None if ev.op == "delete" else obj)
        if self._stirred:
            self._stirred = False
            if self._first_at is None:
                self._first_at = now
            self._last_at = now

    def due(self, now: float) -> bool:
        when = self.wake_at()
        return when is not None and now >= when

    def wake_at(self) -> float | None:
        """When ``due`` turns true if no other event comes: None if there is no
        work, ``-inf`` if it is due already."""
        if not self._has_work():
            return None
        if self._first_at is None:
            when = -math.inf
        else:
            when = min(self._last_at + self.debounce_gap, self._first_at + self.max_latency)
        if self._awaiting:
            when = max(when, self._settle_until)
        return when

    def schedule(self, now: float, wall: float | None = None) -> list[Change]:
        if self._awaiting:
            if now < self._settle_until:
                return []
            self._awaiting = set()  # the rest did not come back in time
        self._first_at = None
        self._pass += 1
        self._now = now
        self._wall = wall = now if wall is None else wall
        # Every decision of a pass carries the same status; objects are
        # immutable, so one instance serves them all.
        self._statuses = {
            ASSIGNED_MESSAGE: TaskStatus(wall, _ASSIGNED, ASSIGNED_MESSAGE),
            CONFIRMED_MESSAGE: TaskStatus(wall, _ASSIGNED, CONFIRMED_MESSAGE),
        }
        changes: list[Change] = []
        self._changes = changes
        self._unfit.clear()
        assigned_before = self._assigned
        if self._waiting and self._epoch != self._waiting_epoch:
            for tid, task in self._waiting.items():
                (self._preassigned if task.node_id else self._queue)[tid] = task
            self._waiting = {}
        self._waiting_epoch = self._epoch
        if self._preassigned:
            self._check_preassigned()
        if self._queue:
            groups: dict[Any, list[Task]] = {}
            for task in self._queue.values():
                key = (task.service_id, task.spec_version) if task.service_id else task.id
                group = groups.get(key)
                if group is None:
                    groups[key] = [task]
                else:
                    group.append(task)
            self._queue = {}
            requirements = self._requirements
            place_one = self._place_one
            unfit = self._unfit
            for tasks in groups.values():
                if len(tasks) == 1:
                    # The common case of SwarmKit's benchmarks (a task per
                    # service), kept to the fewest calls.
                    task = tasks[0]
                    req = requirements(task)
                    if (
                        not req.preferences
                        and unfit.get(req.key) != self._assigned
                        and place_one(task, req)
                    ):
                        continue
                self._place_group(tasks)
        if self._waiting and self._assigned != assigned_before:
            # Placements may have changed why the waiting tasks fit nowhere.
            self._stuck.extend(self._waiting.values())
            self._waiting = {}
        if self._stuck:
            self._explain_stuck()
        self._evict_views()
        self._changes = []
        return changes

    def rejected(self, changes: Sequence[Change]) -> None:
        for ch in changes:
            decided = ch.obj
            if not isinstance(decided, Task):
                continue
            original = self._inflight.pop(decided.id, None)
            if original is None:
                continue  # an event about the task came in since: it is the truth
            self._drop(decided.id)
            self._admit(original)
        # Due at once, not after a debounce.
        self._first_at = None
        self._stirred = False

    # --- events ------------------------------------------------------------------

    def _on_node(self, node_id: str, node: Node | None) -> None:
        if node_id in self._awaiting:
            self._settling(node_id, node)
        info = self._infos.get(node_id)
        if info is not None and node is not None and _same_for_scheduling(info.node, node):
            info.node = node
            return
        self._epoch += 1
        if self._waiting:
            self._stirred = True
        if node is None:
            if info is None:
                return
            del self._infos[node_id]
            for view in list(info.views):
                view.discard(info)
            for svc in info.by_service:
                self._svc_nodes_discard(svc, node_id)
            return
        if info is None:
            info = self._infos[node_id] = NodeInfo(node)
        else:
            info.set_node(node)
        for key, view in self._views.items():
            if meets_static(self._view_reqs[key], info):
                view.add(info)
            else:
                view.discard(info)

    def _settling(self, node_id: str, node: Node | None) -> None:
        state = None if node is None else node.status.state
        if state is None or state == NodeState.DOWN:
            self._awaiting.discard(node_id)
        elif state == NodeState.UNKNOWN:
            self._marked.add(node_id)
        elif state == NodeState.READY and node_id in self._marked:
            self._awaiting.discard(node_id)

    def _on_task(self, tid: str, new: Task | None, now: float, failures: bool = True) -> None:
        """Take the store's version of a task; it supersedes any decision in flight."""
        self._inflight.pop(tid, None)
        old = self._tasks.get(tid)
        if old is not None:
            if (
                new is not None
                and counts_toward_node(new)
                and new.status.state >= _ASSIGNED
                and counts_toward_node(old)
                and same_accounting(old, new)
            ):
                # The common case: a decision committed, or a task progressing.
                info = self._infos.get(new.node_id)
                if info is None or tid in info.tasks:
                    if info is not None:
                        info.replace(new)
                    self._tasks[tid] = new
                    return
            if (
                failures
                and new is not None
                and new.status.state in _FAILED_STATES
                and new.status.state != old.status.state
                and new.node_id
                and tid not in self._preassigned_ids
            ):
                self._record_failure(new, now)
            self._drop(tid)
        if new is None:
            self._preassigned_ids.discard(tid)
            return
        state = new.status.state
        if state < _PENDING or state > _RUNNING:
            self._preassigned_ids.discard(tid)
            return
        if state == _PENDING and new.desired_state > _RUNNING:
            return
        self._admit(new)

    def _admit(self, task: Task) -> None:
        """Track a task between PENDING and RUNNING."""
        tid = task.id
        self._tasks[tid] = task
        if task.status.state == _PENDING:
            if task.node_id:
                self._preassigned_ids.add(tid)
                self._preassigned[tid] = task
            else:
                self._queue[tid] = task
            self._stirred = True
        elif counts_toward_node(task):
            self._count(task)

    def _drop(self, tid: str) -> None:
        """Forget our version of a task, and what it weighed on its node."""
        old = self._tasks.pop(tid, None)
        self._queue.pop(tid, None)
        self._waiting.pop(tid, None)
        self._preassigned.pop(tid, None)
        if old is None or not old.node_id:
            return
        info = self._infos.get(old.node_id)
        if info is None or info.remove(tid) is None:
            return
        refile_all(info)
        if old.service_id not in info.by_service:
            self._svc_nodes_discard(old.service_id, info.id)
        self._epoch += 1
        if self._waiting:
            self._stirred = True

    def _count(self, task: Task) -> None:
        info = self._infos.get(task.node_id)
        if info is None or not info.add(task):
            return
        refile_all(info)
        svc = task.service_id
        if info.by_service[svc] == 1:
            nodes = self._svc_nodes.get(svc)
            if nodes is None:
                self._svc_nodes[svc] = {info.id: None}
            else:
                nodes[info.id] = None

    def _svc_nodes_discard(self, svc: str, node_id: str) -> None:
        nodes = self._svc_nodes.get(svc)
        if nodes is not None:
            nodes.pop(node_id, None)
            if not nodes:
                del self._svc_nodes[svc]

    # --- failures ------------------------------------------------------------------

    def _record_failure(self, task: Task, now: float) -> None:
        if now - self._failures_pruned >= FAILURE_WINDOW:
            self._prune_failures(now)
        per_node = self._failures.setdefault((task.service_id, task.spec_version), {})
        times = per_node.setdefault(task.node_id, [])
        times[:] = [t for t in times if now - t <= FAILURE_WINDOW]
        times.append(now)

    def _prune_failures(self, now: float) -> None:
        for key in list(self._failures):
            per_node = self._failures[key]
            for node_id in list(per_node):
                if all(now - t > FAILURE_WINDOW for t in per_node[node_id]):
                    del per_node[node_id]
            if not per_node:
                del self._failures[key]
        self._failures_pruned = now

    def _shunned(self, service_id: str, spec_version: int) -> dict[str, int]:
        per_node = self._failures.get((service_id, spec_version))
        if not per_node:
            return {}
        now = self._now
        bad: dict[str, int] = {}
        for node_id, times in per_node.items():
            recent = sum(1 for t in times if now - t <= FAILURE_WINDOW)
            if recent >= MAX_FAILURES:
                bad[node_id] = recent
        return bad

    # --- placing -------------------------------------------------------------------

    def _requirements(self, task: Task) -> Requirements:
        """The task's requirements, shared by every task whose spec asks the same.

        Keyed on content, never on identity: tasks decoded from the log each
        carry their own spec object, equal in value to their service's."""
        spec = task.spec
        placement = spec.placement
        res = spec.resources.reservations
        generic = res.generic
        key = (
            placement,
            res.nano_cpus,
            res.memory_bytes,
            tuple(generic.items()) if generic else (),
            spec.ports,
            task.service_id if placement.max_replicas > 0 else "",
        )
        req = self._req_cache.get(key)
        if req is None:
            req = requirements_of(task)
            if len(self._req_cache) >= 8192:
                self._req_cache.clear()
            self._req_cache[key] = req
        return req

    def _view(self, req: Requirements) -> LoadIndex:
        key = req.static_key
        view = self._views.get(key)
        if view is None:
            view = LoadIndex(key)
            for info in self._infos.values():
                if meets_static(req, info):
                    view.add(info)
            self._views[key] = view
            self._view_reqs[key] = req
        view.last_used = self._pass
        return view

    def _evict_views(self) -> None:
        extra = len(self._views) - self.max_views - 1
        if extra <= 0:
            return
        victims = sorted(
            (v for k, v in self._views.items() if k != _BASE_VIEW_KEY),
            key=lambda v: v.last_used,
        )[:extra]
        for view in victims:
            view.drop()
            del self._views[view.key]
            del self._view_reqs[view.key]

    def _assign(self, task: Task, info: NodeInfo, message: str = ASSIGNED_MESSAGE) -> None:
        """Decide ``task`` goes to ``info``. The node is refiled in the load
        indexes by ``_settle``, so a walk over them may go on meanwhile."""
        new = replace(task, node_id=info.id, status=self._statuses[message])
        tid = task.id
        self._inflight[tid] = task
        self._tasks[tid] = new
        if info.add(new):
            svc = new.service_id
            if info.by_service[svc] == 1:
                nodes = self._svc_nodes.get(svc)
                if nodes is None:
                    self._svc_nodes[svc] = {info.id: None}
                else:
                    nodes[info.id] = None
        self._touched[info.id] = info
        self._assigned += 1
        self._changes.append(Change("update", new))

    def _settle(self) -> None:
        """File the nodes that took tasks under their new load."""
        for info in self._touched.values():
            refile_all(info)
        self._touched.clear()

    def _place_one(self, task: Task, req: Requirements) -> bool:
        """The common case of a group of one task and no preferences: the first
        node in load order without the service's tasks that fits. False when
        there is none (the general path then decides)."""
        service_id = task.service_id
        if self._failures and (service_id, task.spec_version) in self._failures:
            return False
        view = self._views.get(req.static_key)
        if view is None or view.last_used != self._pass:
            view = self._view(req)
        svc_nodes = self._svc_nodes.get(service_id)
        dynamic = req.dynamic
        buckets = view.buckets
        for count in view.counts:
            for info in buckets[count].values():
                if svc_nodes is not None and info.id in svc_nodes:
                    continue
                if dynamic and not fits_now(req, info):
                    continue
                self._assign(task, info)
                del self._touched[info.id]
                refile_all(info)
                return True
        return False

    def _place_group(self, tasks: list[Task]) -> None:
        first = tasks[0]
        req = self._requirements(first)
        if self._unfit.get(req.key) == self._assigned:
            # Tasks with these requirements found no node, and nothing was
            # placed since: these will not fit either.
            self._stuck.extend(tasks)
            return
        if len(tasks) == 1 and not req.preferences and self._place_one(first, req):
            return
        if len(tasks) > 1:
            tasks.sort(key=lambda t: (t.slot, t.id))
        service_id = first.service_id
        group = Group(req, service_id, self._shunned(service_id, first.spec_version), self._assign)
        todo = iter(tasks)
        descriptors = spread_descriptors(req.preferences) if req.preferences else ()
        if descriptors:
            tree = build_tree(self._infos.values(), descriptors, service_id, Pipeline(req))
            placed = place_on_branch(tree, len(tasks), todo, group)
        else:
            view = self._view(req)
            svc_nodes = self._svc_nodes.get(service_id, {})
            bad = group.bad

            def rest() -> list[NodeInfo]:
                live = self._svc_nodes.get(service_id, {})
                ids = [n for n in live if n in view]
                ids.extend(n for n in bad if n not in live and n in view)
                return [self._infos[n] for n in ids]

            fresh = fresh_nodes(view.walk(), svc_nodes, bad, req)
            placed = Filler(group, fresh, rest).fill(todo, len(tasks))
        self._settle()
        if placed < len(tasks):
            self._unfit[req.key] = self._assigned
            self._stuck.extend(tasks[placed:])

    def _explain_stuck(self) -> None:
        """Say why each task that fits nowhere does not, on the state the pass ends
        with; write the message only where it changes."""
        stuck, self._stuck = self._stuck, []
        explained: dict[Any, str] = {}
        for task in stuck:
            req = self._requirements(task)
            if task.node_id:
                info = self._infos.get(task.node_id)
                failed = Pipeline(req).first_failure(info) if info is not None else None
                if failed is None:
                    # Its node is unknown for now (or, defensively, fits after all).
                    (self._waiting if info is None else self._preassigned)[task.id] = task
                    continue
                message = failed.explain(1)
            else:
                text = explained.get(req.key)
                if text is None:
                    text = explained[req.key] = Pipeline(req).explain(self._infos.values())
                message = no_suitable_node(text)
            if task.status.message == message:
                self._waiting[task.id] = task
                continue
            status = task.status
            new_status = TaskStatus(self._wall, status.state, message, status.err, status.container)
            new = _with_node_status(task, task.node_id, new_status)
            self._inflight[task.id] = task
            self._tasks[task.id] = new
            self._changes.append(Change("update", new))

    def _check_preassigned(self) -> None:
        pending, self._preassigned = self._preassigned, {}
        for tid, task in pending.items():
            info = self._infos.get(task.node_id)
            if info is None:
                self._waiting[tid] = task  # its node is unknown for now
                continue
            if Pipeline(self._requirements(task)).passes(info):
                self._assign(task, info, CONFIRMED_MESSAGE)
            else:
                self._stuck.append(task)
        self._settle()

    # --- introspection ------------------------------------------------------------

    def node_info(self, node_id: str) -> NodeInfo | None:
        """What the scheduler holds about a node (read it, do not change it)."""
        return self._infos.get(node_id)

    def node_load(self, node_id: str) -> int:
        """How many tasks count toward a node (0 for an unknown node)."""
        info = self._infos.get(node_id)
        return info.active if info is not None else 0

    def pending_count(self) -> int:
        """Tasks waiting for a node (queued, waiting for room, or pre-assigned)."""
        return len(self._queue) + len(self._waiting) + len(self._preassigned)

    def _has_work(self) -> bool:
        return bool(
            self._queue
            or self._preassigned
            or (self._waiting and self._epoch != self._waiting_epoch)
        )
