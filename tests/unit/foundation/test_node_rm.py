"""Removing a node: the control API's rules, what becomes of the node's tasks,
what the wire tells the removed node, and how `node ls` shows managers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from typer.testing import CliRunner

from pyswarmkit import cli, display
from pyswarmkit.actors.agent import AgentActor
from pyswarmkit.actors.messages import Deliver
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    EngineDescription,
    ManagerStatus,
    Node,
    NodeCertificate,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Platform,
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
from pyswarmkit.api.protocol import Error
from pyswarmkit.api.states import NodeRole, NodeState, Reachability, TaskState
from pyswarmkit.ca import authz
from pyswarmkit.control.handlers import ORPHANED_MESSAGE, Handlers, Write
from pyswarmkit.orchestrator.replicated import ReplicatedOrchestrator
from pyswarmkit.store import Change, EventBatch, MemoryStore
from pyswarmkit.transport.bus import Envelope, LocalBus

pytestmark = pytest.mark.unit

WALL = 1_700_000_000.0
SID = "svc000000000000000000000a"
KEY = bytes(range(32))


def node(
    node_id: str,
    name: str,
    state: NodeState = NodeState.READY,
    role: NodeRole = NodeRole.WORKER,
) -> Node:
    status = ManagerStatus(leader=True, reachability=Reachability.REACHABLE)
    return Node(
        id=node_id,
        spec=NodeSpec(desired_role=role),
        description=NodeDescription(hostname=name),
        status=NodeStatus(state=state),
        role=role,
        manager_status=status if role == NodeRole.MANAGER else None,
    )


class Swarm:
    """A store, the control handlers and the orchestrator, driven in one thread."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        counter = itertools.count(1)
        self.orch = ReplicatedOrchestrator(id_gen=lambda: f"t{next(counter):024d}")
        self.handlers = Handlers(wall=lambda: WALL)

    def write(self, changes: list[Change]) -> EventBatch:
        batch = self.store.apply(changes, self.store.index + 1, WALL)
        self.orch.observe(batch)
        return batch

    def settle(self, now: float = 0.0) -> None:
        for _ in range(10):
            changes = self.orch.step(self.store, now, WALL)
            if not changes:
                return
            self.write(changes)
        raise AssertionError("the orchestrator keeps changing things")

    def call(self, method: str, body: dict[str, Any]) -> Any:
        """As the control actor: handle, build against the newest state, commit."""
        outcome = self.handlers.handle(self.store, method, body)
        assert isinstance(outcome, Write)
        changes = outcome.build(self.store)
        return outcome.result(self.write(changes) if changes else None)

    def run_service(self, replicas: int, on: str) -> None:
        """A service whose tasks all run on node ``on``."""
        spec = ServiceSpec(
            annotations=Annotations(name="web"),
            task=TaskSpec(
                container=ContainerSpec(command=("serve",)), restart=RestartPolicy(delay=0.0)
            ),
            mode=ServiceMode(replicas=replicas),
        )
        self.write([Change("create", Service(id=SID, spec=spec))])
        self.settle()
        running = TaskStatus(timestamp=WALL, state=TaskState.RUNNING)
        self.write(
            [Change("update", replace(t, node_id=on, status=running)) for t in self.store.tasks()]
        )

    def live(self) -> list[Task]:
        return [t for t in self.store.tasks() if t.desired_state <= TaskState.RUNNING]


@pytest.fixture
def swarm() -> Swarm:
    s = Swarm()
    s.write(
        [
            Change("create", node("m1", "manager", role=NodeRole.MANAGER)),
            Change("create", node("w1", "worker-1")),
            Change("create", node("w2", "worker-2", NodeState.DOWN)),
        ]
    )
    return s


# --- the rules ------------------------------------------------------------------


def test_an_unknown_node_is_not_found(swarm: Swarm) -> None:
    with pytest.raises(NotFound, match=r"^node nope not found$"):
        swarm.call("node.remove", {"ref": "nope", "force": True})


def test_draining_an_unknown_node_is_not_found(swarm: Swarm) -> None:
    body = {"ref": "nope", "version": 1, "spec": NodeSpec()}
    with pytest.raises(NotFound, match=r"^node nope not found$"):
        swarm.call("node.update", body)


def test_a_live_node_is_refused_without_force(swarm: Swarm) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        swarm.call("node.remove", {"ref": "worker-1"})
    assert str(refused.value) == (
        "node worker-1 is not down and can't be removed: stop its swarmd first, or use --force"
    )
    assert swarm.store.get_node("w1") is not None


