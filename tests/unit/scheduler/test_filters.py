from __future__ import annotations

import pytest

from pyswarmkit.api.objects import Platform, replace
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.scheduler.filters import (
    FILTERS,
    ConstraintFilter,
    HostPortFilter,
    MaxReplicasFilter,
    PlatformFilter,
    ReadyFilter,
    ResourceFilter,
    normalize_arch,
    platform_matches,
    requirements_of,
)
from pyswarmkit.scheduler.nodeinfo import NodeInfo, counts_toward_node
from pyswarmkit.scheduler.pipeline import Pipeline, explain_failures, no_suitable_node
from tests.unit.scheduler.helpers import CPU, GIB, node, spec, task

pytestmark = pytest.mark.unit


def info(*tasks_on_it: object, **node_args: object) -> NodeInfo:
    ni = NodeInfo(node("n1", **node_args))  # type: ignore[arg-type]
    for t in tasks_on_it:
        ni.add(t)  # type: ignore[arg-type]
    return ni


def test_filter_order_is_swarmkits() -> None:
    assert [type(f) for f in FILTERS] == [
        ReadyFilter,
        ResourceFilter,
        ConstraintFilter,
        PlatformFilter,
        HostPortFilter,
        MaxReplicasFilter,
    ]


def test_only_applicable_filters_run() -> None:
    assert [type(f) for f in Pipeline(requirements_of(task("t"))).filters] == [ReadyFilter]
    req = requirements_of(task("t", task_spec=spec(memory=1, host_ports=(80,), max_replicas=2)))
    assert [type(f) for f in Pipeline(req).filters] == [
        ReadyFilter,
        ResourceFilter,
        HostPortFilter,
        MaxReplicasFilter,
    ]


@pytest.mark.parametrize(
    ("node_args", "ready"),
    [
        ({}, True),
        ({"state": NodeState.DOWN}, False),
        ({"state": NodeState.UNKNOWN}, False),
        ({"state": NodeState.DISCONNECTED}, False),
        ({"availability": NodeAvailability.DRAIN}, False),
        ({"availability": NodeAvailability.PAUSE}, False),
    ],
)
def test_ready_filter(node_args: dict[str, object], ready: bool) -> None:
    req = requirements_of(task("t"))
    assert ReadyFilter().check(req, info(**node_args)) is ready


def test_ready_filter_wants_accepted_membership() -> None:

    from pyswarmkit.api.states import Membership

    n = node("n1")
    pending = replace(n, spec=replace(n.spec, membership=Membership.PENDING))
    assert not ReadyFilter().check(requirements_of(task("t")), NodeInfo(pending))


def test_resource_filter_cpu_memory_generic() -> None:
    f = ResourceFilter()
    req = requirements_of(task("t", task_spec=spec(cpus=2 * CPU, memory=GIB, generic={"gpu": 1})))
    assert f.applies(req)
    assert f.check(req, info(cpus=2 * CPU, memory=GIB, generic={"gpu": 1}))
    assert not f.check(req, info(cpus=CPU, memory=GIB, generic={"gpu": 1}))
    assert not f.check(req, info(cpus=2 * CPU, memory=GIB - 1, generic={"gpu": 1}))
    assert not f.check(req, info(cpus=2 * CPU, memory=GIB))
    assert not f.applies(requirements_of(task("t")))


def test_reservations_of_counted_tasks_are_subtracted() -> None:
    s = spec(cpus=CPU, memory=GIB)
    on_node = task("a", task_spec=s, node_id="n1", state=TaskState.RUNNING)
    assert counts_toward_node(on_node)
    ni = info(on_node, cpus=2 * CPU, memory=2 * GIB)
    assert (ni.nano_cpus, ni.memory_bytes) == (CPU, GIB)
    req = requirements_of(task("b", task_spec=spec(cpus=CPU, memory=GIB)))
    assert ResourceFilter().check(req, ni)
    ni.add(task("c", task_spec=s, node_id="n1", state=TaskState.RUNNING))
    assert not ResourceFilter().check(req, ni)
    ni.remove("c")
    assert ResourceFilter().check(req, ni)


def test_tasks_that_do_not_count() -> None:
    assert not counts_toward_node(task("a"))  # no node
    assert not counts_toward_node(task("a", node_id="n", state=TaskState.FAILED))
    assert not counts_toward_node(
        task("a", node_id="n", state=TaskState.SHUTDOWN, desired=TaskState.SHUTDOWN)
    )
    assert counts_toward_node(task("a", node_id="n", state=TaskState.ASSIGNED))
    # Told to stop but still running: it holds the node until it has stopped.
    assert counts_toward_node(
        task("a", node_id="n", state=TaskState.RUNNING, desired=TaskState.SHUTDOWN)
    )


def test_constraint_filter() -> None:
    f = ConstraintFilter()
    req = requirements_of(task("t", task_spec=spec(constraints=("node.labels.zone==east",))))
    assert f.applies(req)
    assert f.check(req, info(labels={"zone": "east"}))
    assert not f.check(req, info(labels={"zone": "west"}))
    assert not f.applies(requirements_of(task("t")))


def test_unparseable_stored_constraint_matches_no_node() -> None:
    req = requirements_of(task("t", task_spec=spec(constraints=("zone=east",))))
    assert req.constraints is None
    assert ConstraintFilter().applies(req)
    assert not ConstraintFilter().check(req, info(labels={"zone": "east"}))


