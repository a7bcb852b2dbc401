"""The filters a node must pass to take a task, in the order they run.

Each filter is small: ``applies`` tells whether it has anything to check for
a task (filters that do not apply are skipped), ``check`` passes or fails one
node, and ``explain`` says what a failure on ``n`` nodes means, in Docker's
words. A task's needs are read once into ``Requirements`` and shared by every
task of its group.

Ready, constraints and platform depend only on the node ("static"); resources,
host ports and max replicas also on what already runs there ("dynamic").
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import Platform, Task
from pyswarmkit.scheduler.constraint import Constraint, parse_constraints
from pyswarmkit.scheduler.nodeinfo import HostPort, NodeInfo, host_ports

_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64"}


def normalize_arch(arch: str) -> str:
    """``x86_64`` is ``amd64`` and ``aarch64`` is ``arm64``."""
    return _ARCH_ALIASES.get(arch, arch)


def platform_matches(wanted: Platform, node: Platform) -> bool:
    """An empty os or architecture in ``wanted`` matches any."""
    arch = normalize_arch(wanted.architecture)
    return (not arch or arch == normalize_arch(node.architecture)) and (
        not wanted.os or wanted.os == node.os
    )


_constraint_cache: dict[tuple[str, ...], tuple[Constraint, ...] | None] = {}


def _parsed(exprs: tuple[str, ...]) -> tuple[Constraint, ...] | None:
    """Parse stored constraints, memoized; None when they do not parse."""
    try:
        return _constraint_cache[exprs]
    except KeyError:
        pass
    try:
        parsed: tuple[Constraint, ...] | None = tuple(parse_constraints(exprs))
    except InvalidArgument:
        parsed = None
    if len(_constraint_cache) > 4096:
        _constraint_cache.clear()
    _constraint_cache[exprs] = parsed
    return parsed


@dataclass(frozen=True, slots=True)
class Requirements:
    """What one group of tasks needs from a node."""

    # The service whose tasks ``max_replicas`` counts; empty when there is no limit,
    # so that services with equal specs share one ``Requirements``.
    service_id: str
    # None: the stored constraints do not parse, so no node can satisfy them
    # (the control API refuses such specs; this is only a safe fallback).
    constraints: tuple[Constraint, ...] | None
    platforms: tuple[Platform, ...]
    nano_cpus: int
    memory_bytes: int
    generic: tuple[tuple[str, int], ...]
    ports: tuple[HostPort, ...]
    max_replicas: int
    preferences: tuple[str, ...]
    # Requirements on the node alone: tasks with equal keys see the same nodes.
    static_key: Hashable
    # Everything that decides which nodes pass, for memoizing explanations.
    key: Hashable

    # Whether the resource filter applies, and whether any dynamic filter does.
    needs_resources: bool
    dynamic: bool


def requirements_of(task: Task) -> Requirements:
    spec = task.spec
    placement = spec.placement
    res = spec.resources.reservations
    constraints = _parsed(placement.constraints) if placement.constraints else ()
    generic = tuple(sorted((k, v) for k, v in res.generic.items() if v > 0))
    ports = host_ports(spec) if spec.ports else ()
    static_key = (placement.constraints, placement.platforms)
    max_replicas = placement.max_replicas
    needs_resources = bool(res.nano_cpus or res.memory_bytes or generic)
    key = (
        static_key,
        res.nano_cpus,
        res.memory_bytes,
        generic,
        ports,
        max_replicas,
        task.service_id if max_replicas > 0 else "",
    )
    return Requirements(
        service_id=task.service_id if max_replicas > 0 else "",
        constraints=constraints,
        platforms=placement.platforms,
        nano_cpus=res.nano_cpus,
        memory_bytes=res.memory_bytes,
        generic=generic,
        ports=ports,
        max_replicas=max_replicas,
        preferences=placement.preferences,
        static_key=static_key,
        key=key,
        needs_resources=needs_resources,
        dynamic=bool(needs_resources or ports or max_replicas),
    )


class Filter:
    """One reason a node may not take a task."""

    name: ClassVar[str] = ""
    static: ClassVar[bool] = True

    def applies(self, req: Requirements) -> bool:
        raise NotImplementedError

    def check(self, req: Requirements, info: NodeInfo) -> bool:
        raise NotImplementedError

    def explain(self, nodes: int) -> str:
        raise NotImplementedError


def _on(nodes: int, what: str) -> str:
    return f"{what} on 1 node" if nodes == 1 else f"{what} on {nodes} nodes"


class ReadyFilter(Filter):
    """The node is READY, ACTIVE and ACCEPTED."""

    name = "ready"

    def applies(self, req: Requirements) -> bool:
        return True

    def check(self, req: Requirements, info: NodeInfo) -> bool:
        return info.ready

    def explain(self, nodes: int) -> str:
        if nodes == 1:
            return "1 node not available for new tasks"
        return f"{nodes} nodes not available for new tasks"


class ResourceFilter(Filter):
    """The node has the CPU, memory and generic resources the task reserves left."""

    name = "resources"
    static = False

    def applies(self, req: Requirements) -> bool:
        return req.needs_resources

    def check(self, req: Requirements, info: NodeInfo) -> bool:
        if req.nano_cpus > info.nano_cpus or req.memory_bytes > info.memory_bytes:
            return False
        return all(info.generic.get(name, 0) >= amount for name, amount in req.generic)

    def explain(self, nodes: int) -> str:
        return _on(nodes, "insufficient resources")


class ConstraintFilter(Filter):
    """The node satisfies every placement constraint."""

    name = "constraints"

    def applies(self, req: Requirements) -> bool:
        return req.constraints != ()

    def check(self, req: Requirements, info: NodeInfo) -> bool:
        if req.constraints is None:
            return False
        node = info.node
        return all(c.matches(node) for c in req.constraints)

    def explain(self, nodes: int) -> str:
        return _on(nodes, "scheduling constraints not satisfied")


class PlatformFilter(Filter):
    """The node runs one of the platforms the task supports."""

    name = "platform"

    def applies(self, req: Requirements) -> bool:
        return bool(req.platforms)

    def check(self, req: Requirements, info: NodeInfo) -> bool:
        node_platform = info.node.description.platform
        return any(platform_matches(p, node_platform) for p in req.platforms)

    def explain(self, nodes: int) -> str:
        return _on(nodes, "unsupported platform")


class HostPortFilter(Filter):
    """None of the task's host-mode published ports is taken on the node."""

    name = "host-ports"
    static = False

    def applies(self, req: Requirements) -> bool:
        return bool(req.ports)

    def check(self, req: Requirements, info: NodeInfo) -> bool:
        used = info.ports
        return not any(p in used for p in req.ports)

    def explain(self, nodes: int) -> str:
        return _on(nodes, "host-mode port already in use")