@pytest.mark.parametrize("state", [NodeState.UNKNOWN, NodeState.DISCONNECTED])
def test_a_node_not_known_to_be_down_is_refused_without_force(
    swarm: Swarm, state: NodeState
) -> None:
    current = swarm.store.get_node("w1")
    assert current is not None
    swarm.write([Change("update", replace(current, status=NodeStatus(state=state)))])
    with pytest.raises(FailedPrecondition, match="is not down"):
        swarm.call("node.remove", {"ref": "w1"})


def test_a_down_node_is_removed_and_force_removes_a_live_one(swarm: Swarm) -> None:
    assert swarm.call("node.remove", {"ref": "worker-2"}) == {"id": "w2"}
    assert swarm.call("node.remove", {"ref": "w1", "force": True}) == {"id": "w1"}
    assert [n.id for n in swarm.store.nodes()] == ["m1"]


def test_the_last_manager_is_refused_even_with_force(swarm: Swarm) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        swarm.call("node.remove", {"ref": "manager", "force": True})
    assert str(refused.value) == (
        "attempting to remove the last manager of the swarm (node manager)"
    )
    assert swarm.store.get_node("m1") is not None


def test_a_down_manager_among_several_is_removed_but_not_the_leader(swarm: Swarm) -> None:
    """Its Raft member goes with it (the leader removes members without a node)."""
    follower = node("m2", "manager-2", NodeState.DOWN, NodeRole.MANAGER)
    follower = replace(follower, manager_status=ManagerStatus(leader=False))
    leading = node("m3", "manager-3", NodeState.READY, NodeRole.MANAGER)
    swarm.write([Change("create", follower), Change("create", leading)])
    assert swarm.call("node.remove", {"ref": "m2"}) == {"id": "m2"}
    with pytest.raises(FailedPrecondition, match=r"^node manager-3 leads the swarm: demote it"):
        swarm.call("node.remove", {"ref": "m3", "force": True})


def test_the_last_manager_cannot_be_demoted(swarm: Swarm) -> None:
    m1 = swarm.store.get_node("m1")
    assert m1 is not None
    spec = replace(m1.spec, desired_role=NodeRole.WORKER)
    with pytest.raises(FailedPrecondition, match=r"^attempting to demote the last manager"):
        swarm.call("node.update", {"ref": "m1", "version": m1.meta.version, "spec": spec})


def test_a_manager_still_being_demoted_cannot_be_promoted_yet(swarm: Swarm) -> None:
    """Demoted, it keeps its manager certificate until it restarts as a
    worker; its Raft member is removed meanwhile. Promoted back before then, it
    would never restart, and never rejoin the managers."""
    demoted = replace(
        node("m9", "manager-9", NodeState.READY, NodeRole.MANAGER),
        spec=NodeSpec(desired_role=NodeRole.WORKER),
        role=NodeRole.WORKER,
        certificate=NodeCertificate(role=NodeRole.MANAGER),
    )
    swarm.write([Change("create", demoted)])
    m9 = swarm.store.get_node("m9")
    assert m9 is not None
    wanted = NodeSpec(desired_role=NodeRole.MANAGER)
    promote = {"ref": "m9", "version": m9.meta.version, "spec": wanted}
    with pytest.raises(FailedPrecondition, match=r"^node manager-9 is still being demoted"):
        swarm.call("node.update", promote)
    # Restarted as a worker (a worker's certificate): it may be promoted again.
    swarm.write([Change("update", replace(m9, certificate=NodeCertificate(role=NodeRole.WORKER)))])
    m9 = swarm.store.get_node("m9")
    assert m9 is not None
    swarm.call("node.update", {**promote, "version": m9.meta.version})
    m9 = swarm.store.get_node("m9")
    assert m9 is not None and m9.spec.desired_role == NodeRole.MANAGER


def test_a_node_removed_twice_is_not_found_the_second_time(swarm: Swarm) -> None:
    swarm.call("node.remove", {"ref": "w2"})
    with pytest.raises(NotFound, match=r"^node w2 not found$"):
        swarm.call("node.remove", {"ref": "w2"})


def test_an_ambiguous_name_removes_nothing(swarm: Swarm) -> None:
    swarm.write([Change("create", node("w3", "worker-2", NodeState.DOWN))])
    with pytest.raises(InvalidArgument, match="ambiguous"):
        swarm.call("node.remove", {"ref": "worker-2"})
    assert len(swarm.store.nodes()) == 4


def test_force_must_be_a_bool(swarm: Swarm) -> None:
    with pytest.raises(InvalidArgument, match="'force' must be a bool"):
        swarm.call("node.remove", {"ref": "w2", "force": "yes"})


# --- the node's tasks -------------------------------------------------------------


