"""The control API's methods, as pure functions of the store.

A read returns ``Reply``. A write returns ``Write``: ``build`` runs where the
store is written, against the newest state (so checks like name uniqueness
cannot race), and ``result`` turns the committed batch into the reply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pyswarmkit import clock, display
from pyswarmkit.api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import (
    JOB_KINDS,
    Cluster,
    Config,
    ConfigSpec,
    Node,
    NodeSpec,
    Secret,
    SecretSpec,
    Service,
    ServiceSpec,
    Task,
    UpdateStatus,
    replace,
)
from pyswarmkit.api.states import NodeRole, NodeState, Reachability, TaskState, UpdateState
from pyswarmkit.ca.certs import MIN_CERT_EXPIRY
from pyswarmkit.ca.signer import redacted
from pyswarmkit.ca.tokens import rotate
from pyswarmkit.control import secrets as refs
from pyswarmkit.control import stacks
from pyswarmkit.control.events import FIELDS, EventRing, parse_request
from pyswarmkit.control.resolve import resolve
from pyswarmkit.control.units import MAX_DURATION, check_heartbeat_period
from pyswarmkit.control.validate import validate_service_spec
from pyswarmkit.orchestrator.update import with_spec
from pyswarmkit.raft import crypt
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore

V = TypeVar("V")

# As SwarmKit's bound on --task-history-limit's cousin settings: generous, finite.
MAX_TASK_HISTORY = 10_000
MAX_SNAPSHOT_INTERVAL = 1_000_000_000
# The longest duration any flag takes (10 years).
MAX_CERT_EXPIRY = MAX_DURATION


@dataclass(frozen=True, slots=True)
class Reply:
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Write:
    build: Callable[[MemoryStore], list[Change]]
    result: Callable[[EventBatch | None], dict[str, Any]]


Outcome = Reply | Write


def _arg(body: dict[str, Any], name: str, kind: type[V]) -> V:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidArgument(f"request field {name!r} must be a {kind.__name__}")
    # Objects were checked field by field when the request was decoded.
    return value


def _running(tasks: list[Task]) -> int:
    return sum(
        1
        for t in tasks
        if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING
    )


def task_counts(service: Service, tasks: list[Task]) -> tuple[int, int, int]:
    """(desired, completed, total) as SwarmKit counts them: a global service
    wants its tasks desired running; a replicated job runs ``max concurrent`` at
    once; a global job wants those of its current iteration still to complete.
    ``completed`` and ``total`` are the current iteration's, for jobs."""
    mode = service.spec.mode
    if mode.kind == "replicated":
        return mode.replicas, 0, 0
    if mode.kind == "global":
        return sum(1 for t in tasks if t.desired_state == TaskState.RUNNING), 0, 0
    current = [t for t in tasks if t.job_iteration == service.job_iteration]
    completed = sum(1 for t in current if t.status.state == TaskState.COMPLETE)
    if mode.kind == "replicated-job":
        total = mode.total_completions
        return min(mode.max_concurrent or total, total), completed, total
    going = sum(
        1 for t in current if t.desired_state <= TaskState.RUNNING and not t.status.state.terminal
    )
    return going, completed, going + completed


# service inspect shows the latest error of this many failing slots at most.
MAX_SLOT_ERRORS = 10


def _pending_message(tasks: list[Task]) -> str:
    """Why the lowest waiting slot is not placed (the scheduler says it)."""
    waiting = [
        t
        for t in tasks
        if t.status.state == TaskState.PENDING
        and t.status.message
        and t.desired_state <= TaskState.RUNNING
    ]
    return min(waiting, key=lambda t: t.slot).status.message if waiting else ""


def slot_errors(tasks: list[Task]) -> list[dict[str, Any]]:
    """The latest error of each failing slot, lowest slot first.

    A slot fails when its newest task is not running and its latest attempt
    that finished carries an error (rejected, failed to start, exited
    non-zero): the replacement waiting for its restart delay hides nothing."""
    slots: dict[tuple[int, str], list[Task]] = {}
    for t in tasks:
        slots.setdefault((t.slot, t.node_id if t.slot == 0 else ""), []).append(t)
    out: list[dict[str, Any]] = []
    for (slot, _), group in sorted(slots.items()):
        group.sort(key=lambda t: t.meta.created_at, reverse=True)
        if group[0].status.state == TaskState.RUNNING:
            continue
        finished = next((t for t in group if t.status.state.terminal), None)
        if finished is None or not finished.status.err:
            continue
        out.append(
            {
                "slot": slot,
                "task": finished.id,
                "state": finished.status.state.name,
                "timestamp": finished.status.timestamp,
                "error": finished.status.err,
            }
        )
    return out


