"""What the scheduler knows about one node: the node itself, the tasks that
count toward it, and what is left of its resources and host ports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyswarmkit.api.objects import Node, Task, TaskSpec
from pyswarmkit.api.states import Membership, NodeAvailability, NodeState, TaskState

if TYPE_CHECKING:
    from pyswarmkit.scheduler.nodeset import LoadIndex

HostPort = tuple[str, int]

_RUNNING = TaskState.RUNNING


def node_is_ready(node: Node) -> bool:
    """Ready for new tasks: up, active and accepted into the swarm."""
    return (
        node.status.state == NodeState.READY
        and node.spec.availability == NodeAvailability.ACTIVE
        and node.spec.membership == Membership.ACCEPTED
    )


def counts_toward_node(task: Task) -> bool:
    """Assigned to a node and not yet stopped there.

    A task told to stop still holds its reservations and host ports until its
    agent reports it stopped (as SwarmKit's), so a replacement cannot collide
    with it on the same node."""
    return bool(task.node_id) and task.status.state <= _RUNNING


def host_ports(spec: TaskSpec) -> tuple[HostPort, ...]:
    """The host-mode ports a task publishes, as (protocol, port)."""
    return tuple(
        (p.protocol, p.published_port)
        for p in spec.ports
        if p.publish_mode == "host" and p.published_port != 0
    )


class NodeInfo:
    """Mutable bookkeeping for one node. ``tasks`` holds the tasks counting toward
    it; ``nano_cpus``/``memory_bytes``/``generic`` are what they leave free."""

    __slots__ = (
        "active",
        "by_service",
        "generic",
        "id",
        "memory_bytes",
        "nano_cpus",
        "node",
        "ports",
        "ready",
        "tasks",
        "views",
    )

    def __init__(self, node: Node) -> None:
        self.id = node.id
        self.node = node
        self.ready = node_is_ready(node)
        self.tasks: dict[str, Task] = {}
        self.active = 0
        self.by_service: dict[str, int] = {}
        self.ports: dict[HostPort, int] = {}
        res = node.description.resources
        self.nano_cpus = res.nano_cpus
        self.memory_bytes = res.memory_bytes
        self.generic: dict[str, int] = dict(res.generic)
        # The load indexes this node is listed in (see nodeset.LoadIndex).
        self.views: list[LoadIndex] = []

    def __repr__(self) -> str:
        return f"NodeInfo({self.id!r}, active={self.active})"

    def set_node(self, node: Node) -> None:
        """Take a newer version of the node; recompute what its tasks leave free."""
        old = self.node.description.resources
        self.node = node
        self.ready = node_is_ready(node)
        res = node.description.resources
        if res == old:
            return
        self.nano_cpus = res.nano_cpus
        self.memory_bytes = res.memory_bytes
        self.generic = dict(res.generic)
        for task in self.tasks.values():
            self._reserve(task.spec, -1)

    def add(self, task: Task) -> bool:
        """Count ``task`` toward this node; False if it already counts."""
        tid = task.id
        tasks = self.tasks
        if tid in tasks:
            return False
        tasks[tid] = task
        self.active += 1
        svc = task.service_id
        by_service = self.by_service
        by_service[svc] = by_service.get(svc, 0) + 1
        spec = task.spec
        r = spec.resources.reservations
        if r.nano_cpus or r.memory_bytes or r.generic:
            self._reserve(spec, -1)
        if spec.ports:
            for hp in host_ports(spec):
                self.ports[hp] = self.ports.get(hp, 0) + 1
        return True

    def remove(self, task_id: str) -> Task | None:
        """Stop counting a task toward this node; returns the version that counted."""
        task = self.tasks.pop(task_id, None)
        if task is None:
            return None
        self.active -= 1
        svc = task.service_id
        left = self.by_service[svc] - 1
        if left:
            self.by_service[svc] = left
        else:
            del self.by_service[svc]
        spec = task.spec
        r = spec.resources.reservations
        if r.nano_cpus or r.memory_bytes or r.generic:
            self._reserve(spec, 1)
        if spec.ports:
            for hp in host_ports(spec):
                n = self.ports.get(hp, 0) - 1
                if n > 0:
                    self.ports[hp] = n
                else:
                    self.ports.pop(hp, None)
        return task

    def replace(self, task: Task) -> None:
        """Swap in a newer version of a counted task whose accounting is the same."""
        self.tasks[task.id] = task

    def _reserve(self, spec: TaskSpec, sign: int) -> None:
        r = spec.resources.reservations
        self.nano_cpus += sign * r.nano_cpus
        self.memory_bytes += sign * r.memory_bytes
        for name, amount in r.generic.items():
            self.generic[name] = self.generic.get(name, 0) + sign * amount


def same_accounting(a: Task, b: Task) -> bool:
    """Whether two versions of a task weigh the same on the same node."""
    if a.node_id != b.node_id or a.service_id != b.service_id:
        return False
    if a.spec is b.spec:
        return True
    return (
        a.spec.resources.reservations == b.spec.resources.reservations
        and a.spec.ports == b.spec.ports
    )
