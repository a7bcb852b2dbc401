"""Property: whatever sequence of spec changes, node changes and task failures
happens, once the orchestrator cores have run to a fixed point every slot has
at most one task desired RUNNING, a replicated job runs at most its max
concurrent and completes each slot once, a replicated service has exactly its replica
count desired RUNNING, and a global service has one on every node that may take
it, at most one on a paused node, and none on any other."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api.objects import Node, replace
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.orchestrator.support import fits_node, node_gone, takes_new_tasks
from pyswarmkit.store import Change
from tests.unit.orchestration.world import World, spec

pytestmark = pytest.mark.unit

NODES = ("n1", "n2", "n3")
ZONES = ("a", "b", "c")

ops = st.one_of(
    st.tuples(st.just("scale"), st.integers(0, 4)),
    st.tuples(st.just("respec"), st.integers(0, 2)),
    st.tuples(st.just("constrain"), st.booleans()),
    st.tuples(st.just("fail"), st.integers(0, 20)),
    st.tuples(st.just("complete"), st.integers(0, 20)),
    st.tuples(st.just("run"), st.just(0)),
    st.tuples(st.just("stop"), st.just(0)),
    st.tuples(
        st.just("avail"), st.tuples(st.sampled_from(NODES), st.sampled_from(list(NodeAvailability)))
    ),
    st.tuples(st.just("down"), st.tuples(st.sampled_from(NODES), st.booleans())),
    st.tuples(st.just("zone"), st.tuples(st.sampled_from(NODES), st.sampled_from(ZONES))),
    st.tuples(st.just("remove"), st.sampled_from(NODES)),
    st.tuples(st.just("add"), st.sampled_from(NODES)),
)


class Model:
    def __init__(self) -> None:
        self.w = World()
        for n in NODES:
            self.w.add_node(n, labels={"zone": "a"})
        self.replicas = 2
        self.version = 0
        self.constrained = False
        self.rep = self.w.create(self.spec("web", "replicated"))
        self.glob = self.w.create(self.spec("agent", "global"))
        self.job = self.w.create(spec("batch", "replicated-job", total=4, concurrent=2))
        self.now = 0.0
        self.w.settle(self.now)

    def spec(self, name: str, kind: Any) -> Any:
        return spec(
            name,
            kind,
            replicas=self.replicas,
            command=f"v{self.version}",
            constraints=("node.labels.zone!=c",) if self.constrained else (),
        )

    def respec(self) -> None:
        self.w.update(self.rep, self.spec("web", "replicated"), self.now)
        self.w.update(self.glob, self.spec("agent", "global"), self.now)

    def node(self, name: str) -> Node | None:
        return self.w.store.get_node(name)

    def apply(self, op: str, arg: Any) -> None:
        w = self.w
        self.now += 1.0
        if op == "scale":
            self.replicas = arg
            w.update(self.rep, self.spec("web", "replicated"), self.now)
        elif op == "respec":
            self.version = arg
            self.respec()
        elif op == "constrain":
            self.constrained = arg
            self.respec()
        elif op in ("fail", "complete"):
            live = [t for t in w.tasks() if t.status.state == TaskState.RUNNING]
            if live:
                state = TaskState.FAILED if op == "fail" else TaskState.COMPLETE
                w.report(live[arg % len(live)].id, state, self.now)
        elif op == "run":
            self.run()
        elif op == "stop":
            w.stop_unwanted(self.now)
        elif op == "avail":
            name, avail = arg
            if self.node(name) is not None:
                w.set_availability(name, avail, self.now)
        elif op == "down":
            name, down = arg
            if self.node(name) is not None:
                w.set_state(name, NodeState.DOWN if down else NodeState.READY, self.now)
        elif op == "zone":
            name, zone = arg
            if self.node(name) is not None:
                w.set_labels(name, {"zone": zone}, self.now)
        elif op == "remove" and self.node(arg) is not None:
            w.remove_node(arg, self.now)
        elif op == "add" and self.node(arg) is None:
            w.add_node(arg, labels={"zone": "a"}, now=self.now)
        w.settle(self.now)

    def run(self) -> None:
        """The scheduler and agents: tasks desired RUNNING start on a node that
        takes them (a global one only on its own)."""
        changes = []
        service = self.w.service(self.rep)
        homes = [n.id for n in self.w.store.nodes() if takes_new_tasks(n) and fits_node(service, n)]
        for t in self.w.tasks():
            if t.desired_state != TaskState.RUNNING or t.status.state >= TaskState.RUNNING:
                continue
            node = t.node_id or (homes[t.slot % len(homes)] if homes else "")
            n = self.node(node) if node else None
            if n is None or not takes_new_tasks(n):
                continue
            status = replace(t.status, state=TaskState.RUNNING)
            changes.append(Change("update", replace(t, node_id=node, status=status)))
        if changes:
            self.w.write(changes, self.now)

    def check(self) -> None:
        w = self.w
        job = w.service(self.job)
        current = [t for t in w.tasks(self.job) if t.job_iteration == job.job_iteration]
        going = [
            t.slot
            for t in current
            if t.desired_state <= TaskState.RUNNING and not t.status.state.terminal
        ]
        done = [t.slot for t in current if t.status.state == TaskState.COMPLETE]
        assert len(going) == len(set(going)) and len(going) <= 2
        assert len(done) == len(set(done)) and not set(done) & set(going)
        assert set(going) | set(done) <= {1, 2, 3, 4}
        # A stop-first rolling update's replacement is live (desired READY)
        # until the task it replaces stopped: the slot still counts.
        wanted = w.live(self.rep)
        slots = [t.slot for t in wanted]
        assert len(slots) == len(set(slots)), f"two tasks wanted in a slot: {slots}"
        assert len(wanted) == self.replicas
        glob = w.service(self.glob)
        per_node: dict[str, int] = {}
        for t in w.live(self.glob):
            per_node[t.node_id] = per_node.get(t.node_id, 0) + 1
        for name, count in per_node.items():
            assert count <= 1, f"{count} global tasks wanted on {name}"
        for name in NODES:
            node = self.node(name)
            count = per_node.get(name, 0)
            if node is None or node_gone(node) or not fits_node(glob, node):
                assert count == 0, f"a global task wanted on {name}, which may not run it"
            elif node.spec.availability == NodeAvailability.PAUSE:
                assert count <= 1
            elif takes_new_tasks(node):
                assert count == 1, f"no global task on {name}"


@settings(max_examples=200, deadline=None)
@given(st.lists(ops, max_size=25))
def test_slots_and_nodes_hold_what_the_spec_says_after_any_history(
    history: list[tuple[str, Any]],
) -> None:
    model = Model()
    model.check()
    for op, arg in history:
        model.apply(op, arg)
        model.check()