class MaxReplicasFilter(Filter):
    """The node runs fewer of the service's tasks than ``Placement.max_replicas``."""

    name = "max-replicas"
    static = False

    def applies(self, req: Requirements) -> bool:
        return req.max_replicas > 0

    def check(self, req: Requirements, info: NodeInfo) -> bool:
        return info.by_service.get(req.service_id, 0) < req.max_replicas

    def explain(self, nodes: int) -> str:
        # Docker's wording, which gives no count.
        return "max replicas per node limit exceed"


FILTERS: tuple[Filter, ...] = (
    ReadyFilter(),
    ResourceFilter(),
    ConstraintFilter(),
    PlatformFilter(),
    HostPortFilter(),
    MaxReplicasFilter(),
)


def fits_now(req: Requirements, info: NodeInfo) -> bool:
    """The dynamic filters in one function, for the placement hot path."""
    if req.needs_resources and not FILTERS[1].check(req, info):
        return False
    if req.ports:
        used = info.ports
        for p in req.ports:
            if p in used:
                return False
    return not (req.max_replicas and info.by_service.get(req.service_id, 0) >= req.max_replicas)


def meets_static(req: Requirements, info: NodeInfo) -> bool:
    """The static filters in one function (used to build load indexes)."""
    if not info.ready:
        return False
    if req.constraints != () and not FILTERS[2].check(req, info):
        return False
    return not (req.platforms and not FILTERS[3].check(req, info))
