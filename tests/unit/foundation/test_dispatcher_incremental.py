"""The dispatcher's assignment sets, built from the task events since the last
set, against a full scan of each node's tasks in the store on every tick."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api.objects import Task, TaskStatus, replace
from pyswarmkit.api.protocol import Assignments
from pyswarmkit.api.states import TaskState
from pyswarmkit.dispatcher.core import Dispatcher, Outgoing, assignable
from pyswarmkit.store import Change, EventBatch, MemoryStore

pytestmark = pytest.mark.unit

NODES = ("n1", "n2")
TASKS = ("t0", "t1", "t2")
STATES = (
    TaskState.NEW,
    TaskState.PENDING,
    TaskState.ASSIGNED,
    TaskState.ACCEPTED,
    TaskState.RUNNING,
    TaskState.COMPLETE,
    TaskState.FAILED,
    TaskState.SHUTDOWN,
)
DESIRED = (TaskState.READY, TaskState.RUNNING, TaskState.SHUTDOWN, TaskState.REMOVE)


class FullScan(Dispatcher):
    """Every node whose tasks changed is compared in full with the store."""

    def observe(self, batch: EventBatch) -> None:
        for ev in batch.events:
            if ev.kind != "task":
                continue
            for t in (ev.obj, ev.old):
                if isinstance(t, Task) and t.node_id in self.sessions:
                    self._dirty_nodes.add(t.node_id)

    def assignments(self, store: MemoryStore) -> list[Outgoing]:
        out: list[Outgoing] = []
        for node_id in sorted(self._dirty_nodes):
            session = self.sessions.get(node_id)
            if session is None:
                continue
            current = {t.id: t for t in store.tasks_by_node(node_id) if assignable(t)}
            key = {t.id: (int(t.desired_state), t.spec_version) for t in current.values()}
            changed = [t for t in current.values() if session.sent.get(t.id) != key[t.id]]
            removed = [tid for tid in session.sent if tid not in current]
            if session.needs_full or changed or removed:
                full = session.needs_full
                msg = Assignments(
                    session.session_id,
                    full,
                    0 if full else session.seq,
                    session.seq + 1,
                    tuple(current.values()) if full else tuple(changed),
                    () if full else tuple(removed),
                )
                out.append(Outgoing(node_id, msg))
                session.seq += 1
                session.needs_full = False
                session.sent = key
        self._dirty_nodes.clear()
        return out


def _make(cls: type[Dispatcher]) -> Dispatcher:
    counter = itertools.count(1)
    return cls(id_gen=lambda: f"session-{next(counter)}")


def _canonical(out: list[Outgoing]) -> list[tuple[object, ...]]:
    result = []
    for o in out:
        body = o.body
        assert isinstance(body, Assignments)
        tasks = sorted((t.id, t) for t in body.tasks)
        result.append(
            (
                o.node_id,
                body.session_id,
                body.full,
                body.applies_to,
                body.results_in,
                [t for _, t in tasks],
                sorted(body.removed),
            )
        )
    return result


op = st.one_of(
    st.tuples(
        st.just("write"),
        st.sampled_from(TASKS),
        st.sampled_from(("", *NODES)),
        st.sampled_from(STATES),
        st.sampled_from(DESIRED),
        st.integers(0, 2),
    ),
    st.tuples(st.just("status"), st.sampled_from(TASKS), st.sampled_from(STATES)),
    st.tuples(st.just("delete"), st.sampled_from(TASKS)),
    st.tuples(st.just("open"), st.sampled_from(NODES)),
    st.tuples(st.just("close"), st.sampled_from(NODES)),
    st.tuples(st.just("request"), st.sampled_from(NODES)),
    st.tuples(st.just("tick")),
)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.lists(op, max_size=60))
def test_sets_from_events_equal_sets_from_a_full_scan(ops: list[tuple[object, ...]]) -> None:
    store = MemoryStore()
    fast, slow = _make(Dispatcher), _make(FullScan)
    for d in (fast, slow):
        for node in NODES:
            d.open_session(node, 0.0)
    for step in ops:
        kind = step[0]
        changes: list[Change] = []
        if kind == "write":
            _, tid, node, state, desired, version = step
            assert isinstance(tid, str)
            old = store.get_task(tid)
            new = Task(
                id=tid,
                node_id=str(node),
                desired_state=TaskState(desired),  # type: ignore[call-overload]
                spec_version=int(version),  # type: ignore[call-overload]
                status=TaskStatus(state=TaskState(state)),  # type: ignore[call-overload]
            )
            if old is None:
                changes = [Change("create", new)]
            else:
                changes = [Change("update", replace(new, meta=old.meta))]
        elif kind == "status":
            _, tid, state = step
            old = store.get_task(str(tid))
            if old is not None:
                status = TaskStatus(state=TaskState(state))  # type: ignore[call-overload]
                changes = [Change("update", replace(old, status=status))]
        elif kind == "delete":
            old = store.get_task(str(step[1]))
            if old is not None:
                changes = [Change("delete", old)]
        elif kind == "open":
            fast.open_session(str(step[1]), 0.0)
            slow.open_session(str(step[1]), 0.0)
        elif kind == "close":
            fast.close_session(str(step[1]))
            slow.close_session(str(step[1]))
        elif kind == "request":
            for d in (fast, slow):
                session = d.sessions.get(str(step[1]))
                if session is not None:
                    session.needs_full = True
                    d._dirty_nodes.add(session.node_id)
        else:
            assert _canonical(fast.assignments(store)) == _canonical(slow.assignments(store))
        if changes:
            batch = store.apply(changes, store.index + 1, 1.0)
            fast.observe(batch)
            slow.observe(batch)
    assert _canonical(fast.assignments(store)) == _canonical(slow.assignments(store))
