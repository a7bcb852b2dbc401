"""The secrets and configs a node is sent: exactly what its tasks meant to run
need, whatever order task changes, sessions and resyncs come in."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api.objects import (
    Annotations,
    Config,
    ConfigReference,
    ConfigSpec,
    ContainerSpec,
    Secret,
    SecretReference,
    SecretSpec,
    Task,
    TaskSpec,
    TaskStatus,
    replace,
)
from pyswarmkit.api.protocol import Assignments
from pyswarmkit.api.states import TaskState
from pyswarmkit.dispatcher.core import Dispatcher, Outgoing, assignable
from pyswarmkit.dispatcher.deps import Held, needs
from pyswarmkit.store import Change, MemoryStore

pytestmark = pytest.mark.unit

NODES = ("n1", "n2")
TASKS = ("t0", "t1", "t2")
STATES = (TaskState.ASSIGNED, TaskState.RUNNING, TaskState.FAILED)
DESIRED = (TaskState.RUNNING, TaskState.SHUTDOWN)
SECRETS = ("s1", "s2", "s3")


def _secret(sid: str) -> Secret:
    return Secret(id=sid, spec=SecretSpec(Annotations(name=f"name-{sid}"), f"data-{sid}".encode()))


def _spec(tid: str, version: int) -> TaskSpec:
    # A task's spec is fixed by its ID and version, as in the store.
    picked = [s for i, s in enumerate(SECRETS) if (int(tid[1:]) + version + i) % 2 == 0]
    refs = tuple(SecretReference(secret_id=s, secret_name=f"name-{s}", target=s) for s in picked)
    configs = (ConfigReference(config_id="c1", config_name="conf", target="/c"),) if version else ()
    return TaskSpec(container=ContainerSpec(secrets=refs, configs=configs))


class Node:
    """What an agent holds, applying the sets as the agent does."""

    def __init__(self) -> None:
        self.secrets: dict[str, Secret] = {}
        self.configs: set[str] = set()
        self.seq = 0

    def apply(self, msg: Assignments) -> None:
        if msg.full:
            self.secrets, self.configs = {}, set()
        else:
            assert msg.applies_to == self.seq
        self.seq = msg.results_in
        for sid in msg.removed_secrets:
            del self.secrets[sid]
        for cid in msg.removed_configs:
            self.configs.remove(cid)
        self.secrets.update((s.id, s) for s in msg.secrets)
        self.configs.update(c.id for c in msg.configs)
        for t in msg.tasks:
            for ref in needs(t):
                held = self.secrets if ref[0] == "secret" else self.configs
                assert ref[1] in held, f"{t.id} arrived before {ref}"


op = st.one_of(
    st.tuples(
        st.just("write"),
        st.sampled_from(TASKS),
        st.sampled_from(("", *NODES)),
        st.sampled_from(STATES),
        st.sampled_from(DESIRED),
        st.integers(0, 2),
    ),
    st.tuples(st.just("delete"), st.sampled_from(TASKS)),
    st.tuples(st.just("resync"), st.sampled_from(NODES)),
    st.tuples(st.just("tick")),
)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(st.lists(op, max_size=50))
def test_a_node_holds_exactly_what_its_running_tasks_need(ops: list[tuple[object, ...]]) -> None:
    store = MemoryStore()
    config = Config(id="c1", spec=ConfigSpec(Annotations(name="conf"), b"x=1"))
    store.apply([Change("create", _secret(s)) for s in SECRETS] + [Change("create", config)], 1, 0)
    counter = itertools.count(1)
    d = Dispatcher(id_gen=lambda: f"session-{next(counter)}")
    nodes = {n: Node() for n in NODES}
    for n in NODES:
        d.open_session(n, 0.0)

    def deliver(out: list[Outgoing]) -> None:
        for o in out:
            assert isinstance(o.body, Assignments)
            nodes[o.node_id].apply(o.body)

    for step in ops:
        changes: list[Change] = []
        if step[0] == "write":
            _, tid, node, state, desired, version = step
            assert isinstance(tid, str) and isinstance(version, int)
            old = store.get_task(tid)
            # A task keeps its node and spec; a new version is a new task.
            if old is not None and old.spec_version != version:
                changes.append(Change("delete", old))
                old = None
            new = Task(
                id=tid,
                node_id=str(node) if old is None else old.node_id,
                spec=_spec(tid, version),
                spec_version=version,
                desired_state=TaskState(desired),  # type: ignore[call-overload]
                status=TaskStatus(state=TaskState(state)),  # type: ignore[call-overload]
            )
            if old is None:
                changes.append(Change("create", new))
            else:
                changes.append(Change("update", replace(new, meta=old.meta)))
        elif step[0] == "delete":
            old = store.get_task(str(step[1]))
            if old is not None:
                changes = [Change("delete", old)]
        elif step[0] == "resync":
            session = d.sessions[str(step[1])]
            session.needs_full = True
            d._dirty_nodes.add(session.node_id)
        else:
            deliver(d.assignments(store))
        for change in changes:
            d.observe(store.apply([change], store.index + 1, 1.0))
    deliver(d.assignments(store))
    for n, held in nodes.items():
        wanted: set[tuple[str, str]] = set()
        for t in store.tasks_by_node(n):
            if assignable(t):
                wanted |= needs(t)
        assert {("secret", s) for s in held.secrets} | {("config", c) for c in held.configs} == (
            wanted
        )
        for s in held.secrets.values():
            assert s.spec.data == f"data-{s.id}".encode()


def test_held_counts_every_task_that_needs_an_object() -> None:
    held = Held()
    a = frozenset({("secret", "s1")})
    ab = frozenset({("secret", "s1"), ("secret", "s2")})
    assert held.set("t1", a) == ([("secret", "s1")], [])
    assert held.set("t2", ab) == ([("secret", "s2")], [])
    assert held.drop("t1") == []
    assert sorted(held.drop("t2")) == [("secret", "s1"), ("secret", "s2")]
    assert not held.count and not held.by_task


def test_a_task_meant_to_stop_needs_nothing() -> None:
    ref = SecretReference(secret_id="s1", secret_name="a", target="a")
    spec = TaskSpec(container=ContainerSpec(secrets=(ref,)))
    running = Task(id="t", spec=spec, desired_state=TaskState.RUNNING)
    assert needs(running) == {("secret", "s1")}
    assert needs(replace(running, desired_state=TaskState.SHUTDOWN)) == frozenset()


def test_assignments_never_show_secret_data_when_printed() -> None:
    msg = Assignments("s", True, 0, 1, (), (), (_secret("s1"),))
    assert b"data-s1".decode() not in repr(msg)
    assert "data-s1" not in repr(_secret("s1"))