def test_a_removed_nodes_tasks_are_orphaned_and_replaced_elsewhere(swarm: Swarm) -> None:
    swarm.run_service(3, on="w1")
    running = {t.id for t in swarm.store.tasks()}
    # A task of before that finished there keeps its own ending.
    done = TaskStatus(timestamp=WALL - 5, state=TaskState.COMPLETE)
    history = Task(
        id="old",
        service_id=SID,
        slot=1,
        node_id="w1",
        desired_state=TaskState.SHUTDOWN,
        status=done,
    )
    swarm.write([Change("create", history)])
    history = swarm.store.get_task("old")

    swarm.call("node.remove", {"ref": "w1", "force": True})
    for tid in running:
        t = swarm.store.get_task(tid)
        assert t is not None
        assert (t.status.state, t.status.message, t.status.timestamp) == (
            TaskState.ORPHANED,
            ORPHANED_MESSAGE,
            WALL,
        )
    assert swarm.store.get_task("old") == history

    swarm.settle()
    live = swarm.live()
    assert sorted(t.slot for t in live) == [1, 2, 3]
    assert not running & {t.id for t in live}, "a task of the removed node is still wanted"
    assert all(t.node_id == "" for t in live), "a live task stays on the removed node"


# --- the wire ---------------------------------------------------------------------


def test_a_removed_nodes_key_is_told_so() -> None:
    with pytest.raises(PermissionDenied) as refused:
        authz.authorize(None, KEY, "dispatcher", "heartbeat", "w1", WALL, removed=True)
    assert str(refused.value) == "this node was removed from the swarm"
    # Any other unknown key hears nothing of removal.
    with pytest.raises(PermissionDenied, match="unknown node key"):
        authz.authorize(None, KEY, "dispatcher", "heartbeat", "w1", WALL)
    # Joining anew (with a token) is still open to it.
    assert authz.authorize(None, KEY, "ca", "join", "", WALL, removed=True).startswith("curve:")


def _agent(stopped: list[str]) -> AgentActor:
    # Driven by hand, never started: handle() is what the actor's thread calls.
    return AgentActor(Registry("w1"), LocalBus(), "m1", NodeDescription(), stopped.append)


def _refusal(message: str, source: str = "m1") -> Deliver:
    body = Error("permission_denied", message, "heartbeat", "s1")
    return Deliver(Envelope(source, "w1", "agent", body), "127.0.0.1:1")


def test_the_agent_stops_its_node_once_when_told_it_was_removed() -> None:
    stopped: list[str] = []
    agent = _agent(stopped)
    agent.handle(_refusal("unknown node key abc: only join is allowed without a certificate"))
    assert stopped == []
    agent.handle(_refusal(authz.REMOVED, source="someone-else"))
    assert stopped == [], "only the node's manager can say it"
    agent.handle(_refusal(authz.REMOVED))
    agent.handle(_refusal(authz.REMOVED))
    assert stopped == ["this node was removed from the swarm"]


# --- node ls ------------------------------------------------------------------------


def test_manager_status_as_swarmctl_prints_it() -> None:
    leader = node("m1", "a", role=NodeRole.MANAGER)
    assert display.manager_status(leader) == "REACHABLE *"
    other = replace(leader, manager_status=ManagerStatus(reachability=Reachability.UNREACHABLE))
    assert display.manager_status(other) == "UNREACHABLE"
    # A manager whose status is not known yet.
    assert display.manager_status(replace(leader, manager_status=None)) == "UNKNOWN"
    assert display.manager_status(node("w1", "b")) == ""


def test_node_inspect_shows_description_status_resources_and_certificate() -> None:
    base = node("m1", "node-1", role=NodeRole.MANAGER)
    n = replace(
        base,
        spec=replace(base.spec, annotations=Annotations(labels={"zone": "a", "disk": "ssd"})),
        description=NodeDescription(
            hostname="node-1",
            platform=Platform(os="linux", architecture="x86_64"),
            resources=Resources(nano_cpus=2_000_000_000, memory_bytes=2**31, generic={"gpu": 2}),
            engine=EngineDescription(engine_version="process", labels={"os": "linux"}),
        ),
        status=NodeStatus(state=NodeState.READY, addr="127.0.0.1"),
        manager_status=ManagerStatus(
            leader=True, reachability=Reachability.REACHABLE, addr="127.0.0.1:4242"
        ),
        certificate=NodeCertificate(not_after=WALL + 3 * 86400),
    )
    text = display.node_summary(n, 3, WALL)
    assert text.splitlines() == [
        "ID                  : m1",
        "Hostname            : node-1",
        "Node Labels         : disk=ssd zone=a",
        "Role                : MANAGER",
        "Status:",
        "  State             : READY",
        "  Availability      : ACTIVE",
        "  Address           : 127.0.0.1",
        "Manager Status:",
        "  Address           : 127.0.0.1:4242",
        "  Raft Status       : REACHABLE",
        "  Leader            : yes",
        "Certificate Expiry  : 2023-11-17T22:13:20Z (in 3 days)",
        "Tasks               : 3",
        "Platform:",
        "  Operating System  : linux",
        "  Architecture      : x86_64",
        "Resources:",
        "  CPUs              : 2",
        "  Memory            : 2GiB",
        "  Generic Resources:",
        "    gpu             : 2",
        "Engine Version      : process",
        "Engine Labels       : os=linux",
    ]
    expired = replace(n, certificate=NodeCertificate(not_after=WALL - 1))
    assert "(expired)" in display.node_summary(expired, 0, WALL)


