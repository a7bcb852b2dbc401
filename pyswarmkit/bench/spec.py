"""The bench file: what ``swarmd bench FILE`` launches and what it runs.

    managers = 3                 # 1..7 real swarmd managers; the first starts the swarm and
                                 # leads, the others join it; every one is drained
    heartbeat_period = 5         # seconds, or "5s"
    election_tick = 10           # the managers' Raft election timeout, in ticks of 0.1 s

    [agents]
    count = 1000                 # worker agents, each a node of its own
    hosts = 4                    # OS processes they share (default: one per 250)
    cpus = 4                     # what each agent offers
    memory = "8G"
    labels = { zone = ["a", "b", "c"] }       # node labels, set as an operator would:
                                              # agent i gets the (i mod 3)-th value
    engine_labels = { disk = ["ssd", "hdd"] } # in each agent's description

    [[service]]
    name = "web"
    replicas = 4000
    constraints = ["node.labels.zone!=c"]
    placement_prefs = ["spread=node.labels.zone"]
    reserve_cpu = 0.1
    reserve_memory = "64M"

Every error is one line naming the file, the table and what is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    Placement,
    ResourceRequirements,
    Resources,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
)
from pyswarmkit.control import units
from pyswarmkit.topology import checked_service, load_toml

TOP_KEYS = {"managers", "heartbeat_period", "election_tick", "agents", "service"}
AGENT_KEYS = {"count", "hosts", "cpus", "memory", "labels", "engine_labels", "hostname_prefix"}
SERVICE_KEYS = {
    "name",
    "replicas",
    "image",
    "command",
    "args",
    "constraints",
    "placement_prefs",
    "reserve_cpu",
    "reserve_memory",
    "limit_cpu",
    "limit_memory",
    "replicas_max_per_node",
}
# Agents one host process runs by default (measured: see docs/architecture.md).
AGENTS_PER_HOST = 250
MAX_AGENTS = 20_000
MAX_HOSTS = 64
# As `swarmctl` allows: Raft quorums past seven members cost more than they save.
MAX_MANAGERS = 7


@dataclass(frozen=True, slots=True)
class AgentSpec:
    count: int
    hosts: int
    nano_cpus: int
    memory_bytes: int
    # label key -> the values agents take in turn
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    engine_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    hostname_prefix: str = "bench-"

    def hostname(self, i: int) -> str:
        """The i-th agent's hostname (i from 0): bench-0001, bench-0002, ..."""
        width = max(4, len(str(self.count)))
        return f"{self.hostname_prefix}{i + 1:0{width}d}"

    def labels_of(self, i: int) -> dict[str, str]:
        return {k: v[i % len(v)] for k, v in self.labels.items()}

    def engine_labels_of(self, i: int) -> dict[str, str]:
        return {k: v[i % len(v)] for k, v in self.engine_labels.items()}

    def slices(self) -> list[range]:
        """The agents (by index) of each host process, as even as can be."""
        per, extra = divmod(self.count, self.hosts)
        out, start = [], 0
        for h in range(self.hosts):
            n = per + (1 if h < extra else 0)
            out.append(range(start, start + n))
            start += n
        return out

    def resources(self) -> Resources:
        return Resources(nano_cpus=self.nano_cpus, memory_bytes=self.memory_bytes)


@dataclass(frozen=True, slots=True)
class BenchSpec:
    agents: AgentSpec
    services: tuple[ServiceSpec, ...]
    managers: int = 1
    heartbeat_period: float = 5.0
    # Ticks of swarmd's 0.1 s Raft tick a follower waits for the leader.
    election_tick: int = 10


