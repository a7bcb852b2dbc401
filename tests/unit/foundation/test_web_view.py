"""What the web view shows: the store turned into the page's JSON."""

from __future__ import annotations

import json

import pytest

from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    ManagerStatus,
    Node,
    NodeCertificate,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
    UpdateStatus,
)
from pyswarmkit.api.states import (
    NodeAvailability,
    NodeRole,
    NodeState,
    Reachability,
    TaskState,
    UpdateState,
)
from pyswarmkit.web.view import MAX_TASKS_PER_NODE, is_loopback, listen_address, snapshot

pytestmark = pytest.mark.unit

SECRET_ENV = "PASSWORD=hunter2"
SECRET_ARG = "SWMTKN-1-not-for-the-page"
SECRET_PEM = b"-----BEGIN PRIVATE KEY----- not for the page"


def node(node_id: str, name: str, *, leader: bool = False, worker: bool = False) -> Node:
    return Node(
        id=node_id,
        spec=NodeSpec(
            availability=NodeAvailability.DRAIN if worker else NodeAvailability.ACTIVE,
            desired_role=NodeRole.WORKER if worker else NodeRole.MANAGER,
        ),
        description=NodeDescription(hostname=name),
        status=NodeStatus(state=NodeState.DOWN if worker else NodeState.READY, addr="10.0.0.1"),
        role=NodeRole.WORKER if worker else NodeRole.MANAGER,
        manager_status=None
        if worker
        else ManagerStatus(raft_id=1, leader=leader, reachability=Reachability.REACHABLE),
        certificate=NodeCertificate(curve_key=b"k" * 32, pem=SECRET_PEM),
    )


def service(
    service_id: str, name: str, mode: ServiceMode, update: UpdateStatus | None = None
) -> Service:
    container = ContainerSpec(command=("serve",), args=(SECRET_ARG,), env=(SECRET_ENV,))
    return Service(
        id=service_id,
        spec=ServiceSpec(
            annotations=Annotations(name=name), task=TaskSpec(container=container), mode=mode
        ),
        update_status=update,
    )


def task(
    task_id: str,
    svc: Service,
    slot: int,
    node_id: str,
    state: TaskState,
    desired: TaskState = TaskState.RUNNING,
    err: str = "",
) -> Task:
    return Task(
        id=task_id,
        service_id=svc.id,
        service_name=svc.name,
        slot=slot,
        node_id=node_id,
        spec=svc.spec.task,
        desired_state=desired,
        status=TaskStatus(state=state, err=err),
    )


WEB = service(
    "s1",
    "web",
    ServiceMode(replicas=3),
    UpdateStatus(state=UpdateState.PAUSED, message="update paused: task failed"),
)
BATCH = service("s2", "batch", ServiceMode(kind="replicated-job", total_completions=4))
NODES = [node("n2", "worker-1", worker=True), node("n1", "manager-1", leader=True)]
TASKS = [
    task("t1", WEB, 1, "n1", TaskState.RUNNING),
    task("t2", WEB, 2, "n1", TaskState.STARTING),
    # Finished history: not shown.
    task("t0", WEB, 1, "n1", TaskState.FAILED, TaskState.SHUTDOWN, err="exit 1"),
    task("t3", WEB, 3, "", TaskState.PENDING),
    task("t4", BATCH, 1, "n2", TaskState.COMPLETE, TaskState.COMPLETE),
    task("t5", BATCH, 2, "n2", TaskState.RUNNING, TaskState.COMPLETE),
]


def test_nodes_show_status_availability_role_and_manager_status() -> None:
    page = snapshot(42, NODES, [WEB, BATCH], TASKS)
    assert page["index"] == 42
    manager, worker = page["nodes"]
    assert {k: manager[k] for k in ("id", "name", "role", "status", "availability")} == {
        "id": "n1",
        "name": "manager-1",
        "role": "manager",
        "status": "ready",
        "availability": "active",
    }
    assert manager["manager_status"] == "leader"
    assert (worker["name"], worker["status"], worker["availability"]) == (
        "worker-1",
        "down",
        "drain",
    )
    assert worker["manager_status"] == ""


def test_services_show_replicas_completions_and_update_status() -> None:
    page = snapshot(1, NODES, [WEB, BATCH], TASKS)
    batch, web = page["services"]
    assert (web["name"], web["mode"], web["replicas"], web["completions"]) == (
        "web",
        "replicated",
        "1/3",
        "",
    )
    assert (web["update"], web["update_message"]) == ("paused", "update paused: task failed")
    # A job: running/desired as `service ls`, and completed/total.
    assert (batch["mode"], batch["replicas"], batch["completions"]) == (
        "replicated job",
        "0/4",
        "1/4",
    )
    assert batch["update"] == ""


def test_tasks_are_listed_per_node_without_finished_history() -> None:
    page = snapshot(1, NODES, [WEB, BATCH], TASKS)
    manager, worker = page["nodes"]
    assert [(t["name"], t["state"]) for t in manager["tasks"]] == [
        ("web.1", "running"),
        ("web.2", "starting"),
    ]
    # Still running though its desired state is past it: shown, with that state.
    assert [(t["name"], t["desired"]) for t in worker["tasks"]] == [("batch.2", "complete")]
    assert [t["name"] for t in page["unassigned"]] == ["web.3"]


def test_tasks_are_named_after_their_service_as_it_is_now() -> None:
    old_name = task("t9", service("s1", "old-web", ServiceMode()), 1, "n1", TaskState.RUNNING)
    manager = snapshot(1, NODES[1:], [WEB], [old_name])["nodes"][0]
    assert [t["name"] for t in manager["tasks"]] == ["web.1"]


def test_a_busy_node_shows_the_first_tasks_and_how_many_more() -> None:
    many = [task(f"t{i:06}", WEB, i, "n1", TaskState.RUNNING) for i in range(1, 151)]
    manager = snapshot(1, NODES[1:], [WEB], many)["nodes"][0]
    assert len(manager["tasks"]) == MAX_TASKS_PER_NODE
    assert manager["more_tasks"] == 150 - MAX_TASKS_PER_NODE
    waiting = [task(f"t{i:06}", WEB, i, "", TaskState.PENDING) for i in range(1, 121)]
    page = snapshot(1, NODES[1:], [WEB], waiting)
    assert (len(page["unassigned"]), page["more_unassigned"]) == (MAX_TASKS_PER_NODE, 20)


def test_nothing_secret_reaches_the_page() -> None:
    text = json.dumps(snapshot(1, NODES, [WEB, BATCH], TASKS))
    for secret in (SECRET_ENV, SECRET_ARG, SECRET_PEM.decode(), "k" * 32):
        assert secret not in text


def test_the_same_store_gives_the_same_page() -> None:
    a = snapshot(7, NODES, [WEB, BATCH], TASKS)
    b = snapshot(7, list(reversed(NODES)), [BATCH, WEB], list(reversed(TASKS)))
    assert a == b


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("8080", "127.0.0.1:8080"),
        (":8080", "127.0.0.1:8080"),
        ("0.0.0.0:8080", "0.0.0.0:8080"),
        ("[::1]:8080", "[::1]:8080"),
        ("web.example:80", "web.example:80"),
    ],
)
def test_a_bare_port_means_the_loopback(value: str, address: str) -> None:
    assert listen_address(value) == address


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "localhost", "::1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "::", "*", "example.com"))
