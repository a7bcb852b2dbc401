"""What the web view shows, as plain JSON-ready data: a pure function of the
store's objects.

Every field is copied out by name (an allow-list) rather than serialised
whole: nodes carry certificates, the cluster its join tokens and keys, task
specs their environment and arguments. None of those leave this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyswarmkit.api.objects import Node, Service, Task
from pyswarmkit.api.states import TaskState
from pyswarmkit.control.handlers import task_counts
from pyswarmkit.display import manager_status, mode

# A node shows at most this many of its tasks; the page says how many more.
MAX_TASKS_PER_NODE = 100


def listen_address(value: str) -> str:
    """``--listen-web``'s value as HOST:PORT: a bare port or ``:PORT`` means
    the loopback, so serving on any other interface takes an explicit host."""
    value = value.strip()
    if value.startswith(":"):
        value = value[1:]
    if value.isdigit():
        return f"127.0.0.1:{value}"
    return value


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def snapshot(
    index: int, nodes: Iterable[Node], services: Iterable[Service], tasks: Iterable[Task]
) -> dict[str, Any]:
    """The page's data at store index ``index``: a pure function of its
    arguments (no clock: relative times would make equal stores differ)."""
    all_tasks = list(tasks)
    all_services = list(services)
    by_service: dict[str, list[Task]] = {}
    for t in all_tasks:
        by_service.setdefault(t.service_id, []).append(t)
    names = {s.id: s.name for s in all_services}
    live = sorted((t for t in all_tasks if _live(t)), key=lambda t: _task_key(t, names))
    by_node: dict[str, list[Task]] = {}
    for t in live:
        by_node.setdefault(t.node_id, []).append(t)
    node_rows = [
        _node(n, by_node.get(n.id, []), names) for n in sorted(nodes, key=lambda n: (n.name, n.id))
    ]
    waiting = by_node.get("", [])
    return {
        "index": index,
        "nodes": node_rows,
        "services": [
            _service(s, by_service.get(s.id, []))
            for s in sorted(all_services, key=lambda s: (s.name, s.id))
        ],
        # Tasks waiting for a node (the scheduler found none yet).
        "unassigned": [_task(t, names) for t in waiting[:MAX_TASKS_PER_NODE]],
        "more_unassigned": max(0, len(waiting) - MAX_TASKS_PER_NODE),
    }


def _live(task: Task) -> bool:
    """Running or on its way, or still to be stopped: not finished history."""
    return task.desired_state <= TaskState.RUNNING or not task.status.state.terminal


def _task_key(task: Task, names: dict[str, str]) -> tuple[str, int, str]:
    return (names.get(task.service_id, task.service_name), task.slot, task.id)


def _node(node: Node, tasks: list[Task], names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "role": node.role.name.lower(),
        "status": node.status.state.name.lower(),
        "message": node.status.message,
        "availability": node.spec.availability.name.lower(),
        "manager_status": _manager_status(node),
        "addr": node.status.addr,
        "tasks": [_task(t, names) for t in tasks[:MAX_TASKS_PER_NODE]],
        "more_tasks": max(0, len(tasks) - MAX_TASKS_PER_NODE),
    }


def _manager_status(node: Node) -> str:
    """``leader``, else the manager's reachability; empty for a worker."""
    status = manager_status(node)
    return "leader" if status.endswith(" *") else status.lower()


def _task(task: Task, names: dict[str, str]) -> dict[str, Any]:
    service = names.get(task.service_id, task.service_name)
    return {
        "id": task.id,
        "name": f"{service}.{task.slot}" if task.slot else service,
        "service": service,
        "state": task.status.state.name.lower(),
        "desired": task.desired_state.name.lower(),
        "error": task.status.err,
    }


def _service(service: Service, tasks: list[Task]) -> dict[str, Any]:
    kind = service.spec.mode.kind
    running = sum(
        1
        for t in tasks
        if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING
    )
    desired, completed, total = task_counts(service, tasks)
    job = kind.endswith("-job")
    status = service.update_status
    return {
        "id": service.id,
        "name": service.name,
        "mode": mode(service),
        "running": running,
        "desired": desired,
        "completed": completed,
        "total": total,
        # As `service ls` reads: running/desired, and for a job completed/total.
        "replicas": f"{running}/{desired}",
        "completions": f"{completed}/{total}" if job else "",
        "update": "" if status is None else status.state.name.lower().replace("_", " "),
        "update_message": "" if status is None else status.message,
    }
