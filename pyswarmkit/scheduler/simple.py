"""A minimal placement core: ready, active nodes; fewest tasks first.

It stands behind ``SchedulerCore`` until the full filter pipeline replaces it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from pyswarmkit.api.objects import Node, Task, TaskStatus
from pyswarmkit.api.states import Membership, NodeAvailability, NodeState, TaskState
from pyswarmkit.store.memory import Change, EventBatch


def node_is_ready(node: Node) -> bool:
    return (
        node.status.state == NodeState.READY
        and node.spec.availability == NodeAvailability.ACTIVE
        and node.spec.membership == Membership.ACCEPTED
    )


def counts_toward_load(task: Task) -> bool:
    return (
        bool(task.node_id)
        and task.desired_state <= TaskState.RUNNING
        and not task.status.state.terminal
    )


class SimpleScheduler:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.load: dict[str, set[str]] = {}
        self.pending: dict[str, Task] = {}
        # The pending tasks behind the last decisions, restored if they are refused.
        self._inflight: dict[str, Task] = {}
        self._dirty = False

    def reset(self, nodes: Iterable[Node], tasks: Iterable[Task], now: float) -> None:
        self.nodes = {n.id: n for n in nodes}
        self.load = {n: set() for n in self.nodes}
        self.pending = {}
        for t in tasks:
            self._track(None, t)
        self._dirty = True

    def observe(self, batch: EventBatch, now: float) -> None:
        for ev in batch.events:
            if ev.kind == "node":
                if ev.op == "delete":
                    self.nodes.pop(ev.obj.id, None)
                else:
                    assert isinstance(ev.obj, Node)
                    self.nodes[ev.obj.id] = ev.obj
                    self.load.setdefault(ev.obj.id, set())
                self._dirty = True
            elif ev.kind == "task":
                assert isinstance(ev.obj, Task)
                new = None if ev.op == "delete" else ev.obj
                self._track(ev.old if isinstance(ev.old, Task) else None, new)
                if new is not None and new.status.state == TaskState.PENDING:
                    self._dirty = True

    def _track(self, old: Task | None, new: Task | None) -> None:
        if old is not None and old.node_id in self.load:
            self.load[old.node_id].discard(old.id)
        if old is not None:
            self.pending.pop(old.id, None)
            # A newer version came in: it, not a remembered decision, is the truth.
            self._inflight.pop(old.id, None)
        if new is None:
            return
        if counts_toward_load(new):
            self.load.setdefault(new.node_id, set()).add(new.id)
        if new.status.state == TaskState.PENDING and new.desired_state <= TaskState.RUNNING:
            self.pending[new.id] = new

    def due(self, now: float) -> bool:
        return self._dirty and bool(self.pending)

    def schedule(self, now: float) -> list[Change]:
        self._dirty = False
        ready = [n for n in self.nodes.values() if node_is_ready(n)]
        changes: list[Change] = []
        for task in sorted(self.pending.values(), key=lambda t: (t.service_id, t.slot)):
            if not ready:
                message = "no suitable node"
                if task.status.message != message:
                    status = dataclasses.replace(task.status, message=message, timestamp=now)
                    changes.append(Change("update", dataclasses.replace(task, status=status)))
                continue
            node = min(ready, key=lambda n: (len(self.load[n.id]), n.id))
            self.load[node.id].add(task.id)
            status = TaskStatus(
                timestamp=now, state=TaskState.ASSIGNED, message="scheduler assigned task to node"
            )
            changes.append(
                Change("update", dataclasses.replace(task, node_id=node.id, status=status))
            )
        self._inflight = {ch.obj.id: self.pending.pop(ch.obj.id) for ch in changes}
        return changes

    def rejected(self, changes: Sequence[Change]) -> None:
        for ch in changes:
            task = ch.obj
            assert isinstance(task, Task)
            if task.node_id in self.load:
                self.load[task.node_id].discard(task.id)
            original = self._inflight.pop(task.id, None)
            if original is not None:
                self.pending.setdefault(task.id, original)
        self._dirty = True