def _check_keys(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidArgument(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
        )


def _whole(where: str, key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{where}: {key} must be a whole number")
    if not low <= value <= high:
        raise InvalidArgument(f"{where}: {key} must be between {low} and {high}, not {value}")
    return value


def _text(value: Any) -> str:
    # Numbers are welcome where swarmctl takes "0.5" or "512M".
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise TypeError


def _cpus(where: str, key: str, value: Any) -> int:
    try:
        return units.parse_cpus(_text(value), f"{where}: {key}")
    except TypeError:
        raise InvalidArgument(f"{where}: {key} must be a number of CPUs, e.g. 0.5") from None


def _memory(where: str, key: str, value: Any) -> int:
    try:
        return units.parse_memory(_text(value), f"{where}: {key}")
    except TypeError:
        raise InvalidArgument(f'{where}: {key} must be a size, e.g. "512M"') from None


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidArgument(f"{where}: {key} must be a string or a list of strings")


def _label_rules(where: str, key: str, value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise InvalidArgument(
            f'{where}: {key} must be a table, e.g. {key} = {{ zone = ["a", "b"] }}'
        )
    out = {}
    for k, v in value.items():
        values = _strings(where, f"{key}.{k}", v)
        if not values or not all(values):
            raise InvalidArgument(f"{where}: {key}.{k} needs at least one non-empty value")
        out[str(k)] = values
    return out


def parse(path: Path) -> BenchSpec:
    """The bench a file describes, or InvalidArgument with one line."""
    return parse_data(load_toml(path, "bench file"), str(path))


def parse_data(data: dict[str, Any], where: str) -> BenchSpec:
    _check_keys(where, data, TOP_KEYS)
    managers = _whole(where, "managers", data.get("managers", 1), 1, MAX_MANAGERS)
    period = data.get("heartbeat_period", 5.0)
    if isinstance(period, str):
        period = units.parse_duration(period, f"{where}: heartbeat_period")
    period = units.check_heartbeat_period(period, f"{where}: heartbeat_period")
    election_tick = _whole(where, "election_tick", data.get("election_tick", 10), 2, 10_000)
    if "agents" not in data:
        raise InvalidArgument(f"{where}: an [agents] table is needed, e.g. count = 100")
    agents = _agents(f"{where}: agents", data["agents"])
    raw = data.get("service", [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise InvalidArgument(f"{where}: service must be written as [[service]] tables")
    if not raw:
        raise InvalidArgument(f"{where}: no [[service]]: a bench needs a workload to run")
    services: list[ServiceSpec] = []
    names: set[str] = set()
    for i, table in enumerate(raw, 1):
        spec = _service(f"{where}: service {i}", table)
        if spec.annotations.name in names:
            raise InvalidArgument(
                f"{where}: service {i}: a service named {spec.annotations.name!r} comes twice"
            )
        names.add(spec.annotations.name)
        services.append(spec)
    return BenchSpec(agents, tuple(services), managers, float(period), election_tick)


def _agents(where: str, table: Any) -> AgentSpec:
    if not isinstance(table, dict):
        raise InvalidArgument(f"{where}: must be a table: [agents]")
    _check_keys(where, table, AGENT_KEYS)
    if "count" not in table:
        raise InvalidArgument(f"{where}: count is required, e.g. count = 100")
    count = _whole(where, "count", table["count"], 1, MAX_AGENTS)
    default_hosts = min(MAX_HOSTS, math.ceil(count / AGENTS_PER_HOST))
    hosts = _whole(where, "hosts", table.get("hosts", default_hosts), 1, MAX_HOSTS)
    if hosts > count:
        raise InvalidArgument(f"{where}: hosts = {hosts} is more than the {count} agents")
    prefix = table.get("hostname_prefix", "bench-")
    if not isinstance(prefix, str) or not prefix:
        raise InvalidArgument(f"{where}: hostname_prefix must be a non-empty string")
    try:
        units.check_hostname(prefix + "1")
    except InvalidArgument:
        raise InvalidArgument(
            f"{where}: hostname_prefix {prefix[:40]!r} makes invalid hostnames"
        ) from None
    return AgentSpec(
        count=count,
        hosts=hosts,
        nano_cpus=_cpus(where, "cpus", table.get("cpus", 4)),
        memory_bytes=_memory(where, "memory", table.get("memory", "8G")),
        labels=_label_rules(where, "labels", table.get("labels", {})),
        engine_labels=_label_rules(where, "engine_labels", table.get("engine_labels", {})),
        hostname_prefix=prefix,
    )


def _service(where: str, s: dict[str, Any]) -> ServiceSpec:
    _check_keys(where, s, SERVICE_KEYS)
    if "name" not in s or not isinstance(s["name"], str):
        raise InvalidArgument(f'{where}: name is required, e.g. name = "web"')
    replicas = s.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise InvalidArgument(f"{where}: replicas must be a whole number")
    if replicas < 0:
        raise InvalidArgument(f"{where}: replicas must be 0 or more, not {replicas}")
    max_per_node = _whole(
        where, "replicas_max_per_node", s.get("replicas_max_per_node", 0), 0, 1 << 31
    )
    reservations = Resources(
        nano_cpus=_cpus(where, "reserve_cpu", s["reserve_cpu"]) if "reserve_cpu" in s else 0,
        memory_bytes=_memory(where, "reserve_memory", s["reserve_memory"])
        if "reserve_memory" in s
        else 0,
    )
    limits = Resources(
        nano_cpus=_cpus(where, "limit_cpu", s["limit_cpu"]) if "limit_cpu" in s else 0,
        memory_bytes=_memory(where, "limit_memory", s["limit_memory"])
        if "limit_memory" in s
        else 0,
    )
    spec = ServiceSpec(
        annotations=Annotations(name=s["name"]),
        task=TaskSpec(
            container=ContainerSpec(
                image=str(s.get("image", "bench/sim")),
                command=_strings(where, "command", s.get("command", [])),
                args=_strings(where, "args", s.get("args", [])),
            ),
            placement=Placement(
                constraints=_strings(where, "constraints", s.get("constraints", [])),
                preferences=_strings(where, "placement_prefs", s.get("placement_prefs", [])),
                max_replicas=max_per_node,
            ),
            resources=ResourceRequirements(limits=limits, reservations=reservations),
        ),
        mode=ServiceMode(replicas=replicas),
    )
    return checked_service(spec, where)