# --- swarmctl node rm ------------------------------------------------------------------


def test_swarmctl_node_rm_goes_on_after_a_failure_and_removes_a_node_named_twice_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []

    def call(_: object, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        assert method == "node.remove" and body is not None
        calls.append(body)
        if body["ref"] == "nope":
            raise NotFound("node nope not found")
        return {"id": f"id-{body['ref']}"}

    monkeypatch.setattr(cli.CtlState, "call", call)
    result = CliRunner().invoke(cli.swarmctl_app, ["node", "rm", "-f", "a", "nope", "a", "b"])
    assert result.exit_code == 1
    assert result.stdout == "id-a\nid-b\n"
    assert result.stderr == "swarmctl: error: node nope not found\n"
    assert calls == [{"ref": r, "force": True} for r in ("a", "nope", "b")]


def test_a_placement_committed_after_its_node_was_removed_does_not_stay_there() -> None:
    from pyswarmkit.scheduler.core import Scheduler

    s = Swarm()
    s.write(
        [
            Change("create", node("m1", "manager", role=NodeRole.MANAGER, state=NodeState.DOWN)),
            Change("create", node("w1", "worker-1")),
        ]
    )
    sched = Scheduler()
    sched.reset(s.store.nodes(), s.store.tasks(), 0.0)
    spec = ServiceSpec(
        annotations=Annotations(name="web"),
        task=TaskSpec(container=ContainerSpec(command=("serve",))),
        mode=ServiceMode(replicas=1),
    )
    sched.observe(s.write([Change("create", Service(id=SID, spec=spec))]), 0.0)
    for _ in range(3):
        changes = s.orch.step(s.store, 0.0, WALL)
        if changes:
            sched.observe(s.write(changes), 0.0)
    decided = sched.schedule(100.0, WALL)
    assert [c.obj.node_id for c in decided] == ["w1"]
    # node rm --force commits first, the scheduler's placement after it.
    s.call("node.remove", {"ref": "w1", "force": True})
    s.settle(150.0)
    s.write(decided)
    s.settle(200.0)
    live_on_w1 = [
        t for t in s.store.tasks() if t.node_id == "w1" and t.desired_state <= TaskState.RUNNING
    ]
    assert live_on_w1 == []
    assert any(t.node_id != "w1" and t.desired_state == TaskState.RUNNING for t in s.store.tasks())


def test_node_replies_mark_the_leader_this_manager_knows_now() -> None:
    """The leader flag in the store is written by a leader; with no leader
    (no quorum) it goes stale. `node ls` shows who leads now, as this
    manager's Raft member knows it: nobody, while an election is on."""
    store = MemoryStore()
    old = node("m1", "node-1", role=NodeRole.MANAGER)
    other = replace(
        node("m2", "node-2", role=NodeRole.MANAGER), manager_status=ManagerStatus(leader=False)
    )
    store.apply([Change("create", old), Change("create", other)], 1, WALL)
    live: list[str | None] = [""]
    handlers = Handlers(wall=lambda: WALL, leader=lambda: live[0])

    def flags() -> dict[str, bool]:
        reply = handlers.handle(store, "node.list", {})
        return {n.name: n.manager_status.leader for n in reply.value["nodes"]}

    assert flags() == {"node-1": False, "node-2": False}
    live[0] = "m2"
    assert flags() == {"node-1": False, "node-2": True}
    inspected = handlers.handle(store, "node.inspect", {"ref": "node-2"}).value["node"]
    assert inspected.manager_status.leader
    # Without a leader, the reachability this manager hears stands over the
    # store's, which no leader updates any more.
    live[0] = ""
    heard: dict[str, Reachability] = {"m2": Reachability.UNREACHABLE}
    seeing = Handlers(wall=lambda: WALL, leader=lambda: live[0], reachability=lambda: heard)
    nodes = {n.name: n for n in seeing.handle(store, "node.list", {}).value["nodes"]}
    assert nodes["node-2"].manager_status.reachability == Reachability.UNREACHABLE
    assert nodes["node-1"].manager_status.reachability == old.manager_status.reachability
    # Without a Raft member (a worker, a test) the store's flag stands.
    assert Handlers(wall=lambda: WALL).handle(store, "node.list", {}).value["nodes"][
        0
    ].manager_status.leader
