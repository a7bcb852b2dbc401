"""Whatever happens — commits, refusals, events racing decisions — the core's
bookkeeping equals what a fresh core would build from the store."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyswarmkit.api.objects import Task, TaskStatus, replace
from pyswarmkit.api.states import NodeAvailability, TaskState
from pyswarmkit.scheduler.core import Scheduler
from pyswarmkit.store.memory import Change
from tests.unit.scheduler.helpers import CPU, GIB, Harness, node, spec, task

pytestmark = pytest.mark.unit

SPECS = [
    spec(),
    spec(cpus=CPU, memory=GIB),
    spec(host_ports=(80,)),
    spec(max_replicas=1, generic={"gpu": 1}),
    spec(constraints=("node.labels.zone==a",)),
    spec(preferences=("spread=node.labels.zone",)),
]

OPS = st.one_of(
    st.tuples(st.just("create"), st.integers(0, len(SPECS) - 1), st.integers(1, 4)),
    st.tuples(st.just("schedule"), st.sampled_from(["commit", "refuse", "race"])),
    st.tuples(st.just("progress"), st.integers(0, 50), st.sampled_from(list(TaskState))),
    st.tuples(st.just("shutdown"), st.integers(0, 50)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(
        st.just("node"),
        st.integers(0, 3),
        st.sampled_from(list(NodeAvailability)),
        st.sampled_from([1, 2, 4]),
    ),
    st.tuples(st.just("wait"), st.floats(0.0, 400.0)),
)


def snapshot(core: Scheduler, node_ids: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for nid in node_ids:
        info = core.node_info(nid)
        assert info is not None
        out[nid] = (
            sorted(info.tasks),
            info.active,
            dict(info.by_service),
            info.nano_cpus,
            info.memory_bytes,
            {k: v for k, v in info.generic.items() if v},
            dict(info.ports),
            info.ready,
        )
    return out


def with_state(t: Task, state: TaskState) -> Task:
    return replace(t, status=TaskStatus(timestamp=0.0, state=state))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=3, max_size=30))
def test_bookkeeping_matches_a_fresh_core(ops: list[tuple[object, ...]]) -> None:
    h = Harness()
    nodes = [
        node(
            f"n{i}", labels={"zone": "ab"[i % 2]}, cpus=2 * CPU, memory=2 * GIB, generic={"gpu": 1}
        )
        for i in range(4)
    ]
    h.create(*nodes)
    made = 0
    for op in ops:
        kind = op[0]
        if kind == "create":
            _, s, n = op
            h.create(
                *[
                    task(f"t{made + i}", service=f"svc{s}", slot=made + i, task_spec=SPECS[s])  # type: ignore[index]
                    for i in range(n)  # type: ignore[call-overload]
                ]
            )
            made += n  # type: ignore[operator]
        elif kind == "schedule":
            h.deliver()
            changes = h.core.schedule(h.now)
            if not changes:
                continue
            if op[1] == "refuse":
                h.core.rejected(changes)
            elif op[1] == "race":
                # Another writer changes one of the tasks first: the batch is refused.
                victim = h.task(changes[0].obj.id)
                h.update(replace(victim, desired_state=TaskState.SHUTDOWN))
                h.proposer.propose(changes, h.now, h._done(changes))
            else:
                h.proposer.propose(changes, h.now, h._done(changes))
            h.deliver()
        elif kind in ("progress", "shutdown", "delete"):
            tasks = sorted(h.tasks(), key=lambda t: t.id)
            if not tasks:
                continue
            t = tasks[op[1] % len(tasks)]  # type: ignore[operator]
            if kind == "progress":
                new_state = op[2]
                assert isinstance(new_state, TaskState)
                if new_state > t.status.state:
                    h.update(with_state(t, new_state))
            elif kind == "shutdown":
                h.update(replace(t, desired_state=TaskState.SHUTDOWN))
            else:
                h.commit([Change("delete", t)])
        elif kind == "node":
            _, i, availability, cpus = op
            n = nodes[i]  # type: ignore[index]
            res = replace(n.description.resources, nano_cpus=cpus * CPU)  # type: ignore[operator]
            n = replace(
                n,
                spec=replace(n.spec, availability=availability),
                description=replace(n.description, resources=res),
            )
            h.update(n)
        elif kind == "wait":
            h.now += op[1]  # type: ignore[operator]
        fresh = Scheduler()
        fresh.reset(h.store.nodes(), h.store.tasks(), h.now)
        ids = [n.id for n in nodes]
        assert snapshot(h.core, ids) == snapshot(fresh, ids)
        assert h.core.pending_count() == fresh.pending_count()
    # And whatever is left pending, the core still gets to.
    h.settle()
