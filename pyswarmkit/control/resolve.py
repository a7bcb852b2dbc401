"""Finding an object by what a user typed: its ID, its name, or a unique ID prefix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import Cluster, Kind, Node, Service, Task

T = TypeVar("T", Node, Service, Task, Cluster)

_NOUN: dict[Kind, str] = {
    "node": "node",
    "service": "service",
    "task": "task",
    "cluster": "cluster",
}


def resolve(kind: Kind, ref: str, objects: Sequence[T]) -> T:
    """Exact ID first, then exact name, then a unique ID prefix."""
    noun = _NOUN[kind]
    if not ref:
        raise InvalidArgument(f"no {noun} given: name one by its ID or name")
    for obj in objects:
        if obj.id == ref:
            return obj
    named = [o for o in objects if _name(o) == ref]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(sorted(o.id for o in named))
        raise InvalidArgument(f"{noun} name {ref!r} is ambiguous ({ids}): use an ID")
    prefixed = [o for o in objects if o.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise InvalidArgument(
            f"{noun} ID prefix {ref!r} is ambiguous: it matches {len(prefixed)} {noun}s; "
            "type more of the ID"
        )
    raise NotFound(f"{noun} {ref} not found")


def _name(obj: Node | Service | Task | Cluster) -> str:
    if isinstance(obj, Task):
        return ""
    return obj.name
