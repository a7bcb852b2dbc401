"""The in-memory store: tables of immutable objects, secondary indexes, and
atomic application of committed change batches.

Writes never happen here directly: callers build a batch of changes (see
``Tx``), a proposer commits it (locally, or through Raft), and every manager
calls ``apply`` with the batch and its log index. ``apply`` is deterministic —
the same batches in the same order give the same state everywhere — so
validation (versions, uniqueness) happens here, at apply time.

Reads may come from any thread: a lock guards the tables, and since values are
immutable a reader can keep what it got after the lock is released.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from pyswarmkit.api.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, SwarmError
from pyswarmkit.api.objects import (
    KIND_OF,
    Cluster,
    Config,
    Kind,
    Meta,
    Node,
    Secret,
    Service,
    StoreObject,
    Task,
    replace,
)

log = logging.getLogger(__name__)

Op = Literal["create", "update", "delete"]
OPS = ("create", "update", "delete")
KINDS: tuple[Kind, ...] = ("node", "service", "task", "cluster", "secret", "config")
# The kinds whose names are unique among their own kind.
NAMED: tuple[Kind, ...] = ("service", "secret", "config")
T = TypeVar("T", Node, Service, Task, Cluster, Secret, Config)


@dataclass(frozen=True, slots=True)
class Change:
    """One write of a batch. For update and delete, ``obj.meta.version`` is the
    version the writer read; the write is refused if the stored one is newer."""

    op: Op
    obj: StoreObject


@dataclass(frozen=True, slots=True)
class Event:
    op: Op
    kind: Kind
    obj: StoreObject
    old: StoreObject | None


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Everything one committed batch changed; the batch is the commit marker."""

    index: int
    events: tuple[Event, ...]


# Marks "not looked up yet" where None means "deleted".
_ABSENT: Any = object()


def _with_meta(obj: Any, meta: Meta) -> Any:
    return replace(obj, meta=meta)


Watcher = Callable[[EventBatch], None]


