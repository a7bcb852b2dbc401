"""How swarmctl shows things: aligned tables and human times, as SwarmKit's."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from pyswarmkit.api.objects import Node, Service, Task
from pyswarmkit.api.states import NodeRole


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: objects become maps of their fields (in
    declaration order), states their lower-case names, PEM text, and other
    bytes hex."""
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, msgspec.Struct):
        return {f: plain(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        if value.startswith(b"-----BEGIN"):
            return value.decode("ascii", "replace")
        return value.hex()
    return value


def as_json(values: Sequence[Any]) -> str:
    """One JSON document: the list of ``values``, each with all its fields."""
    return json.dumps([plain(v) for v in values], indent=2)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a dashed rule under the headers."""
    all_rows = [list(headers), ["-" * len(h) for h in headers], *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in all_rows
    ]
    return "\n".join(lines)


class PagedTable:
    """A table printed page by page as a listing streams in: the columns are
    as wide as the headers and the first page need (a later, wider cell pushes
    its row out rather than holding the whole listing back)."""

    def __init__(self, headers: Sequence[str]) -> None:
        self.headers = list(headers)
        self.widths: list[int] | None = None

    def page(self, rows: Sequence[Sequence[str]]) -> list[str]:
        """The lines to print for the next page (the first adds the headers)."""
        out: list[str] = []
        if self.widths is None:
            head = [self.headers, ["-" * len(h) for h in self.headers]]
            self.widths = [max(len(r[i]) for r in [*head, *rows]) for i in range(len(self.headers))]
            out.extend(self._line(r) for r in head)
        out.extend(self._line(r) for r in rows)
        return out

    def _line(self, row: Sequence[str]) -> str:
        assert self.widths is not None
        return "  ".join(cell.ljust(self.widths[i]) for i, cell in enumerate(row)).rstrip()


def exit_code(task: Task) -> str:
    """A task's exit code, only when a process of it ran and exited: a task
    rejected before it started has none (not 0)."""
    status = task.status
    if status.state.terminal and status.container.pid:
        return str(status.container.exit_code)
    return ""


def human_duration(seconds: float) -> str:
    """Docker's wording: 'Less than a second', '5 seconds', 'About a minute', ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(s / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def ago(timestamp: float, now: float) -> str:
    if timestamp <= 0:
        return ""
    return f"{human_duration(max(0.0, now - timestamp))} ago"


def timestamp(when: float) -> str:
    """A wall time as Docker's inspect prints it, in UTC."""
    if when <= 0:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(when))


def duration(seconds: float) -> str:
    """Go's time.Duration spelling, as SwarmKit prints settings: 2160h0m0s, 1m30.5s, 500ms."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        for unit, scale in (("ms", 1e3), ("µs", 1e6), ("ns", 1e9)):
            value = seconds * scale
            if value >= 1 or unit == "ns":
                return f"{sign}{_trim(value)}{unit}"
    total_ms = round(seconds * 1000)
    h, rem = divmod(total_ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    secs = _trim(rem / 1000)
    if h:
        return f"{sign}{h}h{m}m{secs}s"
    if m:
        return f"{sign}{m}m{secs}s"
    return f"{sign}{secs}s"


def _trim(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def service_image(service: Service) -> str:
    c = service.spec.task.container
    return c.image or " ".join(c.command)


def task_image(task: Task) -> str:
    c = task.spec.container
    return c.image or " ".join(c.command)


# The Mode column, in Docker's words.
MODES = {
    "replicated": "replicated",
    "global": "global",
    "replicated-job": "replicated job",
    "global-job": "global job",
}


def mode(service: Service) -> str:
    return MODES.get(service.spec.mode.kind, service.spec.mode.kind)


def replicas(service: Service, running: int, counts: Sequence[int] | None = None) -> str:
    """``running/desired``; for a job also ``(completed/total completed)``, as
    Docker shows them. ``counts`` is (desired, completed, total) for services
    that are not replicated (the control API's ``task_counts``)."""
    kind = service.spec.mode.kind
    if kind == "replicated":
        return f"{running}/{service.spec.mode.replicas}"
    desired, completed, total = counts if counts is not None else (0, 0, 0)
    if kind == "global":
        return f"{running}/{desired}"
    return f"{running}/{desired} ({completed}/{total} completed)"


def task_name(task: Task) -> str:
    """As Docker names them: service.slot, or service.node-id for a task of
    a global service (one per node, no slot)."""
    if task.slot:
        return f"{task.service_name}.{task.slot}"
    return f"{task.service_name}.{task.node_id}" if task.node_id else task.service_name


def last_state(task: Task, now: float) -> str:
    return f"{task.status.state.name} {ago(task.status.timestamp, now)}".strip()


def manager_status(node: Node) -> str:
    """As SwarmKit's swarmctl: the reachability of a node with a manager
    status, `` *`` after the leader's; UNKNOWN for a manager without one."""
    ms = node.manager_status
    if ms is None:
        return "UNKNOWN" if node.spec.desired_role == NodeRole.MANAGER else ""
    text = ms.reachability.name
    return f"{text} *" if ms.leader else text


def cert_expiry(node: Node, now: float) -> str:
    if node.certificate is None:
        return ""
    not_after = node.certificate.not_after
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_after))
    if not_after <= now:
        return f"{when} (expired)"
    return f"{when} (in {human_duration(not_after - now).lower()})"


