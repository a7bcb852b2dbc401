"""What a bench measured, from the manager's own record (``events.since``),
and how it is shown. Pure: rows and times in, figures out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pyswarmkit.api.states import TaskState
from pyswarmkit.control.events import FIELDS

_COL = {name: i for i, name in enumerate(FIELDS)}
_INDEX, _TIME, _OP, _KIND, _ID = (_COL[k] for k in ("index", "time", "op", "kind", "id"))
_STATE, _NODE, _SERVICE = _COL["state"], _COL["node_id"], _COL["service_id"]
_ASSIGNED = TaskState.ASSIGNED


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(slots=True)
class ProcSample:
    """The manager process as /proc shows it."""

    cpu: float = 0.0  # utime + stime, seconds
    rss: int = 0  # VmRSS, bytes
    peak_rss: int = 0  # VmHWM, bytes


def parse_metrics(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text page, by name (labelled
    samples and comments are skipped: the bench reads only plain gauges and
    counters)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "{" in line:
            continue
        name, _, value = line.partition(" ")
        try:
            out[name] = float(value.split()[0])
        except (ValueError, IndexError):
            continue
    return out


def miss_rate(misses: int, agents: int, seconds: float, period: float) -> float:
    """Sessions lost to silence per heartbeat the agents were due to send
    over ``seconds``: 0 when none was due."""
    due = agents * seconds / period if period > 0 else 0.0
    return misses / due if due > 0 else 0.0


@dataclass(slots=True)
class NodeWatch:
    """Follows the nodes through the event rows: which are READY now, and
    which were ever marked DOWN (a node's status rows carry its state)."""

    # Nodes not counted as agents (the managers registered before the watch).
    others: frozenset[str] = frozenset()
    states: dict[str, str] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)

    def feed(self, rows: list[list[Any]]) -> None:
        for r in rows:
            if r[_KIND] != "node" or r[_OP] == "delete":
                continue
            state = r[_STATE]
            if state == "DOWN":
                self.down.add(r[_ID])
            if r[_ID] not in self.others:
                self.states[r[_ID]] = state

    @property
    def ready(self) -> int:
        return sum(1 for s in self.states.values() if s == "READY")


@dataclass(slots=True)
class ServiceTrack:
    """Follows one service's tasks through the event rows after its create."""

    name: str
    replicas: int
    service_id: str = ""
    created_at: float | None = None  # the service's create, committed
    created: dict[str, float] = field(default_factory=dict)
    assigned: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    nodes: set[str] = field(default_factory=set)

    def feed(self, rows: list[list[Any]]) -> None:
        for r in rows:
            kind = r[_KIND]
            if kind == "service":
                if r[_ID] == self.service_id and r[_OP] == "create":
                    self.created_at = r[_TIME]
                continue
            if kind != "task" or r[_SERVICE] != self.service_id:
                continue
            tid, t = r[_ID], r[_TIME]
            if r[_OP] == "create":
                self.created.setdefault(tid, t)
            state = r[_STATE]
            if not state:
                continue
            value = TaskState[state]
            if value >= _ASSIGNED and r[_NODE] and tid not in self.assigned:
                self.assigned[tid] = t
                self.nodes.add(r[_NODE])
            if value == TaskState.RUNNING and tid not in self.running:
                self.running[tid] = t

    @property
    def done(self) -> bool:
        return self.created_at is not None and len(self.running) >= self.replicas

    def figures(self, call_at: float, cpu: float, proc: ProcSample) -> dict[str, Any]:
        """``call_at``: when ``service create`` was called (wall clock);
        ``cpu``: the manager's CPU seconds spent while the service started."""
        start = self.created_at if self.created_at is not None else call_at
        to_assigned = max(self.assigned.values(), default=start) - start
        to_running = max(self.running.values(), default=start) - start
        latencies = [
            (self.assigned[t] - c) * 1000 for t, c in self.created.items() if t in self.assigned
        ]
        return {
            "service": self.name,
            "replicas": self.replicas,
            "assigned": len(self.assigned),
            "running": len(self.running),
            "nodes_used": len(self.nodes),
            "to_all_assigned_s": round(to_assigned, 3),
            "to_all_running_s": round(to_running, 3),
            "call_to_all_running_s": round(
                max(self.running.values(), default=call_at) - call_at, 3
            ),
            "placements_per_s": round(len(self.assigned) / to_assigned, 1)
            if to_assigned > 0
            else 0.0,
            "latency_p50_ms": round(percentile(latencies, 50), 1),
            "latency_p99_ms": round(percentile(latencies, 99), 1),
            "manager_cpu_s": round(cpu, 2),
            "manager_rss_mb": round(proc.rss / 2**20, 1),
            "manager_peak_rss_mb": round(proc.peak_rss / 2**20, 1),
        }


COLUMNS = [
    ("Service", "service", "{}"),
    ("Tasks", "replicas", "{}"),
    ("Nodes", "nodes_used", "{}"),
    ("Assigned", "to_all_assigned_s", "{:.2f} s"),
    ("Running", "to_all_running_s", "{:.2f} s"),
    ("Placements/s", "placements_per_s", "{:,.0f}"),
    ("p50", "latency_p50_ms", "{:.0f} ms"),
    ("p99", "latency_p99_ms", "{:.0f} ms"),
    ("Mgr CPU", "manager_cpu_s", "{:.1f} s"),
    ("Mgr RSS", "manager_rss_mb", "{:.0f} MB"),
]


def table(report: dict[str, Any]) -> str:
    """The report as people read it: the setup, then one line per service."""
    s = report["setup"]
    managers = s["managers"]
    lines = [
        f"swarm: {managers} manager{'s' if managers != 1 else ''}, {s['agents']} agents in "
        f"{s['hosts']} host processes, heartbeat period {s['heartbeat_period_s']:g} s; "
        f"agents registered (READY) in {s['register_s']:.1f} s",
    ]
    header = [c[0] for c in COLUMNS]
    rows = [[fmt.format(svc[key]) for _, key, fmt in COLUMNS] for svc in report["services"]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    t = report["totals"]
    lines.append(
        f"all {t['tasks']} tasks RUNNING {t['to_all_running_s']:.1f} s after the first create; "
        f"whole run {t['run_s']:.1f} s"
    )
    m = report["leader"]
    lines.append(
        f"leader {m['hostname']}: {m['cpu_s']:.1f} s CPU in all, RSS {m['rss_mb']:.0f} MB "
        f"(peak {m['peak_rss_mb']:.0f} MB)" + ("" if m["stayed"] else "; leadership moved")
    )
    r = report["raft"]
    lines.append(
        f"raft: {r['entries']} entries committed in {r['seconds']:.1f} s "
        f"({r['entries_per_s']:.1f}/s)"
    )
    h = report["heartbeats"]
    lines.append(
        f"heartbeats: {h['misses']} sessions lost to silence (miss rate {h['miss_rate']:.2%}); "
        f"{h['nodes_down']} nodes ever marked DOWN"
    )
    lines.append(
        "Assigned/Running: from the service's create to its last task assigned/running, "
        "as the manager committed them; p50/p99: each task's creation to its assignment."
    )
    return "\n".join(lines)
