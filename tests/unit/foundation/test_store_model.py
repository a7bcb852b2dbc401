"""Random batches of creates, updates and deletes against a plain dict model: after every
batch, the store's tables and every index match what the model says."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pyswarmkit.api.errors import AlreadyExists, Conflict, NotFound, SwarmError
from pyswarmkit.api.objects import Annotations, Meta, Node, Service, ServiceSpec, Task, replace
from pyswarmkit.store import Change, EventBatch, MemoryStore

pytestmark = pytest.mark.unit

IDS = ("a", "b", "c", "d")
SERVICE_IDS = ("s1", "s2", "s3")
NAMES = ("web", "api", "db")
NODES = ("", "n1", "n2")

# One change as drawn: op, kind, id, fields, and whether to send a stale version. Most
# ops are "fit": create what is missing, else update (or delete) it, so that most
# batches commit; the rest are drawn blind and often refused.
op_specs = st.tuples(
    st.sampled_from(["fit", "fit", "fit", "fit", "fit-delete", "create", "update", "delete"]),
    st.sampled_from(["task", "task", "service", "node"]),
    st.integers(0, len(IDS) - 1),
    st.sampled_from(SERVICE_IDS),
    st.integers(0, 2),
    st.sampled_from(NODES),
    st.sampled_from(NAMES),
    st.integers(0, 9).map(lambda n: n == 0),
)


def _make(kind: str, obj_id: str, sid: str, slot: int, node: str, name: str) -> Any:
    if kind == "task":
        return Task(id=obj_id, service_id=sid, slot=slot, node_id=node)
    if kind == "service":
        return Service(id=obj_id, spec=ServiceSpec(annotations=Annotations(name=name)))
    return Node(id=obj_id)


def _bare(obj: Any) -> Any:
    return replace(obj, meta=Meta())


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore()
        self.batches: list[EventBatch] = []
        self.store.watch(self.batches.append)
        # (kind, id) -> (object without meta, version, created_at)
        self.model: dict[tuple[str, str], tuple[Any, int, float]] = {}
        self.index = 0

    def _expected(self, changes: list[Change]) -> type[SwarmError] | None:
        """Run the batch on a copy of the model; the first refusal, or None."""
        state = dict(self.model)
        touched: set[tuple[str, str]] = set()
        for ch in changes:
            kind = type(ch.obj).__name__.lower()
            key = (kind, ch.obj.id)
            current = state.get(key)
            if ch.op == "create":
                if current is not None:
                    return AlreadyExists
            else:
                if current is None:
                    return NotFound
                if key not in touched and current[1] != ch.obj.meta.version:
                    return Conflict
            touched.add(key)
            if ch.op == "delete":
                del state[key]
            else:
                state[key] = (_bare(ch.obj), 0, 0.0)
            if kind == "service" and ch.op != "delete":
                names = [o.name for (k, _), (o, _, _) in state.items() if k == "service"]
                if len(names) != len(set(names)):
                    return AlreadyExists
        return None

    @rule(specs=st.lists(op_specs, min_size=1, max_size=4))
    def batch(self, specs: list[tuple[Any, ...]]) -> None:
        changes: list[Change] = []
        shadow = {k: v[1] for k, v in self.model.items()}
        for op, kind, i, sid, slot, node, name, stale in specs:
            obj_id = (SERVICE_IDS if kind == "service" else IDS)[i % 3 if kind == "service" else i]
            exists = (kind, obj_id) in shadow
            if op.startswith("fit"):
                op = ("delete" if op == "fit-delete" else "update") if exists else "create"
            if op == "delete":
                shadow.pop((kind, obj_id), None)
            else:
                shadow.setdefault((kind, obj_id), 0)
            obj = _make(kind, obj_id, sid, slot, node, name)
            version = self.model[(kind, obj_id)][1] if (kind, obj_id) in self.model else 0
            if stale:
                version += 1
            changes.append(Change(op, replace(obj, meta=Meta(version=version))))
        self.index += 1
        now = float(self.index * 10)
        expected = self._expected(changes)
        before = len(self.batches)
        if expected is not None:
            with pytest.raises(expected):
                self.store.apply(changes, self.index, now)
            assert len(self.batches) == before
            return
        batch = self.store.apply(changes, self.index, now)
        assert self.batches[before:] == [batch]
        assert len(batch.events) == len(changes)
        for ch in changes:
            kind = type(ch.obj).__name__.lower()
            key = (kind, ch.obj.id)
            if ch.op == "delete":
                del self.model[key]
            else:
                created = self.model[key][2] if key in self.model else now
                self.model[key] = (_bare(ch.obj), self.index, created)

    @invariant()
    def tables_match(self) -> None:
        assert self.store.index == self.index
        for kind in ("task", "service", "node"):
            want = {i for (k, i) in self.model if k == kind}
            assert set(self.store.ids(kind)) == want  # type: ignore[arg-type]
            for obj_id in want:
                stored = self.store.get(kind, obj_id)  # type: ignore[arg-type]
                obj, version, created = self.model[(kind, obj_id)]
                assert stored is not None
                assert _bare(stored) == obj
                assert stored.meta.version == version
                assert stored.meta.created_at == created
                assert stored.meta.updated_at == version * 10.0

    @invariant()
    def indexes_match(self) -> None:
        tasks = [o for (k, _), (o, _, _) in self.model.items() if k == "task"]
        services = [o for (k, _), (o, _, _) in self.model.items() if k == "service"]
        for sid in SERVICE_IDS:
            got = {t.id for t in self.store.tasks_by_service(sid)}
            assert got == {t.id for t in tasks if t.service_id == sid}
            for slot in range(3):
                got = {t.id for t in self.store.tasks_by_slot(sid, slot)}
                assert got == {t.id for t in tasks if t.service_id == sid and t.slot == slot}
        for node in NODES[1:]:
            got = {t.id for t in self.store.tasks_by_node(node)}
            assert got == {t.id for t in tasks if t.node_id == node}
        for name in NAMES:
            owners = [s.id for s in services if s.name == name]
            found = self.store.service_by_name(name)
            assert (found.id if found else None) == (owners[0] if owners else None)
        # Index reads hand back the stored (newest) objects.
        for t in self.store.tasks_by_node("n1"):
            assert t is self.store.get_task(t.id)


StoreModel.TestCase.settings = settings(max_examples=100, stateful_step_count=15, deadline=None)
TestStoreModel = StoreModel.TestCase
