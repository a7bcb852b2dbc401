"""The control API's pure handlers, name/ID resolution and spec validation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pyswarmkit.api.codec import CodecError, packb, unpackb
from pyswarmkit.api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pyswarmkit.api.objects import (
    Annotations,
    Cluster,
    ContainerSpec,
    Meta,
    Node,
    NodeDescription,
    NodeSpec,
    Placement,
    PortConfig,
    ResourceRequirements,
    Resources,
    RestartPolicy,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
    replace,
)
from pyswarmkit.api.states import NodeAvailability, TaskState
from pyswarmkit.control.handlers import Handlers, Reply, Write, slot_errors
from pyswarmkit.control.resolve import resolve
from pyswarmkit.control.validate import validate_service_spec
from pyswarmkit.store import Change, MemoryStore
from pyswarmkit.transport.control import merge_pages, paginate

pytestmark = pytest.mark.unit


def spec(
    name: str = "web", replicas: int = 1, command: tuple[str, ...] = ("serve",)
) -> ServiceSpec:
    return ServiceSpec(
        annotations=Annotations(name=name),
        task=TaskSpec(container=ContainerSpec(command=command)),
        mode=ServiceMode(replicas=replicas),
    )


def apply(store: MemoryStore, changes: list[Change], now: float = 1.0) -> Any:
    return store.apply(changes, store.index + 1, now)


def write(store: MemoryStore, method: str, body: dict[str, Any]) -> Any:
    """Run a write as the control actor does: handle, build, commit, reply."""
    outcome = Handlers().handle(store, method, body)
    assert isinstance(outcome, Write)
    batch = apply(store, outcome.build(store)) if outcome.build(store) else None
    return outcome.result(batch)


def read(store: MemoryStore, method: str, body: dict[str, Any]) -> dict[str, Any]:
    outcome = Handlers().handle(store, method, body)
    assert isinstance(outcome, Reply)
    return outcome.value


# --- resolve ------------------------------------------------------------------


def services(*pairs: tuple[str, str]) -> list[Service]:
    return [Service(id=i, spec=spec(name)) for i, name in pairs]


def test_resolve_by_exact_id_name_and_unique_prefix() -> None:
    objs = services(("abc111", "web"), ("abd222", "api"))
    assert resolve("service", "abc111", objs).id == "abc111"
    assert resolve("service", "api", objs).id == "abd222"
    assert resolve("service", "abc", objs).id == "abc111"
    assert resolve("service", "abd2", objs).id == "abd222"


def test_an_exact_id_beats_a_name_and_a_name_beats_a_prefix() -> None:
    objs = services(("web", "other"), ("x1", "web"), ("api999", "z"), ("y2", "api"))
    assert resolve("service", "web", objs).id == "web"
    assert resolve("service", "api", objs).id == "y2"


def test_an_ambiguous_prefix_is_invalid_argument() -> None:
    objs = services(("abc111", "web"), ("abd222", "api"))
    with pytest.raises(InvalidArgument, match="ID prefix 'ab' is ambiguous") as err:
        resolve("service", "ab", objs)
    assert "2 services" in str(err.value)


def test_an_ambiguous_name_is_invalid_argument_listing_the_ids() -> None:
    nodes = [Node(id=i, description=NodeDescription(hostname="edge")) for i in ("n2", "n1")]
    with pytest.raises(InvalidArgument, match=r"node name 'edge' is ambiguous \(n1, n2\)"):
        resolve("node", "edge", nodes)


def test_a_missing_object_is_not_found() -> None:
    with pytest.raises(NotFound, match=r"^service nope not found$"):
        resolve("service", "nope", services(("abc", "web")))
    with pytest.raises(NotFound, match=r"^task t9 not found$"):
        resolve("task", "t9", [Task(id="t1")])


def test_an_empty_reference_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="no service given"):
        resolve("service", "", services(("abc", "web")))


def test_tasks_resolve_by_id_and_prefix_only() -> None:
    tasks = [Task(id="aaa1", service_name="web"), Task(id="bbb2")]
    assert resolve("task", "bb", tasks).id == "bbb2"
    with pytest.raises(NotFound):
        resolve("task", "web", tasks)


# --- validation ------------------------------------------------------------------


def _with_container(**kw: Any) -> ServiceSpec:
    s = spec()
    return replace(s, task=replace(s.task, container=replace(s.task.container, **kw)))


def _with_task(**kw: Any) -> ServiceSpec:
    s = spec()
    return replace(s, task=replace(s.task, **kw))


BAD_SPECS = [
    (spec(name=""), "service name is required"),
    (spec(name="-web"), "invalid service name '-web'"),
    (spec(name="web-"), "invalid service name"),
    (spec(name="web_"), "invalid service name"),
    (spec(name="a" * 64), "invalid service name"),
    (spec(name="web.1"), "invalid service name"),
    (spec(replicas=-1), "replicas must be 0 or more, not -1"),
    (spec(replicas=100_001), "replicas must be at most 100000, not 100001"),
    (
        replace(spec(), mode=ServiceMode(kind="replicated-job", total_completions=-1)),
        "total completions (--replicas of a job) must be 0 or more, not -1",
    ),
    (
        replace(spec(), mode=ServiceMode(kind="replicated-job", max_concurrent=-2)),
        "max concurrent must be 0 or more, not -2",
    ),
    (spec(command=()), "a service needs something to run"),
    (_with_container(env=("NOEQUALS",)), "invalid environment entry 'NOEQUALS': use KEY=VALUE"),
    (_with_container(env=("=value",)), "invalid environment entry '=value'"),
    (_with_container(env=("A B=c",)), "invalid environment entry 'A B=c'"),
    (_with_container(env=("OK=1", "")), "invalid environment entry ''"),
    (_with_container(stop_grace_period=-1.0), "stop grace period must not be negative"),
    (
        replace(
            spec(),
            task=TaskSpec(
                container=ContainerSpec(command=("x",)), restart=RestartPolicy(delay=-1.0)
            ),
        ),
        "restart delay, window and max attempts must not be negative",
    ),
    (
        replace(
            spec(),
            task=TaskSpec(
                container=ContainerSpec(command=("x",)), restart=RestartPolicy(max_attempts=-1)
            ),
        ),
        "must not be negative",
    ),
    (_with_task(placement=Placement(max_replicas=-1)), "max replicas per node must be 0"),
    (_with_task(placement=Placement(constraints=("node.role ~ x",))), "constraint"),
    (
        _with_task(resources=ResourceRequirements(reservations=Resources(memory_bytes=-1))),
        "resource reservations and limits must not be negative",
    ),
    (
        _with_task(
            resources=ResourceRequirements(
                limits=Resources(nano_cpus=10**9), reservations=Resources(nano_cpus=2 * 10**9)
            )
        ),
        "the CPU reservation is larger than the CPU limit",
    ),
    (
        _with_task(
            resources=ResourceRequirements(
                limits=Resources(memory_bytes=1), reservations=Resources(memory_bytes=2)
            )
        ),
        "the memory reservation is larger than the memory limit",
    ),
    (
        _with_task(ports=(PortConfig(80, 8080), PortConfig(81, 8080))),
        "port 8080/tcp is published twice",
    ),
]


@pytest.mark.parametrize(("bad", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_specs_are_refused_on_create(bad: ServiceSpec, message: str) -> None:
    store = MemoryStore()
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        Handlers().handle(store, "service.create", {"spec": bad})
    assert store.count("service") == 0


@pytest.mark.parametrize(
    "good",
    [
        spec(name="a"),
        spec(name="a" * 63),
        spec(name="Web-2"),
        spec(replicas=0),
        spec(replicas=100_000),
        replace(spec(command=()), task=TaskSpec(container=ContainerSpec(image="nginx"))),
        _with_container(env=("A=", "B=c=d", "PATH=/bin:/usr/bin")),
        _with_task(ports=(PortConfig(80, 8080), PortConfig(80, 8080, protocol="udp"))),
        _with_task(resources=ResourceRequirements(reservations=Resources(nano_cpus=10**9))),
    ],
)
def test_good_specs_pass(good: ServiceSpec) -> None:
    validate_service_spec(good)


@pytest.mark.parametrize("field", ["replicas", "name", "stop_grace_period"])
def test_a_spec_field_of_the_wrong_type_is_refused_where_the_request_is_decoded(
    field: str,
) -> None:
    s = spec()
    if field == "replicas":
        s = replace(s, mode=ServiceMode(replicas="3"))  # type: ignore[arg-type]
    elif field == "name":
        s = replace(s, annotations=Annotations(name=5))  # type: ignore[arg-type]
    else:
        s = _with_container(stop_grace_period="10s")
    # The control server answers a CodecError with invalid_argument; no handler sees it.
    with pytest.raises(CodecError, match=f"field ServiceSpec.*{field} must be"):
        unpackb(packb({"spec": s}))


# --- service.create ------------------------------------------------------------------


def test_service_create_returns_a_write_that_creates_the_service() -> None:
    store = MemoryStore()
    outcome = Handlers().handle(store, "service.create", {"spec": spec()})
    assert isinstance(outcome, Write)
    assert store.count("service") == 0  # nothing is written by the handler itself
    changes = outcome.build(store)
    assert [c.op for c in changes] == ["create"]
    batch = apply(store, changes)
    reply = outcome.result(batch)
    created = store.get_service(reply["id"])
    assert created is not None
    assert created.spec == spec()
    assert created.spec_version == 1
    assert len(reply["id"]) == 25


def test_service_create_refuses_a_taken_name_at_build_time() -> None:
    store = MemoryStore()
    outcome = Handlers().handle(store, "service.create", {"spec": spec()})
    assert isinstance(outcome, Write)
    # Someone else creates "web" between the request and the write.
    apply(store, [Change("create", Service(id="other", spec=spec()))])
    with pytest.raises(AlreadyExists, match="a service named 'web' already exists"):
        outcome.build(store)


# --- service.update ------------------------------------------------------------------


@pytest.fixture
def one_service() -> tuple[MemoryStore, Service]:
    store = MemoryStore()
    write(store, "service.create", {"spec": spec()})
    found = store.service_by_name("web")
    assert found is not None
    return store, found


def _update(store: MemoryStore, body: dict[str, Any]) -> list[Change]:
    outcome = Handlers().handle(store, "service.update", body)
    assert isinstance(outcome, Write)
    return outcome.build(store)


def test_update_with_a_stale_version_is_failed_precondition(one_service: Any) -> None:
    store, svc = one_service
    apply(
        store, _update(store, {"ref": "web", "version": svc.meta.version, "spec": spec(replicas=2)})
    )
    with pytest.raises(FailedPrecondition, match="changed since it was read"):
        _update(store, {"ref": "web", "version": svc.meta.version, "spec": spec(replicas=3)})


def test_update_with_an_unchanged_spec_changes_nothing(one_service: Any) -> None:
    store, svc = one_service
    assert _update(store, {"ref": svc.id, "version": svc.meta.version, "spec": spec()}) == []


def test_a_task_spec_change_bumps_spec_version_and_keeps_the_previous_spec(
    one_service: Any,
) -> None:
    store, svc = one_service
    new = spec(command=("serve", "--v2"))
    apply(store, _update(store, {"ref": "web", "version": svc.meta.version, "spec": new}))
    updated = store.get_service(svc.id)
    assert updated is not None
    assert (updated.spec, updated.spec_version, updated.previous_spec) == (new, 2, spec())


def test_a_scale_change_keeps_spec_version(one_service: Any) -> None:
    store, svc = one_service
    apply(
        store, _update(store, {"ref": "web", "version": svc.meta.version, "spec": spec(replicas=4)})
    )
    updated = store.get_service(svc.id)
    assert updated is not None
    assert (updated.spec.mode.replicas, updated.spec_version) == (4, 1)
    assert updated.previous_spec == spec()


def test_update_refuses_a_rename(one_service: Any) -> None:
    store, svc = one_service
    with pytest.raises(InvalidArgument, match="renaming"):
        _update(store, {"ref": "web", "version": svc.meta.version, "spec": spec(name="api")})


def test_update_of_a_missing_service_is_not_found(one_service: Any) -> None:
    store, _ = one_service
    with pytest.raises(NotFound, match="service api not found"):
        _update(store, {"ref": "api", "version": 1, "spec": spec(name="api")})


# --- service.remove, reads ------------------------------------------------------------


def test_service_remove_deletes_and_returns_the_id(one_service: Any) -> None:
    store, svc = one_service
    assert write(store, "service.remove", {"ref": "web"}) == {"id": svc.id}
    assert store.count("service") == 0
    with pytest.raises(NotFound):
        Handlers().handle(store, "service.remove", {"ref": "web"})


def test_service_list_counts_running_tasks(one_service: Any) -> None:
    store, svc = one_service
    running = TaskStatus(state=TaskState.RUNNING)
    apply(
        store,
        [
            Change("create", Task(id="t1", service_id=svc.id, slot=1, status=running)),
            Change("create", Task(id="t2", service_id=svc.id, slot=2)),
            Change(
                "create",
                Task(
                    id="t3",
                    service_id=svc.id,
                    slot=3,
                    status=running,
                    desired_state=TaskState.SHUTDOWN,
                ),
            ),
        ],
    )
    value = read(store, "service.list", {})
    assert [s.id for s in value["services"]] == [svc.id]
    assert value["running"] == {svc.id: 1}
    inspect = read(store, "service.inspect", {"ref": svc.id[:6]})
    assert inspect["service"] == store.get_service(svc.id)
    assert inspect["running"] == 1
    # A service may have 100,000 tasks: inspect sends a summary, task.list the tasks.
    assert "tasks" not in inspect
    assert inspect["errors"] == [] and inspect["failing_slots"] == 0


def _attempt(
    tid: str,
    slot: int,
    created: float,
    state: TaskState,
    err: str = "",
    desired: TaskState = TaskState.SHUTDOWN,
) -> Task:
    return Task(
        id=tid,
        service_id="s1",
        slot=slot,
        desired_state=desired,
        meta=Meta(created_at=created),
        status=TaskStatus(state=state, err=err, timestamp=created + 0.5),
    )


def test_service_inspect_shows_the_latest_error_of_each_failing_slot() -> None:
    tasks = [
        # Slot 1 is rejected over and over; its replacement waits for the restart delay.
        _attempt("a1", 1, 1.0, TaskState.REJECTED, "no command to run"),
        _attempt("a2", 1, 2.0, TaskState.REJECTED, "no command to run: again"),
        _attempt("a3", 1, 3.0, TaskState.READY, desired=TaskState.RUNNING),
        # Slot 2 failed once and runs now: not failing.
        _attempt("b1", 2, 1.0, TaskState.FAILED, "task: non-zero exit (1)"),
        _attempt("b2", 2, 2.0, TaskState.RUNNING, desired=TaskState.RUNNING),
        # Slot 3 completed without an error: nothing to show.
        _attempt("c1", 3, 1.0, TaskState.COMPLETE),
        # Slot 4 failed last; an older failure is not the latest.
        _attempt("d1", 4, 1.0, TaskState.FAILED, "old"),
        _attempt("d2", 4, 2.0, TaskState.FAILED, "task: non-zero exit (7)"),
    ]
    errors = slot_errors(tasks)
    assert [(e["slot"], e["task"], e["state"], e["error"]) for e in errors] == [
        (1, "a2", "REJECTED", "no command to run: again"),
        (4, "d2", "FAILED", "task: non-zero exit (7)"),
    ]
    assert errors[0]["timestamp"] == 2.5


def test_service_inspect_caps_the_errors_it_sends(one_service: Any) -> None:
    store, svc = one_service
    rejected = TaskStatus(state=TaskState.REJECTED, err="no command to run")
    apply(
        store,
        [
            Change("create", Task(id=f"t{i}", service_id=svc.id, slot=i, status=rejected))
            for i in range(1, 31)
        ],
    )
    inspect = read(store, "service.inspect", {"ref": "web"})
    assert inspect["failing_slots"] == 30
    assert [e["slot"] for e in inspect["errors"]] == list(range(1, 11))


def test_task_list_hides_tasks_no_longer_wanted_unless_all(one_service: Any) -> None:
    store, svc = one_service
    apply(
        store,
        [
            Change("create", Task(id="t1", service_id=svc.id, slot=1, service_name="web")),
            Change(
                "create",
                Task(
                    id="t2",
                    service_id=svc.id,
                    slot=1,
                    service_name="web",
                    desired_state=TaskState.SHUTDOWN,
                ),
            ),
            Change("create", Task(id="t3", service_id="other", slot=1, node_id="n1")),
        ],
    )
    assert [t.id for t in read(store, "task.list", {})["tasks"]] == ["t3", "t1"]
    assert {t.id for t in read(store, "task.list", {"all": True})["tasks"]} == {"t1", "t2", "t3"}
    assert [t.id for t in read(store, "task.list", {"service": "web"})["tasks"]] == ["t1"]


def test_node_update_checks_the_version() -> None:
    store = MemoryStore()
    apply(store, [Change("create", Node(id="n1", description=NodeDescription(hostname="h1")))])
    drained = NodeSpec(availability=NodeAvailability.DRAIN)
    outcome = Handlers().handle(store, "node.update", {"ref": "h1", "version": 1, "spec": drained})
    assert isinstance(outcome, Write)
    apply(store, outcome.build(store))
    assert store.get_node("n1").spec == drained  # type: ignore[union-attr]
    with pytest.raises(FailedPrecondition):
        outcome.build(store)


def test_cluster_inspect_without_a_cluster_is_not_found() -> None:
    with pytest.raises(NotFound, match="no cluster"):
        Handlers().handle(MemoryStore(), "cluster.inspect", {"ref": "default"})
    store = MemoryStore()
    apply(store, [Change("create", Cluster(id="c1"))])
    assert read(store, "cluster.inspect", {"ref": "default"})["cluster"].id == "c1"


# --- bad requests -------------------------------------------------------------------


def test_an_unknown_method_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"unknown control method 'service\.explode'"):
        Handlers().handle(MemoryStore(), "service.explode", {})


@pytest.mark.parametrize("body", [None, [], "spec", 3])
def test_a_body_that_is_not_a_map_is_invalid_argument(body: Any) -> None:
    with pytest.raises(InvalidArgument, match="request body must be a map"):
        Handlers().handle(MemoryStore(), "service.list", body)


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("service.create", {}, "spec"),
        ("service.create", {"spec": {"name": "web"}}, "spec"),
        ("service.inspect", {"ref": 5}, "ref"),
        ("service.update", {"ref": "web", "version": "3", "spec": spec()}, "version"),
        ("service.update", {"ref": "web", "version": 1, "spec": NodeSpec()}, "spec"),
        ("service.remove", {"ref": None}, "ref"),
        ("task.inspect", {"ref": ["t1"]}, "ref"),
        ("node.update", {"ref": "n1", "version": 1, "spec": spec()}, "spec"),
    ],
)
def test_request_fields_of_the_wrong_type_are_invalid_argument(
    one_service: Any, method: str, body: dict[str, Any], field: str
) -> None:
    store, _ = one_service
    with pytest.raises(InvalidArgument, match=f"request field '{field}' must be a"):
        Handlers().handle(store, method, body)


def test_paginate_splits_the_one_long_list_and_merge_joins_it() -> None:
    reply = {"ok": True, "result": {"tasks": list(range(5)), "nodes": {"a": "b"}}}
    pages = paginate(reply, 2)
    assert [p["result"] for p in pages] == [
        {"tasks": [0, 1], "nodes": {"a": "b"}},
        {"tasks": [2, 3]},
        {"tasks": [4]},
    ]
    assert merge_pages([p["result"] for p in pages]) == reply["result"]
    # Short lists, errors and replies with two long lists go whole.
    assert paginate(reply, 10) == [reply]
    error = {"ok": False, "error": {"code": "internal", "message": "x"}}
    assert paginate(error, 1) == [error]
    two = {"ok": True, "result": {"a": [1, 2, 3], "b": [1, 2, 3]}}
    assert paginate(two, 1) == [two]