def _pairs(labels: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def node_summary(node: Node, tasks: int, now: float) -> str:
    """``node inspect``, in the layout of SwarmKit's swarmctl: what the node
    is, its status, its manager status, what it runs on and offers."""
    d = node.description
    lines: list[str] = []

    def field(name: str, value: str, indent: int = 0) -> None:
        if value:
            lines.append(f"{' ' * indent}{name:<{20 - indent}}: {value}")

    field("ID", node.id)
    field("Hostname", d.hostname)
    if node.spec.annotations.name and node.spec.annotations.name != d.hostname:
        field("Name", node.spec.annotations.name)
    field("Node Labels", _pairs(node.spec.annotations.labels))
    field("Role", node.role.name)
    lines.append("Status:")
    field("State", node.status.state.name, 2)
    field("Message", node.status.message, 2)
    field("Availability", node.spec.availability.name, 2)
    field("Address", node.status.addr, 2)
    ms = node.manager_status
    if ms is not None:
        lines.append("Manager Status:")
        field("Address", ms.addr, 2)
        field("Raft Status", ms.reachability.name, 2)
        field("Leader", "yes" if ms.leader else "no", 2)
    field("Certificate Expiry", cert_expiry(node, now))
    field("Tasks", str(tasks))
    lines.append("Platform:")
    field("Operating System", d.platform.os, 2)
    field("Architecture", d.platform.architecture, 2)
    r = d.resources
    lines.append("Resources:")
    field("CPUs", f"{r.nano_cpus / 1e9:g}", 2)
    field("Memory", size(r.memory_bytes), 2)
    if r.generic:
        lines.append("  Generic Resources:")
        for name, count in sorted(r.generic.items()):
            field(name, str(count), 4)
    field("Engine Version", d.engine.engine_version)
    field("Engine Labels", _pairs(d.engine.labels))
    return "\n".join(lines)


def size(n: int) -> str:
    """Bytes in binary units: 512MiB, 1.5GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.4g}{unit}"
        value /= 1024
    return f"{n}B"


def service_table(
    services: Sequence[Service],
    running: Mapping[str, int],
    counts: Mapping[str, Sequence[int]],
) -> str:
    """`service ls` (and `stack services`): one row per service."""
    rows = [
        [
            s.id,
            s.name,
            mode(s),
            service_image(s),
            replicas(s, running.get(s.id, 0), counts.get(s.id)),
        ]
        for s in services
    ]
    return table(["ID", "Name", "Mode", "Image", "Replicas"], rows)