def _node_names(store: MemoryStore) -> dict[str, str]:
    return {n.id: n.name for n in store.nodes()}


# The status a task takes when its node is removed, as SwarmKit words it.
ORPHANED_MESSAGE = "Task belonged to a node that has been deleted"


def _managers_wanted(store: MemoryStore) -> int:
    return sum(1 for n in store.nodes() if n.spec.desired_role == NodeRole.MANAGER)


def removal_refused(node: Node, managers: int, force: bool) -> str:
    """Why the node may not be removed, or "" if it may.

    A node that is not DOWN only with force (a removed node's tasks are its
    swarmd's no longer); never the last manager, nor the leader (demote it
    first: leadership moves on); another manager's Raft member goes with it."""
    if node.role == NodeRole.MANAGER or node.spec.desired_role == NodeRole.MANAGER:
        if managers <= 1:
            return f"attempting to remove the last manager of the swarm (node {node.name})"
        if node.manager_status is not None and node.manager_status.leader:
            return (
                f"node {node.name} leads the swarm: demote it first "
                "(leadership moves to another manager), then remove it"
            )
    if not force and node.status.state != NodeState.DOWN:
        return (
            f"node {node.name} is not down and can't be removed: "
            "stop its swarmd first, or use --force"
        )
    return ""


def orphaned(task: Task, wall: float) -> Task:
    status = replace(
        task.status, timestamp=wall, state=TaskState.ORPHANED, message=ORPHANED_MESSAGE, err=""
    )
    return replace(task, status=status)


