"""A manager's store goes through its Raft log: it survives a restart (from the
log, and from a snapshot), a damaged log stops the node with the file and
offset, and writes racing one another are built again rather than refused."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from nodes import running, spec

from pyswarmkit.actors.messages import Transact
from pyswarmkit.api.errors import FailedPrecondition, SwarmError
from pyswarmkit.api.objects import Service, replace
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.store.entries import batches_in
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="swk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(tmp: Path) -> tuple[SwarmNode, ControlClient]:
    node = SwarmNode(
        NodeConfig(
            state_dir=tmp / "n1",
            hostname="node-1",
            control_socket=str(tmp / "s.sock"),
            executor="sim",
            tick_interval=0.02,
        )
    )
    node.start()
    return node, ControlClient(str(tmp / "s.sock"))


def stop(node: SwarmNode, client: ControlClient) -> None:
    client.close()
    node.stop()


def test_a_restarted_manager_has_every_object_and_setting(tmp: Path) -> None:
    node, client = start(tmp)
    client.call("service.create", {"spec": spec("web", 3)})
    client.call("cluster.update", {"ref": "default", "heartbeat_period": 2.0, "task_history": 2})
    wait_until(lambda: running(node, "web") == 3, what="3 running")
    before = {t.id: t.status.state for t in node.store.tasks()}
    node_id, cluster = node.node_id, node.store.clusters()[0]
    index = node.store.index
    stop(node, client)

    node, client = start(tmp)
    try:
        assert node.node_id == node_id
        again = node.store.clusters()[0]
        assert again.id == cluster.id
        assert again.root_ca == cluster.root_ca and again.join_tokens == cluster.join_tokens
        assert again.spec.dispatcher.heartbeat_period == 2.0
        assert again.spec.orchestration.task_history_retention_limit == 2
        assert node.store.index >= index
        assert {t.id for t in node.store.tasks()} >= set(before)
        wait_until(lambda: running(node, "web") == 3, what="3 running again")
        # The same tasks: none replaced by a new one.
        assert {t.id for t in node.store.tasks()} == set(before)
    finally:
        stop(node, client)


def test_a_snapshot_replaces_the_log_and_restores_the_store(tmp: Path) -> None:
    node, client = start(tmp)
    client.call("cluster.update", {"ref": "default", "snapshot_interval": 20})
    for i in range(30):
        client.call("service.create", {"spec": spec(f"s{i}", 1)})
    wait_until(lambda: sum(running(node, f"s{i}") for i in range(30)) == 30, what="30 running")
    snaps = sorted((tmp / "n1" / "raft" / "snap").glob("*.snap"))
    assert snaps, "no snapshot taken"
    services = {s.id: s.spec for s in node.store.services()}
    stop(node, client)

    node, client = start(tmp)
    try:
        assert {s.id: s.spec for s in node.store.services()} == services
        assert len(node.store.tasks()) == 30
    finally:
        stop(node, client)


def test_bad_snapshot_intervals_are_refused(tmp: Path) -> None:
    node, client = start(tmp)
    try:
        for bad in (0, -5, "often"):
            with pytest.raises(SwarmError, match=r"snapshot.interval"):
                client.call("cluster.update", {"ref": "default", "snapshot_interval": bad})
        assert node.store.clusters()[0].spec.raft.snapshot_interval == 10_000
    finally:
        stop(node, client)


def wal_files(tmp: Path) -> list[Path]:
    return sorted((tmp / "n1" / "raft" / "wal").glob("*.wal"))


def test_a_log_damaged_in_the_middle_stops_the_node_naming_file_and_offset(tmp: Path) -> None:
    node, client = start(tmp)
    for i in range(5):
        client.call("service.create", {"spec": spec(f"s{i}", 0)})
    stop(node, client)
    wal = wal_files(tmp)[-1]
    data = bytearray(wal.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    wal.write_bytes(bytes(data))

    with pytest.raises(FailedPrecondition, match=rf"{wal}.* at offset \d+"):
        start(tmp)
    # Nothing was cut or rewritten: the damage is still there for a person to see.
    assert wal.read_bytes() == bytes(data)


def test_a_torn_last_write_is_cut_and_the_rest_is_kept(tmp: Path) -> None:
    node, client = start(tmp)
    client.call("service.create", {"spec": spec("kept", 0)})
    stop(node, client)
    wal = wal_files(tmp)[-1]
    size = wal.stat().st_size
    with wal.open("ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02")  # the start of a record a crash cut short
    node, client = start(tmp)
    try:
        assert node.store.service_by_name("kept") is not None
        assert wal.stat().st_size >= size
    finally:
        stop(node, client)


def test_racing_writes_to_one_object_are_built_again_not_refused(tmp: Path) -> None:
    """Twenty read-modify-writes of one service, all sent before any commits:
    each is built from the state the one before it left, none is lost."""
    node, client = start(tmp)
    try:
        client.call("service.create", {"spec": spec("counter", 0)})
        outcomes: list[SwarmError | None] = []
        done = threading.Event()
        n = 20

        def build(store: MemoryStore) -> list[Change]:
            svc = store.service_by_name("counter")
            assert svc is not None
            mode = replace(svc.spec.mode, replicas=svc.spec.mode.replicas + 1)
            return [Change("update", replace(svc, spec=replace(svc.spec, mode=mode)))]

        def on_done(batch: EventBatch | None, err: SwarmError | None) -> None:
            outcomes.append(err)
            if len(outcomes) == n:
                done.set()

        for _ in range(n):
            assert node.registry.tell("store", Transact(build, 0.0, on_done))
        assert done.wait(30), f"only {len(outcomes)} of {n} answered"
        assert outcomes == [None] * n
        svc: Any = node.store.service_by_name("counter")
        assert isinstance(svc, Service) and svc.spec.mode.replicas == n
    finally:
        stop(node, client)


def test_writes_arriving_together_share_entries_yet_each_has_its_own_outcome(
    tmp: Path,
) -> None:
    """Many writes sent at once reach the log in a few group entries; one
    refused (a name already taken) fails alone, the rest commit, and the log
    replayed after a restart gives the same store."""
    node, client = start(tmp)
    try:
        n = 300
        outcomes: dict[int, SwarmError | None] = {}
        done = threading.Event()

        def creating(i: int) -> Any:
            name = "dup" if i % 100 == 7 else f"s{i}"
            svc = Service(id=f"id{i:04d}", spec=spec(name, 0))
            return lambda store: [Change("create", svc)]

        def answer(i: int) -> Any:
            def on_done(batch: EventBatch | None, err: SwarmError | None) -> None:
                outcomes[i] = err
                if len(outcomes) == n:
                    done.set()

            return on_done

        assert node.raft is not None
        first = node.raft.core.log.last_index + 1
        for i in range(n):
            assert node.registry.tell("store", Transact(creating(i), 0.0, answer(i)))
        assert done.wait(30), f"only {len(outcomes)} of {n} answered"
        failed = sorted(i for i, err in outcomes.items() if err is not None)
        assert failed == [107, 207], failed
        assert all("already exists" in str(outcomes[i]) for i in failed)
        last = node.raft.core.log.last_index
        grouped = [e for e in node.raft.core.log.slice(first, last + 1) if batches_in(e.data) > 1]
        assert grouped, "no two writes shared an entry"
        assert last - first + 1 < n
        kept = {s.id for s in node.store.services()}
    finally:
        stop(node, client)
    node, client = start(tmp)
    try:
        assert {s.id for s in node.store.services()} == kept
        assert len([i for i in kept if i.startswith("id")]) == n - 2
    finally:
        stop(node, client)
