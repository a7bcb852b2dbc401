"""Finding an object by what a user typed: its ID, its name, or a unique ID prefix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import Cluster, Config, Kind, Node, Secret, Service, Task
from pyswarmkit.api.states import TaskState

T = TypeVar("T", Node, Service, Task, Cluster, Secret, Config)

_NOUN: dict[Kind, str] = {
    "node": "node",
    "service": "service",
    "task": "task",
    "cluster": "cluster",
    "secret": "secret",
    "config": "config",
}


def quoted(text: str, limit: int = 80) -> str:
    """``text`` as an error message shows what a user typed: quoted, and cut
    short (an error stays one readable line whatever was typed)."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


def resolve(kind: Kind, ref: str, objects: Sequence[T]) -> T:
    """Exact ID first, then exact name, then a unique ID prefix."""
    noun = _NOUN[kind]
    if not ref:
        raise InvalidArgument(f"no {noun} given: name one by its ID or name")
    for obj in objects:
        if obj.id == ref:
            return obj
    named = [o for o in objects if _name(o) == ref]
    if len(named) > 1 and kind == "task":
        # A slot's name (web.1) is shared by its history: the live task is meant.
        live = [o for o in named if isinstance(o, Task) and o.desired_state <= TaskState.RUNNING]
        named = live if len(live) == 1 else named
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(sorted(o.id for o in named))
        raise InvalidArgument(f"{noun} name {quoted(ref)} is ambiguous ({ids}): use an ID")
    prefixed = [o for o in objects if o.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise InvalidArgument(
            f"{noun} ID prefix {quoted(ref)} is ambiguous: it matches {len(prefixed)} {noun}s; "
            "type more of the ID"
        )
    shown = ref if len(ref) <= 80 else quoted(ref)
    raise NotFound(f"{noun} {shown} not found")


def _name(obj: Node | Service | Task | Cluster | Secret | Config) -> str:
    if isinstance(obj, Task):
        # As `task ls` shows it: service.slot, or service.node-id (global).
        if obj.slot:
            return f"{obj.service_name}.{obj.slot}"
        return f"{obj.service_name}.{obj.node_id}" if obj.node_id else ""
    return obj.name