@pytest.mark.parametrize(
    ("wanted", "node_arch", "ok"),
    [
        ("x86_64", "amd64", True),
        ("amd64", "x86_64", True),
        ("aarch64", "arm64", True),
        ("arm64", "aarch64", True),
        ("arm64", "amd64", False),
        ("", "s390x", True),
        ("amd64", "", False),
    ],
)
def test_platform_architecture_aliases(wanted: str, node_arch: str, ok: bool) -> None:
    assert platform_matches(Platform("linux", wanted), Platform("linux", node_arch)) is ok


def test_normalize_arch() -> None:
    assert normalize_arch("x86_64") == "amd64"
    assert normalize_arch("aarch64") == "arm64"
    assert normalize_arch("riscv64") == "riscv64"


def test_platform_filter() -> None:
    f = PlatformFilter()
    req = requirements_of(
        task(
            "t",
            task_spec=spec(platforms=(Platform("windows", ""), Platform("linux", "x86_64"))),
        )
    )
    assert f.applies(req)
    assert f.check(req, info(os="linux", arch="amd64"))
    assert f.check(req, info(os="windows", arch="arm64"))
    assert not f.check(req, info(os="linux", arch="arm64"))
    assert not f.check(req, info(os="", arch=""))
    assert not f.applies(requirements_of(task("t")))


def test_host_port_filter() -> None:
    f = HostPortFilter()
    req = requirements_of(task("t", task_spec=spec(host_ports=(8080,))))
    assert f.applies(req)
    assert f.check(req, info())
    busy = task("a", task_spec=spec(host_ports=(8080,)), node_id="n1", state=TaskState.RUNNING)
    assert not f.check(req, info(busy))
    other = task("b", task_spec=spec(host_ports=(9090,)), node_id="n1", state=TaskState.RUNNING)
    assert f.check(req, info(other))
    ni = info(busy)
    ni.remove("a")
    assert f.check(req, ni)


def test_ingress_ports_do_not_count_as_host_ports() -> None:

    from pyswarmkit.api.objects import PortConfig

    s = replace(spec(), ports=(PortConfig(80, 8080, "tcp", "ingress"),))
    assert not HostPortFilter().applies(requirements_of(task("t", task_spec=s)))


def test_max_replicas_filter() -> None:
    f = MaxReplicasFilter()
    s = spec(max_replicas=2)
    req = requirements_of(task("t", task_spec=s))
    one = task("a", task_spec=s, node_id="n1", state=TaskState.RUNNING)
    two = task("b", task_spec=s, node_id="n1", state=TaskState.RUNNING)
    other = task("c", service="other", node_id="n1", state=TaskState.RUNNING)
    assert f.check(req, info(one, other))
    assert not f.check(req, info(one, two))
    assert f.explain(3) == "max replicas per node limit exceed"


@pytest.mark.parametrize(
    ("filt", "one", "many"),
    [
        (
            ReadyFilter(),
            "1 node not available for new tasks",
            "3 nodes not available for new tasks",
        ),
        (ResourceFilter(), "insufficient resources on 1 node", "insufficient resources on 3 nodes"),
        (
            ConstraintFilter(),
            "scheduling constraints not satisfied on 1 node",
            "scheduling constraints not satisfied on 3 nodes",
        ),
        (PlatformFilter(), "unsupported platform on 1 node", "unsupported platform on 3 nodes"),
        (
            HostPortFilter(),
            "host-mode port already in use on 1 node",
            "host-mode port already in use on 3 nodes",
        ),
    ],
)
def test_explanations(filt: object, one: str, many: str) -> None:
    assert filt.explain(1) == one  # type: ignore[attr-defined]
    assert filt.explain(3) == many  # type: ignore[attr-defined]


def test_explanations_combine_most_frequent_first() -> None:
    ready, resources, constraints = FILTERS[0], FILTERS[1], FILTERS[2]
    text = explain_failures({resources: 1, ready: 2})
    assert text == "2 nodes not available for new tasks; insufficient resources on 1 node"
    # ties keep the pipeline's order
    text = explain_failures({constraints: 2, ready: 2})
    assert text == (
        "2 nodes not available for new tasks; scheduling constraints not satisfied on 2 nodes"
    )
    assert no_suitable_node(text).startswith("no suitable node (2 nodes")
    assert no_suitable_node("") == "no suitable node"


def test_pipeline_counts_first_failure_only() -> None:
    req = requirements_of(
        task("t", task_spec=spec(memory=GIB, constraints=("node.labels.zone==east",)))
    )
    nodes = [
        NodeInfo(node("down", state=NodeState.DOWN, memory=GIB, labels={"zone": "east"})),
        # fails resources first, though it also fails the constraint
        NodeInfo(node("small", labels={"zone": "west"})),
        NodeInfo(node("west", memory=GIB, labels={"zone": "west"})),
        NodeInfo(node("west2", memory=GIB, labels={"zone": "west"})),
        NodeInfo(node("ok", memory=GIB, labels={"zone": "east"})),
    ]
    p = Pipeline(req)
    assert p.passes(nodes[-1])
    assert p.explain(nodes) == (
        "scheduling constraints not satisfied on 2 nodes; "
        "1 node not available for new tasks; insufficient resources on 1 node"
    )