class Handlers:
    """Dispatches a method name to its handler.

    ``wall`` stamps the status of tasks a write changes (a test passes its own).
    ``leader`` says which node this manager's Raft member knows to lead now
    ("" for none, None where there is no Raft member): node replies show that,
    not the flag the last leader wrote, which no one can change while the swarm
    has no leader."""

    def __init__(
        self,
        wall: Callable[[], float] = clock.wall,
        leader: Callable[[], str | None] | None = None,
        reachability: Callable[[], dict[str, Reachability] | None] | None = None,
    ) -> None:
        self.wall = wall
        self.leader = leader
        # Managers' reachability as this manager sees it now, where it differs
        # from the store's (None: the store's stands, a leader keeps it).
        self.reachability = reachability
        self.methods: dict[str, Callable[[MemoryStore, dict[str, Any]], Outcome]] = {
            "service.create": self.service_create,
            "service.list": self.service_list,
            "service.inspect": self.service_inspect,
            "service.update": self.service_update,
            "service.remove": self.service_remove,
            "task.list": self.task_list,
            "task.inspect": self.task_inspect,
            "node.list": self.node_list,
            "node.inspect": self.node_inspect,
            "node.update": self.node_update,
            "node.remove": self.node_remove,
            "cluster.list": self.cluster_list,
            "cluster.inspect": self.cluster_inspect,
            "cluster.update": self.cluster_update,
            "swarm.unlock_key": self.swarm_unlock_key,
            "secret.create": self.secret_create,
            "secret.list": self.secret_list,
            "secret.inspect": self.secret_inspect,
            "secret.remove": self.secret_remove,
            "config.create": self.config_create,
            "config.list": self.config_list,
            "config.inspect": self.config_inspect,
            "config.remove": self.config_remove,
            "stack.deploy": self.stack_deploy,
            "stack.list": self.stack_list,
            "stack.remove": self.stack_remove,
        }

    def handle(self, store: MemoryStore, method: str, body: dict[str, Any]) -> Outcome:
        handler = self.methods.get(method)
        if handler is None:
            raise InvalidArgument(f"unknown control method {method!r}")
        if not isinstance(body, dict):
            raise InvalidArgument("request body must be a map")
        with store.reading():
            return handler(store, body)

    def _check(self, spec: ServiceSpec) -> None:
        validate_service_spec(spec)
        refs.check_references(spec.task.container)

    # --- services ----------------------------------------------------------

    def service_create(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        spec = _arg(body, "spec", ServiceSpec)
        self._check(spec)
        refs.resolved(spec, store.secrets(), store.configs())  # fail before anything is written
        service_id = new_id()

        def build(st: MemoryStore) -> list[Change]:
            if st.service_by_name(spec.annotations.name) is not None:
                raise AlreadyExists(
                    f"a service named {spec.annotations.name!r} already exists: "
                    "pick another name or update that service"
                )
            # Names become IDs against the newest state: a secret removed
            # meanwhile is refused here, not referenced.
            full = refs.resolved(spec, st.secrets(), st.configs())
            return [Change("create", Service(id=service_id, spec=full))]

        return Write(build, lambda _: {"id": service_id})

    def service_list(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        services = sorted(store.services(), key=lambda s: s.name)
        running: dict[str, int] = {}
        # Only for services that are not replicated: (desired, completed, total).
        counts: dict[str, tuple[int, int, int]] = {}
        for s in services:
            tasks = store.tasks_by_service(s.id)
            running[s.id] = _running(tasks)
            if s.spec.mode.kind != "replicated":
                counts[s.id] = task_counts(s, tasks)
        return Reply({"services": services, "running": running, "counts": counts})

    def service_inspect(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        """The service and a summary of its tasks; the tasks themselves come
        from ``task.list``, page by page (a service may have 100,000)."""
        service = resolve("service", _arg(body, "ref", str), store.services())
        tasks = store.tasks_by_service(service.id)
        failing = slot_errors(tasks)
        return Reply(
            {
                "service": service,
                "running": _running(tasks),
                "counts": task_counts(service, tasks),
                "pending": _pending_message(tasks),
                "errors": failing[:MAX_SLOT_ERRORS],
                "failing_slots": len(failing),
            }
        )

    def service_update(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        """A new spec starts a rolling update (and supersedes one in progress);
        ``rollback`` returns to the previous spec instead, keeping the update
        and rollback settings of ``spec``. The same spec again resumes a
        paused update and changes nothing else."""
        ref = _arg(body, "ref", str)
        version = _arg(body, "version", int)
        spec = asked = _arg(body, "spec", ServiceSpec)
        rollback = body.get("rollback", False)
        if not isinstance(rollback, bool):
            raise InvalidArgument("request field 'rollback' must be a bool")
        self._check(spec)
        refs.resolved(spec, store.secrets(), store.configs())
        wall = self.wall()

        def build(st: MemoryStore) -> list[Change]:
            spec = refs.resolved(asked, st.secrets(), st.configs())
            current = resolve("service", ref, st.services())
            if current.meta.version != version:
                raise FailedPrecondition(
                    f"service {current.name} changed since it was read "
                    f"(version {version}, now {current.meta.version}): run the update again"
                )
            if spec.annotations.name != current.name:
                raise InvalidArgument("renaming a service is not supported")
            if spec.mode.kind != current.spec.mode.kind:
                raise InvalidArgument(
                    f"service mode change is not allowed ({current.spec.mode.kind} to "
                    f"{spec.mode.kind}): remove the service and create it again"
                )
            if rollback:
                back = _rolled_back(current, spec, wall)
                # The previous spec may name a secret or config removed since.
                refs.resolved(back.spec, st.secrets(), st.configs())
                return [Change("update", _next_run(current, back))]
            if spec == current.spec:
                status = current.update_status
                if status is not None and status.state in PAUSED:
                    return [Change("update", replace(current, update_status=None))]
                return []
            return [Change("update", _respecced(current, spec))]

        return Write(build, lambda _: {})

    def service_remove(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        ref = _arg(body, "ref", str)
        resolve("service", ref, store.services())

        def build(st: MemoryStore) -> list[Change]:
            return [Change("delete", resolve("service", ref, st.services()))]

        return Write(build, lambda batch: {"id": batch.events[0].obj.id if batch else ""})

    # --- tasks ---------------------------------------------------------------

    def task_list(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        tasks = store.tasks()
        if body.get("service"):
            service = resolve("service", _arg(body, "service", str), store.services())
            tasks = [t for t in tasks if t.service_id == service.id]
        if body.get("node"):
            node = resolve("node", _arg(body, "node", str), store.nodes())
            tasks = [t for t in tasks if t.node_id == node.id]
        if not body.get("all"):
            tasks = [t for t in tasks if t.desired_state <= TaskState.RUNNING]
        tasks.sort(key=lambda t: (t.service_name, t.slot, -t.meta.created_at))
        return Reply({"tasks": tasks, "nodes": _node_names(store)})

    def task_inspect(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        task = resolve("task", _arg(body, "ref", str), store.tasks())
        return Reply({"task": task, "nodes": _node_names(store)})

    # --- nodes and the cluster -----------------------------------------------

    def _live(self, nodes: list[Node]) -> list[Node]:
        live = self.leader() if self.leader is not None else None
        if live is None:
            return nodes
        # Without a leader nobody writes reachability: the store's would show
        # managers gone since as REACHABLE, just when the operator needs to
        # know how many are left.
        reach = (self.reachability() if self.reachability is not None else None) or {}
        out = []
        for n in nodes:
            status = n.manager_status
            if status is not None and status.leader != (n.id == live):
                status = replace(status, leader=n.id == live)
            if status is not None and n.id in reach:
                status = replace(status, reachability=reach[n.id])
            if status is not n.manager_status:
                n = replace(n, manager_status=status)
            out.append(n)
        return out

    def node_list(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        nodes = self._live(store.nodes())
        return Reply({"nodes": sorted(nodes, key=lambda n: (n.name, n.id))})

    def node_inspect(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        node = self._live([resolve("node", _arg(body, "ref", str), store.nodes())])[0]
        # Tasks the node holds: running or on their way, not its finished history.
        live = [
            t
            for t in store.tasks_by_node(node.id)
            if not t.status.state.terminal and t.desired_state <= TaskState.RUNNING
        ]
        return Reply({"node": node, "tasks": len(live)})

    def node_update(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        ref = _arg(body, "ref", str)
        version = _arg(body, "version", int)
        spec = _arg(body, "spec", NodeSpec)

        def build(st: MemoryStore) -> list[Change]:
            current: Node = resolve("node", ref, st.nodes())
            if current.meta.version != version:
                raise FailedPrecondition(
                    f"node {current.name} changed since it was read: run the update again"
                )
            if spec == current.spec:
                return []
            demoting = (
                current.spec.desired_role == NodeRole.MANAGER
                and spec.desired_role == NodeRole.WORKER
            )
            if demoting and _managers_wanted(st) <= 1:
                raise FailedPrecondition("attempting to demote the last manager of the swarm")
            promoting = (
                current.spec.desired_role == NodeRole.WORKER
                and spec.desired_role == NodeRole.MANAGER
            )
            if (
                promoting
                and current.certificate is not None
                and current.certificate.role == NodeRole.MANAGER
            ):
                # Its Raft member is gone (or going) but it still runs as a
                # manager: promoted now, it would never restart and rejoin.
                raise FailedPrecondition(
                    f"node {current.name} is still being demoted (it has not restarted as a "
                    "worker yet): promote it once node ls shows it with no manager status"
                )
            return [Change("update", replace(current, spec=spec))]

        return Write(build, lambda _: {})

    def node_remove(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        """Delete a node; its unfinished tasks become ORPHANED in the same
        write, so the orchestrator replaces them (by their restart policy, as
        SwarmKit does) and none stays assigned to a node that is gone. The
        node's key is refused on the wire from that commit on."""
        ref = _arg(body, "ref", str)
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise InvalidArgument("request field 'force' must be a bool")
        resolve("node", ref, store.nodes())  # an unknown node fails before anything is written
        wall = self.wall()

        def build(st: MemoryStore) -> list[Change]:
            node: Node = resolve("node", ref, st.nodes())
            managers = sum(1 for n in st.nodes() if n.role == NodeRole.MANAGER)
            why = removal_refused(node, managers, force)
            if why:
                raise FailedPrecondition(why)
            changes = [
                Change("update", orphaned(t, wall))
                for t in st.tasks_by_node(node.id)
                if t.status.state < TaskState.COMPLETE
            ]
            changes.append(Change("delete", node))
            return changes

        return Write(build, lambda batch: {"id": _deleted_node(batch)})

    def cluster_list(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        return Reply({"clusters": [redacted(c) for c in store.clusters()]})

    def cluster_inspect(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        return Reply({"cluster": redacted(_cluster(store, _arg(body, "ref", str)))})

    def cluster_update(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        """Change settings and rotate join tokens. Each change applies to the
        newest cluster object, so two updates of different settings never
        undo each other."""
        ref = _arg(body, "ref", str)
        edit = ClusterEdit.from_body(body)
        _cluster(store, ref)  # an unknown name fails before anything is written
        # The key a cluster gets if this update turns autolock on.
        edit = dataclasses.replace(edit, new_unlock_key=crypt.random_key())
        after: list[Cluster] = []

        def build(st: MemoryStore) -> list[Change]:
            current = _cluster(st, ref)
            updated = edit.apply(current)
            after[:] = [updated]
            return [] if updated == current else [Change("update", updated)]

        def result(_: EventBatch | None) -> dict[str, Any]:
            if edit.autolock and after and after[0].unlock_key:
                return {"unlock_key": crypt.format_unlock_key(after[0].unlock_key)}
            return {}

        return Write(build, result)

    # --- autolock: the managers' unlock key ---------------------------------------

    def swarm_unlock_key(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        """The unlock key (``rotate``: a new one; each manager re-wraps its
        Raft key under it as the cluster object reaches it)."""
        rotate = body.get("rotate", False)
        if not isinstance(rotate, bool):
            raise InvalidArgument("request field 'rotate' must be a bool")
        ref = _only_cluster(store).id
        if not rotate:
            key = _only_cluster(store).unlock_key
            if not key:
                raise FailedPrecondition("no unlock key is set: autolock is off")
            return Reply({"unlock_key": crypt.format_unlock_key(key)})
        new_key = crypt.random_key()

        def build(st: MemoryStore) -> list[Change]:
            current = _cluster(st, ref)
            if not current.spec.autolock_managers:
                raise FailedPrecondition("cannot rotate because autolock is not turned on")
            return [Change("update", replace(current, unlock_key=new_key))]

        return Write(build, lambda _: {"unlock_key": crypt.format_unlock_key(new_key)})

    # --- secrets and configs ----------------------------------------------------
    # Secret data enters through secret.create and leaves the managers only
    # with the tasks that use it: every reply carries secrets with it emptied.

    def secret_create(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        spec = _arg(body, "spec", SecretSpec)
        refs.validate_name(spec.annotations.name)
        refs.validate_data("secret", spec.data)
        secret = Secret(id=new_id(), spec=spec)
        return Write(_create_named("secret", secret), lambda _: {"id": secret.id})

    def secret_list(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        secrets = sorted(store.secrets(), key=lambda s: s.name)
        return Reply({"secrets": [_without_data(s) for s in secrets]})

    def secret_inspect(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        secret = resolve("secret", _arg(body, "ref", str), store.secrets())
        return Reply({"secret": _without_data(secret)})

    def secret_remove(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        return _remove_named("secret", _arg(body, "ref", str), store)

    def config_create(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        spec = _arg(body, "spec", ConfigSpec)
        refs.validate_name(spec.annotations.name)
        refs.validate_data("config", spec.data)
        config = Config(id=new_id(), spec=spec)
        return Write(_create_named("config", config), lambda _: {"id": config.id})

    def config_list(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        # The listing leaves out the data (up to 1000 KiB each); inspect shows it.
        configs = sorted(store.configs(), key=lambda c: c.name)
        return Reply({"configs": [_without_data(c) for c in configs]})

    def config_inspect(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        return Reply({"config": resolve("config", _arg(body, "ref", str), store.configs())})

    def config_remove(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        return _remove_named("config", _arg(body, "ref", str), store)

    # --- stacks ---------------------------------------------------------------
    # A stack is the services, secrets and configs labelled with its name
    # (com.docker.stack.namespace, as Docker's). Deploying and removing are
    # each one write: all of it happens, or none (control/stacks.py).

    def stack_deploy(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        request = stacks.DeployRequest.from_body(body)
        for spec in request.services:
            self._check(spec)
        ids = {spec.annotations.name: new_id() for spec in request.services}
        file_ids = {
            (which, spec.annotations.name): new_id()
            for which, specs in (("secret", request.secrets), ("config", request.configs))
            for spec in specs
        }
        done: list[stacks.Deployed] = []

        def build(st: MemoryStore) -> list[Change]:
            deployed = stacks.deploy(st, request, ids, file_ids, _respecced)
            done[:] = [deployed]
            return deployed.changes

        return Write(build, lambda _: done[0].summary() if done else {})

    def stack_list(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        return Reply({"stacks": stacks.listing(store.services())})

    def stack_remove(self, store: MemoryStore, body: dict[str, Any]) -> Outcome:
        name = _arg(body, "name", str)
        done: list[stacks.Removed] = []

        def build(st: MemoryStore) -> list[Change]:
            removed = stacks.remove(st, name)
            done[:] = [removed]
            return removed.changes

        return Write(build, lambda _: done[0].summary() if done else {})


SecretOrConfig = TypeVar("SecretOrConfig", Secret, Config)


def _without_data(obj: SecretOrConfig) -> SecretOrConfig:
    return replace(obj, spec=replace(obj.spec, data=b""))


def _create_named(which: refs.Which, obj: Secret | Config) -> Callable[[MemoryStore], list[Change]]:
    def build(st: MemoryStore) -> list[Change]:
        if st.by_name(which, obj.name) is not None:
            raise AlreadyExists(f"{which} {obj.name} already exists")
        return [Change("create", obj)]

    return build


def _remove_named(which: refs.Which, ref: str, store: MemoryStore) -> Outcome:
    """Delete a secret or config, refused while a service's spec uses it."""

    def find(st: MemoryStore) -> Secret | Config:
        if which == "secret":
            return resolve("secret", ref, st.secrets())
        return resolve("config", ref, st.configs())

    find(store)  # an unknown one fails before anything is written

    def build(st: MemoryStore) -> list[Change]:
        obj = find(st)
        using = refs.users(which, obj.id, st.services())
        if using:
            raise FailedPrecondition(refs.in_use(which, obj.name, using))
        return [Change("delete", obj)]

    return Write(build, lambda batch: {"id": batch.events[0].obj.id if batch else ""})


PAUSED = (UpdateState.PAUSED, UpdateState.ROLLBACK_PAUSED)


def _respecced(current: Service, spec: ServiceSpec) -> Service:
    """``current`` given a new spec: a rolling update to it starts (the spec
    before is kept for a rollback), superseding one in progress."""
    updated = replace(with_spec(current, spec, current.spec), update_status=None)
    return _next_run(current, updated)


def _next_run(current: Service, updated: Service) -> Service:
    """As SwarmKit: any update of a job (a rollback too) runs it again."""
    if updated.spec.mode.kind in JOB_KINDS:
        return replace(updated, job_iteration=current.job_iteration + 1)
    return updated


def _rolled_back(current: Service, spec: ServiceSpec, wall: float) -> Service:
    """``service update --rollback``: the previous spec back (the current one
    becomes the previous), rolled out with the rollback settings."""
    settings_only = replace(spec, update=current.spec.update, rollback=current.spec.rollback)
    if settings_only != current.spec:
        raise InvalidArgument(
            "--rollback takes no other change than --update-* and --rollback-* settings"
        )
    if current.previous_spec is None:
        raise FailedPrecondition(f"service {current.name} has no previous spec to roll back to")
    restored = replace(current.previous_spec, update=spec.update, rollback=spec.rollback)
    status = UpdateStatus(
        state=UpdateState.ROLLBACK_STARTED, started_at=wall, message="manually requested rollback"
    )
    return replace(with_spec(current, restored, current.spec), update_status=status)


def events_since(ring: EventRing, body: dict[str, Any]) -> Reply:
    """``events.since``: the events committed after ``index`` (see
    ``control/events.py``), served by the control actor, which keeps the ring.
    ``next`` is the index to ask from next time; ``events`` is the long list
    a reply streams in pages."""
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a map")
    index, kinds, limit = parse_request(body)
    page = ring.since(index, kinds, limit)
    return Reply(
        {"fields": list(FIELDS), "next": page.next, "oldest": page.oldest, "events": page.rows}
    )


def _deleted_node(batch: EventBatch | None) -> str:
    if batch is None:
        return ""
    return next((ev.obj.id for ev in batch.events if ev.kind == "node"), "")


def _only_cluster(store: MemoryStore) -> Cluster:
    clusters = store.clusters()
    if not clusters:
        raise NotFound("the swarm has no cluster object yet: is the manager still starting?")
    return clusters[0]


def _cluster(store: MemoryStore, ref: str) -> Cluster:
    clusters = store.clusters()
    if not clusters:
        raise NotFound("the swarm has no cluster object yet: is the manager still starting?")
    found: Cluster = resolve("cluster", ref, clusters)
    return found


@dataclass(frozen=True, slots=True)
class ClusterEdit:
    """What ``cluster.update`` asks for; None leaves a setting as it is."""

    cert_expiry: float | None = None
    heartbeat_period: float | None = None
    task_history: int | None = None
    rotate: tuple[str, ...] = ()
    snapshot_interval: int | None = None
    autolock: bool | None = None
    # Given to the cluster when autolock turns on (drawn by the caller: apply is pure).
    new_unlock_key: bytes = b""

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ClusterEdit:
        cert_expiry = _opt(body, "cert_expiry", float)
        if cert_expiry is not None and not MIN_CERT_EXPIRY <= cert_expiry <= MAX_CERT_EXPIRY:
            raise InvalidArgument(
                f"--cert-expiry must be between {display.duration(MIN_CERT_EXPIRY)} and "
                f"{display.duration(MAX_CERT_EXPIRY)}"
            )
        heartbeat = _opt(body, "heartbeat_period", float)
        if heartbeat is not None:
            heartbeat = check_heartbeat_period(heartbeat, "--heartbeat-period")
        history = _opt(body, "task_history", int)
        if history is not None and not 0 <= history <= MAX_TASK_HISTORY:
            raise InvalidArgument(
                f"--task-history-limit must be between 0 and {MAX_TASK_HISTORY}, not {history}"
            )
        rotate = body.get("rotate", [])
        if not isinstance(rotate, list) or not all(r in ("worker", "manager") for r in rotate):
            raise InvalidArgument("--rotate-join-token takes worker or manager")
        interval = _opt(body, "snapshot_interval", int)
        if interval is not None and not 1 <= interval <= MAX_SNAPSHOT_INTERVAL:
            raise InvalidArgument(
                f"--snapshot-interval must be between 1 and {MAX_SNAPSHOT_INTERVAL}, not {interval}"
            )
        autolock = body.get("autolock")
        if autolock is not None and not isinstance(autolock, bool):
            raise InvalidArgument("--autolock takes true or false")
        return cls(
            cert_expiry, heartbeat, history, tuple(dict.fromkeys(rotate)), interval, autolock
        )

    def apply(self, cluster: Cluster) -> Cluster:
        spec = cluster.spec
        if self.cert_expiry is not None:
            spec = replace(spec, ca=replace(spec.ca, node_cert_expiry=self.cert_expiry))
        if self.heartbeat_period is not None:
            dispatcher = replace(spec.dispatcher, heartbeat_period=self.heartbeat_period)
            spec = replace(spec, dispatcher=dispatcher)
        if self.task_history is not None:
            orchestration = replace(
                spec.orchestration, task_history_retention_limit=self.task_history
            )
            spec = replace(spec, orchestration=orchestration)
        if self.snapshot_interval is not None:
            raft = replace(spec.raft, snapshot_interval=self.snapshot_interval)
            spec = replace(spec, raft=raft)
        unlock_key = cluster.unlock_key
        if self.autolock is not None:
            spec = replace(spec, autolock_managers=self.autolock)
            if not self.autolock:
                unlock_key = b""
            elif not unlock_key:
                if len(self.new_unlock_key) != crypt.KEY_SIZE:
                    raise InvalidArgument("autolock needs a new unlock key of 32 bytes")
                unlock_key = self.new_unlock_key
        tokens = cluster.join_tokens
        for which in self.rotate:
            if not cluster.server_key.public:
                raise FailedPrecondition(
                    "this swarm has no join tokens: its manager was started without a remote API"
                )
            tokens = rotate(tokens, which, cluster.server_key.public)
        return replace(cluster, spec=spec, join_tokens=tokens, unlock_key=unlock_key)


def _opt(body: dict[str, Any], name: str, kind: type[V]) -> V | None:
    if body.get(name) is None:
        return None
    if kind is float and isinstance(body[name], int) and not isinstance(body[name], bool):
        return float(body[name])  # type: ignore[return-value]
    return _arg(body, name, kind)