class _Reading:
    __slots__ = ("_lock", "_store")

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._lock = store._lock

    def __enter__(self) -> MemoryStore:
        self._lock.acquire()
        return self._store

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._reading = _Reading(self)
        self._tables: dict[Kind, dict[str, StoreObject]] = {k: {} for k in KINDS}
        self._tasks_by_service: dict[str, set[str]] = {}
        self._tasks_by_node: dict[str, set[str]] = {}
        self._tasks_by_slot: dict[tuple[str, int], set[str]] = {}
        # Name to ID, per kind in NAMED.
        self._by_name: dict[Kind, dict[str, str]] = {k: {} for k in NAMED}
        self._watchers: list[Watcher] = []
        self.index = 0

    # --- reads -------------------------------------------------------------

    def reading(self) -> _Reading:
        """Hold the lock across several reads for one consistent view
        (``with store.reading() as s``); a plain class rather than a
        generator, as every write is built under it."""
        return self._reading

    def get(self, kind: Kind, obj_id: str) -> StoreObject | None:
        with self._lock:
            return self._tables[kind].get(obj_id)

    def get_node(self, obj_id: str) -> Node | None:
        return cast(Node | None, self.get("node", obj_id))

    def get_service(self, obj_id: str) -> Service | None:
        return cast(Service | None, self.get("service", obj_id))

    def get_task(self, obj_id: str) -> Task | None:
        return cast(Task | None, self.get("task", obj_id))

    def get_tasks(self, ids: Iterable[str]) -> dict[str, Task]:
        """The tasks of ``ids`` that exist, read under one lock."""
        with self._lock:
            table = self._tables["task"]
            found = {i: table.get(i) for i in ids}
        return {i: cast(Task, t) for i, t in found.items() if t is not None}

    def objects(self, kind: Kind) -> list[StoreObject]:
        with self._lock:
            return list(self._tables[kind].values())

    def nodes(self) -> list[Node]:
        return cast(list[Node], self.objects("node"))

    def services(self) -> list[Service]:
        return cast(list[Service], self.objects("service"))

    def tasks(self) -> list[Task]:
        return cast(list[Task], self.objects("task"))

    def clusters(self) -> list[Cluster]:
        return cast(list[Cluster], self.objects("cluster"))

    def count(self, kind: Kind) -> int:
        with self._lock:
            return len(self._tables[kind])

    def ids(self, kind: Kind) -> list[str]:
        with self._lock:
            return list(self._tables[kind])

    def _tasks_in(self, ids: set[str] | None) -> list[Task]:
        if not ids:
            return []
        table = self._tables["task"]
        return [cast(Task, table[i]) for i in ids]

    def tasks_by_service(self, service_id: str) -> list[Task]:
        with self._lock:
            return self._tasks_in(self._tasks_by_service.get(service_id))

    def tasks_by_node(self, node_id: str) -> list[Task]:
        with self._lock:
            return self._tasks_in(self._tasks_by_node.get(node_id))

    def tasks_by_slot(self, service_id: str, slot: int) -> list[Task]:
        with self._lock:
            return self._tasks_in(self._tasks_by_slot.get((service_id, slot)))

    def service_by_name(self, name: str) -> Service | None:
        return cast(Service | None, self.by_name("service", name))

    def by_name(self, kind: Kind, name: str) -> StoreObject | None:
        """The object of ``kind`` (one of NAMED) named ``name``."""
        with self._lock:
            obj_id = self._by_name[kind].get(name)
            return self._tables[kind][obj_id] if obj_id else None

    def secrets(self) -> list[Secret]:
        return cast(list[Secret], self.objects("secret"))

    def configs(self) -> list[Config]:
        return cast(list[Config], self.objects("config"))

    def nodes_by_name(self, name: str) -> list[Node]:
        with self._lock:
            return [
                n for n in cast(Iterable[Node], self._tables["node"].values()) if n.name == name
            ]

    # --- watch -------------------------------------------------------------

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher`` with every committed batch, in commit order.

        Watchers run on the applying thread, after the lock is released, so
        they must only hand the batch on (e.g. ``actor_ref.tell``).
        Returns a function that cancels the watch."""
        with self._lock:
            self._watchers.append(watcher)

        def cancel() -> None:
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

        return cancel

    # --- snapshots ---------------------------------------------------------

    def dump(self) -> tuple[int, dict[Kind, list[StoreObject]]]:
        """Every object and the index they are at, as one consistent view."""
        with self._lock:
            return self.index, {k: list(self._tables[k].values()) for k in KINDS}

    def restore(self, index: int, objects: dict[Kind, list[StoreObject]]) -> EventBatch:
        """Become exactly ``objects`` at ``index`` (a Raft snapshot). Watchers
        get one batch saying what changed, so what they derived stays true."""
        with self._lock:
            old = self._tables
            events: list[Event] = []
            for kind in KINDS:
                fresh = {o.id: o for o in objects.get(kind, [])}
                for obj_id, obj in old[kind].items():
                    if obj_id not in fresh:
                        events.append(Event("delete", kind, obj, obj))
                for obj_id, obj in fresh.items():
                    was = old[kind].get(obj_id)
                    if was is None:
                        events.append(Event("create", kind, obj, None))
                    elif was is not obj and was != obj:
                        events.append(Event("update", kind, obj, was))
                old[kind] = fresh
            self._tasks_by_service.clear()
            self._tasks_by_node.clear()
            self._tasks_by_slot.clear()
            for names in self._by_name.values():
                names.clear()
            for kind in KINDS:
                for obj in old[kind].values():
                    self._index(kind, obj)
            self.index = index
            batch = EventBatch(index, tuple(events))
            watchers = list(self._watchers)
        _tell(watchers, batch, "snapshot at")
        return batch

    # --- writes ------------------------------------------------------------

    def apply(self, changes: Sequence[Change], index: int, now: float) -> EventBatch:
        """Apply one committed batch at log ``index``, all or nothing.

        Raises Conflict, AlreadyExists or NotFound (and changes nothing) when a
        change no longer fits the state; the batch still consumes ``index``."""
        with self._lock:
            try:
                self._validate(changes)
            finally:
                self.index = max(self.index, index)
            events = tuple(self._apply_one(ch, index, now) for ch in changes)
            batch = EventBatch(index, events)
            watchers = list(self._watchers)
        _tell(watchers, batch, "batch")
        return batch

    def apply_group(
        self, batches: Sequence[tuple[Sequence[Change], float]], index: int
    ) -> list[EventBatch | SwarmError]:
        """Apply several independent batches that committed together at log
        ``index``, in order, each all or nothing: for each, its EventBatch or
        the error that refused it. Watchers get one batch holding the events
        of all that applied (none if none did)."""
        results: list[EventBatch | SwarmError] = []
        events: list[Event] = []
        with self._lock:
            self.index = max(self.index, index)
            for changes, now in batches:
                try:
                    self._validate(changes)
                except SwarmError as err:
                    results.append(err)
                    continue
                done = tuple(self._apply_one(ch, index, now) for ch in changes)
                events.extend(done)
                results.append(EventBatch(index, done))
            watchers = list(self._watchers) if events else []
        if watchers:
            _tell(watchers, EventBatch(index, tuple(events)), "batch")
        return results

    def _validate(self, changes: Sequence[Change]) -> None:
        # Tracks ids and names as they would be after each change, so a batch
        # may create then update the same object, or free a name and reuse it.
        seen: dict[tuple[Kind, str], StoreObject | None] = {}
        names: dict[tuple[Kind, str], str | None] = {}
        for ch in changes:
            # A malformed batch is refused whole, the same way on every
            # manager, before anything is touched.
            kind = KIND_OF.get(type(ch.obj)) if isinstance(ch, Change) else None
            if kind is None or ch.op not in OPS:
                raise InvalidArgument(f"not a store change: {str(ch)[:200]}")
            obj = ch.obj
            key = (kind, obj.id)
            current = seen.get(key, _ABSENT)
            fresh = current is _ABSENT
            if fresh:
                current = self._tables[kind].get(obj.id)
            if ch.op == "create":
                if current is not None:
                    raise AlreadyExists(f"{kind} {obj.id} already exists")
                seen[key] = obj
            else:
                if current is None:
                    raise NotFound(f"{kind} {obj.id} not found")
                if fresh and current.meta.version != obj.meta.version:
                    raise Conflict(
                        f"{kind} {obj.id} changed since it was read "
                        f"(version {obj.meta.version}, now {current.meta.version})"
                    )
                seen[key] = obj if ch.op == "update" else None
            if kind in NAMED:
                self._check_name(kind, ch, obj, current, names)

    def _check_name(
        self,
        kind: Kind,
        ch: Change,
        obj: Any,
        current: Any,
        names: dict[tuple[Kind, str], str | None],
    ) -> None:
        if current is not None and (ch.op == "delete" or current.name != obj.name):
            names[(kind, current.name)] = None
        if ch.op == "delete":
            return
        key = (kind, obj.name)
        owner = names[key] if key in names else self._by_name[kind].get(obj.name)
        if owner is not None and owner != obj.id:
            raise AlreadyExists(f"a {kind} named {obj.name!r} already exists")
        names[key] = obj.id

    def _apply_one(self, ch: Change, index: int, now: float) -> Event:
        obj = ch.obj
        kind = KIND_OF[type(obj)]
        table = self._tables[kind]
        old = table.get(obj.id)
        if ch.op == "delete":
            assert old is not None
            del table[obj.id]
            self._unindex(kind, old)
            return Event("delete", kind, old, old)
        if old is None:
            meta = Meta(index, now, now, index)
        else:
            meta = Meta(index, old.meta.created_at, now, old.meta.created_index)
        new = replace(obj, meta=meta)
        table[obj.id] = new
        if old is None:
            self._index(kind, new)
        elif not _same_index_keys(kind, old, new):
            self._unindex(kind, old)
            self._index(kind, new)
        return Event(ch.op, kind, new, old)

    def _index(self, kind: Kind, obj: StoreObject) -> None:
        if kind == "task":
            t = cast(Task, obj)
            if t.service_id:
                self._tasks_by_service.setdefault(t.service_id, set()).add(t.id)
                self._tasks_by_slot.setdefault((t.service_id, t.slot), set()).add(t.id)
            if t.node_id:
                self._tasks_by_node.setdefault(t.node_id, set()).add(t.id)
        elif kind in NAMED:
            self._by_name[kind][cast(Any, obj).name] = obj.id

    def _unindex(self, kind: Kind, obj: StoreObject) -> None:
        if kind == "task":
            t = cast(Task, obj)
            if t.service_id:
                _discard(self._tasks_by_service, t.service_id, t.id)
                _discard(self._tasks_by_slot, (t.service_id, t.slot), t.id)
            if t.node_id:
                _discard(self._tasks_by_node, t.node_id, t.id)
        elif kind in NAMED:
            self._by_name[kind].pop(cast(Any, obj).name, None)


def _tell(watchers: list[Watcher], batch: EventBatch, what: str) -> None:
    for w in watchers:
        # The batch is committed whatever a watcher does: one that raises
        # must neither fail the write nor starve the watchers after it.
        try:
            w(batch)
        except Exception:
            log.exception("a store watcher failed on the %s %d", what, batch.index)


def _same_index_keys(kind: Kind, old: StoreObject, new: StoreObject) -> bool:
    """Whether an update leaves the object's index entries as they are (most
    task updates only change a status), so re-indexing can be skipped."""
    if kind == "task":
        a, b = cast(Task, old), cast(Task, new)
        return a.node_id == b.node_id and a.service_id == b.service_id and a.slot == b.slot
    if kind in NAMED:
        return bool(cast(Any, old).name == cast(Any, new).name)
    return True


def _discard(index: dict[Any, set[str]], key: Any, obj_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(obj_id)
        if not ids:
            del index[key]


class Tx:
    """Collects changes for one batch; reads see the batch's own writes first."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.changes: list[Change] = []
        self._overlay: dict[tuple[Kind, str], StoreObject | None] = {}

    def get(self, kind: Kind, obj_id: str) -> StoreObject | None:
        key = (kind, obj_id)
        if key in self._overlay:
            return self._overlay[key]
        return self.store.get(kind, obj_id)

    def create(self, obj: StoreObject) -> None:
        self._record(Change("create", obj))

    def update(self, obj: StoreObject) -> None:
        self._record(Change("update", obj))

    def delete(self, obj: StoreObject) -> None:
        self._record(Change("delete", obj))

    def _record(self, ch: Change) -> None:
        self.changes.append(ch)
        key = (KIND_OF[type(ch.obj)], ch.obj.id)
        self._overlay[key] = None if ch.op == "delete" else ch.obj

    def __len__(self) -> int:
        return len(self.changes)
