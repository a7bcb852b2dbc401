"""The invariants a swarm must hold once the faults stop and it settles.

Pure: each takes what the harness read (every manager's view of the store as
``swarmctl ... --format json`` prints it, the acknowledged writes, the task
processes found on the machine) and returns one line per violation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

View = dict[str, list[dict[str, Any]]]


@dataclass(slots=True)
class Expect:
    """What the acknowledged writes say of one service; None where a write
    that was not acknowledged (it may or may not have happened) left it open."""

    exists: bool | None = True
    replicas: int | None = None
    generation: str | None = None


def projection(view: View) -> dict[str, Any]:
    """What every manager must agree on, without what each keeps for itself."""
    return {
        "services": sorted(
            (s["id"], s["spec"]["annotations"]["name"], s["meta"]["version"])
            for s in view["services"]
        ),
        "tasks": sorted(
            (t["id"], t["slot"], t["node_id"], t["desired_state"], t["status"]["state"])
            for t in view["tasks"]
        ),
        "nodes": sorted(
            (n["id"], n["status"]["state"], n["spec"]["availability"], n["role"])
            for n in view["nodes"]
        ),
    }


def _generation(service: dict[str, Any]) -> str | None:
    for item in service["spec"]["task"]["container"]["env"]:
        key, _, value = item.partition("=")
        if key == "GEN":
            return str(value)
    return None


def check_writes(view: View, expected: dict[str, Expect]) -> list[str]:
    out = []
    names = Counter(s["spec"]["annotations"]["name"] for s in view["services"])
    by_name = {s["spec"]["annotations"]["name"]: s for s in view["services"]}
    for name, want in sorted(expected.items()):
        count = names.get(name, 0)
        if count > 1:
            out.append(f"service {name} is in the store {count} times")
        if want.exists is True and count == 0:
            out.append(f"service {name}: its acknowledged create is lost")
        elif want.exists is False and count:
            out.append(f"service {name}: its acknowledged remove is lost")
        if count != 1 or not want.exists:
            continue
        svc = by_name[name]
        replicas = svc["spec"]["mode"]["replicas"]
        if want.replicas is not None and replicas != want.replicas:
            out.append(f"service {name}: {replicas} replicas, acknowledged {want.replicas}")
        gen = _generation(svc)
        if want.generation is not None and gen != want.generation:
            out.append(f"service {name}: GEN={gen}, acknowledged GEN={want.generation}")
    return out


def check_replicas(view: View) -> list[str]:
    out = []
    for svc in view["services"]:
        if svc["spec"]["mode"]["kind"] != "replicated":
            continue
        name = svc["spec"]["annotations"]["name"]
        replicas = svc["spec"]["mode"]["replicas"]
        running = [
            t
            for t in view["tasks"]
            if t["service_id"] == svc["id"]
            and t["desired_state"] == "running"
            and t["status"]["state"] == "running"
        ]
        slots = Counter(t["slot"] for t in running)
        if len(running) != replicas:
            out.append(f"service {name}: {len(running)} tasks running, {replicas} replicas")
        doubled = sorted(s for s, c in slots.items() if c > 1)
        if doubled:
            out.append(f"service {name}: slots {doubled} run more than one task")
        # Slot numbers need not be 1..replicas: a scale down removes the slots
        # on the nodes holding the most copies (as SwarmKit does), wherever
        # they are in the numbering.
    return out


def check_placement(view: View) -> list[str]:
    nodes = {n["id"]: n for n in view["nodes"]}
    out = []
    for t in view["tasks"]:
        if t["status"]["state"] != "running":
            continue
        node = nodes.get(t["node_id"])
        if node is None:
            out.append(f"task {t['id']} runs on node {t['node_id']}, which is not in the store")
        elif node["status"]["state"] == "down":
            out.append(f"task {t['id']} runs on node {t['node_id']}, which is DOWN")
        elif node["spec"]["availability"] == "drain":
            out.append(f"task {t['id']} runs on node {t['node_id']}, which is drained")
    return out


def check_processes(view: View, pids: set[int]) -> list[str]:
    """The task processes on the machine are exactly the running tasks'."""
    known = {
        t["status"]["container"]["pid"]: t["id"]
        for t in view["tasks"]
        if t["status"]["state"] == "running"
    }
    out = [
        f"process {pid} runs, but no running task in the store is it"
        for pid in sorted(pids - set(known))
    ]
    out += [
        f"task {known[pid]} is running in the store, but its process {pid} is not"
        for pid in sorted(set(known) - pids)
    ]
    return out


def check_agreement(views: dict[str, View]) -> list[str]:
    names = sorted(views)
    if not names:
        return ["no manager answered"]
    first = projection(views[names[0]])
    out = []
    for name in names[1:]:
        other = projection(views[name])
        for part in ("services", "tasks", "nodes"):
            if other[part] != first[part]:
                out.append(f"manager {name}'s {part} differ from {names[0]}'s")
    return out


def check_all(views: dict[str, View], expected: dict[str, Expect], pids: set[int]) -> list[str]:
    out = check_agreement(views)
    if not views:
        return out
    view = views[sorted(views)[0]]
    return (
        out
        + check_writes(view, expected)
        + check_replicas(view)
        + check_placement(view)
        + (check_processes(view, pids))
    )
