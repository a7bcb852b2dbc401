"""Scheduler invariants over random clusters and workloads."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyswarmkit.api.objects import Node, Platform, Task, TaskSpec
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.scheduler.constraint import node_matches, parse_constraints
from pyswarmkit.scheduler.filters import platform_matches
from tests.unit.scheduler.helpers import CPU, GIB, Harness, node, spec, task

pytestmark = pytest.mark.unit

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONSTRAINTS = [
    "node.labels.zone==a",
    "node.labels.zone!=b",
    "node.platform.arch==amd64",
    "node.role!=manager",
    "engine.labels.disk==ssd",
]
PLATFORMS = [Platform("linux", "x86_64"), Platform("linux", "arm64"), Platform("windows", "")]


@st.composite
def nodes_st(draw: st.DrawFn) -> list[Node]:
    count = draw(st.integers(1, 7))
    out = []
    for i in range(count):
        zone = draw(st.sampled_from([None, "a", "b"]))
        out.append(
            node(
                f"n{i}",
                labels={"zone": zone} if zone else {},
                engine_labels=draw(st.sampled_from([{}, {"disk": "SSD"}])),
                state=draw(st.sampled_from([NodeState.READY] * 4 + [NodeState.DOWN])),
                arch=draw(st.sampled_from(["amd64", "x86_64", "arm64", "aarch64"])),
                cpus=draw(st.sampled_from([0, 1, 2, 4])) * CPU,
                memory=draw(st.sampled_from([0, 1, 2, 4])) * GIB,
                generic={"gpu": draw(st.integers(0, 2))},
            )
        )
    return out


@st.composite
def spec_st(draw: st.DrawFn) -> TaskSpec:
    return spec(
        constraints=tuple(draw(st.lists(st.sampled_from(CONSTRAINTS), max_size=2, unique=True))),
        platforms=tuple(draw(st.lists(st.sampled_from(PLATFORMS), max_size=2, unique=True))),
        max_replicas=draw(st.integers(0, 2)),
        cpus=draw(st.sampled_from([0, 0, 1, 2])) * CPU,
        memory=draw(st.sampled_from([0, 0, 1])) * GIB,
        generic={"gpu": draw(st.integers(0, 1))},
        host_ports=tuple(draw(st.lists(st.sampled_from([80, 81]), max_size=1))),
        preferences=tuple(draw(st.lists(st.just("spread=node.labels.zone"), max_size=1))),
    )


@dataclass
class Workload:
    nodes: list[Node]
    batches: list[list[Task]]


@st.composite
def workload_st(draw: st.DrawFn) -> Workload:
    nodes = draw(nodes_st())
    services = draw(st.lists(spec_st(), min_size=1, max_size=4))
    tasks = []
    for s_i, s in enumerate(services):
        for slot in range(draw(st.integers(1, 8))):
            tasks.append(task(f"s{s_i}-{slot}", service=f"s{s_i}", slot=slot, task_spec=s))
    tasks = draw(st.permutations(tasks))
    cuts = sorted(draw(st.lists(st.integers(0, len(tasks)), max_size=2)))
    bounds = [0, *cuts, len(tasks)]
    batches = [tasks[a:b] for a, b in pairwise(bounds) if b > a]
    return Workload(nodes, batches)


# --- a reference, written from the rules rather than from the code --------------


def counted(h: Harness) -> dict[str, list[Task]]:
    out: dict[str, list[Task]] = defaultdict(list)
    for t in h.tasks():
        live = t.desired_state <= TaskState.RUNNING and not t.status.state.terminal
        if t.node_id and live and t.status.state >= TaskState.ASSIGNED:
            out[t.node_id].append(t)
    return out


def first_failure(n: Node, t: Task, on_node: list[Task]) -> str | None:
    s = t.spec
    r = s.resources.reservations
    if n.status.state != NodeState.READY:
        return "ready"
    if r.nano_cpus or r.memory_bytes or any(r.generic.values()):
        res = n.description.resources
        used_cpu = sum(x.spec.resources.reservations.nano_cpus for x in on_node)
        used_mem = sum(x.spec.resources.reservations.memory_bytes for x in on_node)
        if r.nano_cpus > res.nano_cpus - used_cpu or r.memory_bytes > res.memory_bytes - used_mem:
            return "resources"
        for name, amount in r.generic.items():
            used = sum(x.spec.resources.reservations.generic.get(name, 0) for x in on_node)
            if amount > 0 and amount > res.generic.get(name, 0) - used:
                return "resources"
    if s.placement.constraints and not node_matches(parse_constraints(s.placement.constraints), n):
        return "constraints"
    if s.placement.platforms and not any(
        platform_matches(p, n.description.platform) for p in s.placement.platforms
    ):
        return "platform"
    wanted = {(p.protocol, p.published_port) for p in s.ports if p.publish_mode == "host"}
    used_ports = {(p.protocol, p.published_port) for x in on_node for p in x.spec.ports}
    if wanted & used_ports:
        return "ports"
    mine = sum(1 for x in on_node if x.service_id == t.service_id)
    if s.placement.max_replicas and mine >= s.placement.max_replicas:
        return "max-replicas"
    return None


WORDS = {
    "ready": lambda n: f"{n} node{'s' if n != 1 else ''} not available for new tasks",
    "resources": lambda n: f"insufficient resources on {n} node{'s' if n != 1 else ''}",
    "constraints": lambda n: (
        f"scheduling constraints not satisfied on {n} node{'s' if n != 1 else ''}"
    ),
    "platform": lambda n: f"unsupported platform on {n} node{'s' if n != 1 else ''}",
    "ports": lambda n: f"host-mode port already in use on {n} node{'s' if n != 1 else ''}",
    "max-replicas": lambda n: "max replicas per node limit exceed",
}


def expected_message(h: Harness, t: Task) -> str:
    load = counted(h)
    fails = Counter(first_failure(n, t, load[n.id]) for n in h.store.nodes())
    fails.pop(None, None)
    order = list(WORDS)
    ranked = sorted(fails.items(), key=lambda kv: (-kv[1], order.index(str(kv[0]))))
    text = "; ".join(WORDS[str(name)](count) for name, count in ranked)
    return f"no suitable node ({text})" if text else "no suitable node"


def run(w: Workload) -> Harness:
    h = Harness()
    h.create(*w.nodes)
    for batch in w.batches:
        h.create(*batch)
        h.settle()
    return h


# --- properties ----------------------------------------------------------------


@SETTINGS
@given(workload_st())
def test_placements_respect_every_filter_and_leave_nothing_placeable(w: Workload) -> None:
    h = run(w)
    nodes = h.nodes()
    load = counted(h)
    for node_id, tasks in load.items():
        n = nodes[node_id]
        for t in tasks:
            others = [x for x in tasks if x.id != t.id]
            assert first_failure(n, t, others) is None, (t, n)
    for t in h.tasks():
        if t.status.state == TaskState.PENDING:
            assert all(first_failure(n, t, load[n.id]) is not None for n in nodes.values()), t


@SETTINGS
@given(workload_st())
def test_explanations_match_swarmkits_wording(w: Workload) -> None:
    h = run(w)
    # Messages describe the state the last pass left, which is the final state.
    for t in h.tasks():
        if t.status.state == TaskState.PENDING:
            assert t.status.message == expected_message(h, t)


@SETTINGS
@given(
    n_nodes=st.integers(1, 9),
    n_tasks=st.integers(1, 60),
    cuts=st.lists(st.integers(0, 60), max_size=3),
    other_load=st.lists(st.integers(0, 8), max_size=9),
)
def test_one_service_on_equal_nodes_is_even(
    n_nodes: int, n_tasks: int, cuts: list[int], other_load: list[int]
) -> None:
    h = Harness()
    h.create(*[node(f"n{i}") for i in range(n_nodes)])
    busy = [
        task(f"o{i}-{j}", service=f"other{j}", node_id=f"n{i}", state=TaskState.RUNNING)
        for i, k in enumerate(other_load[:n_nodes])
        for j in range(k)
    ]
    if busy:
        h.create(*busy)
    tasks = [task(f"t{i}", slot=i) for i in range(n_tasks)]
    bounds = [0, *sorted(c for c in cuts if c < n_tasks), n_tasks]
    for a, b in pairwise(bounds):
        if b > a:
            h.create(*tasks[a:b])
            h.settle()
    per = Counter(t.node_id for t in h.tasks() if t.service_id == "svc")
    counts = [per.get(f"n{i}", 0) for i in range(n_nodes)]
    assert sum(counts) == n_tasks
    assert max(counts) - min(counts) <= 1, counts


@SETTINGS
@given(
    zones=st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=1, max_size=9),
    racks=st.lists(st.sampled_from(["r1", "r2"]), min_size=9, max_size=9),
    n_tasks=st.integers(1, 40),
    nested=st.booleans(),
    split=st.integers(0, 40),
)
def test_preferences_balance_across_label_values(
    zones: list[str], racks: list[str], n_tasks: int, nested: bool, split: int
) -> None:
    h = Harness()
    nodes = []
    for i, z in enumerate(zones):
        labels = {"rack": racks[i]}
        if z:
            labels["zone"] = z
        nodes.append(node(f"n{i}", labels=labels))
    h.create(*nodes)
    prefs = (
        ("spread=node.labels.zone", "spread=node.labels.rack")
        if nested
        else ("spread=node.labels.zone",)
    )
    s = spec(preferences=prefs)
    tasks = [task(f"t{i}", slot=i, task_spec=s) for i in range(n_tasks)]
    for part in (tasks[: min(split, n_tasks)], tasks[min(split, n_tasks) :]):
        if part:
            h.create(*part)
            h.settle()
    zone_of = {f"n{i}": z for i, z in enumerate(zones)}
    rack_of = {f"n{i}": racks[i] for i in range(len(zones))}
    per_zone = Counter(zone_of[t.node_id] for t in h.tasks())
    zone_counts = [per_zone.get(z, 0) for z in set(zones)]
    assert sum(zone_counts) == n_tasks
    assert max(zone_counts) - min(zone_counts) <= 1, per_zone
    if nested:
        for z in set(zones):
            in_zone = {rack_of[n] for n, zz in zone_of.items() if zz == z}
            per_rack = Counter(rack_of[t.node_id] for t in h.tasks() if zone_of[t.node_id] == z)
            rack_counts = [per_rack.get(r, 0) for r in in_zone]
            assert max(rack_counts) - min(rack_counts) <= 1, (z, per_rack)
