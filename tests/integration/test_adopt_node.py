"""A worker node killed under its tasks and started again on its state dir
takes back the `sleep` processes it left: same pids, no second copy, reported
RUNNING again; what its dispatcher no longer assigns (a slot scaled away, a
slot rescheduled elsewhere while the node was DOWN) is stopped, and a task
that died meanwhile is reported failed and replaced, and a recorded task the
store no longer holds is stopped.

Nodes run in this process over the LocalBus: a manager (sim executor, drained
so every task lands on the worker) and a worker with the process executor. A
SIGKILL is imitated by stopping the worker with its agent's and executor's
stop steps disabled: its tasks are neither stopped nor told about.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import alive, children_of, wait_until

from pyswarmkit.actors.agent import AgentActor
from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    replace,
)
from pyswarmkit.api.states import NodeAvailability, NodeState, TaskState
from pyswarmkit.executor.process import start_time
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.transport.bus import LocalBus
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration

SLEEP = ["sleep", "1000"]


class Pair:
    def __init__(self, tmp: Path, heartbeat: float) -> None:
        self.tmp = tmp
        self.heartbeat = heartbeat
        self.bus = LocalBus()
        self.manager = SwarmNode(
            self._config("node-1", "sim", control=str(tmp / "s.sock")), self.bus
        )
        self.manager.start()
        self.store = self.manager.store
        self.client = ControlClient(str(tmp / "s.sock"))
        self.worker: SwarmNode | None = None
        self.start_worker()
        wait_until(lambda: self.ready() == 2, what="two READY nodes")
        self.set_availability("node-1", NodeAvailability.DRAIN)
        # Every sleep this test saw, to stop whatever happens.
        self.pids: set[int] = set()

    def _config(self, name: str, executor: str, control: str | None = None) -> NodeConfig:
        return NodeConfig(
            state_dir=self.tmp / name,
            hostname=name,
            control_socket=control,
            executor=executor,
            heartbeat_period=self.heartbeat,
            tick_interval=0.02,
            manager_id=None if control else self.manager.node_id,
        )

    def start_worker(self) -> None:
        self.worker = SwarmNode(self._config("node-2", "process"), self.bus)
        self.worker.start()

    def kill_worker(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert self.worker is not None
        with monkeypatch.context() as m:
            m.setattr(ExecutorActor, "on_stop", lambda self: None)
            m.setattr(AgentActor, "on_stop", lambda self: None)
            self.worker.stop()
        self.worker = None

    def ready(self) -> int:
        return sum(1 for n in self.store.nodes() if n.status.state == NodeState.READY)

    def node_state(self, name: str) -> NodeState:
        (node,) = [n for n in self.store.nodes() if n.name == name]
        return node.status.state

    def set_availability(self, name: str, availability: NodeAvailability) -> None:
        (node,) = [n for n in self.store.nodes() if n.name == name]
        spec = replace(node.spec, availability=availability)
        self.client.call(
            "node.update", {"ref": node.id, "version": node.meta.version, "spec": spec}
        )

    def create(self, name: str, replicas: int) -> None:
        spec = ServiceSpec(
            annotations=Annotations(name=name),
            task=TaskSpec(container=ContainerSpec(command=tuple(SLEEP[:1]), args=tuple(SLEEP[1:]))),
            mode=ServiceMode(replicas=replicas),
        )
        self.client.call("service.create", {"spec": spec})

    def scale(self, name: str, replicas: int) -> None:
        (service,) = [s for s in self.store.services() if s.name == name]
        spec = replace(service.spec, mode=ServiceMode(replicas=replicas))
        self.client.call(
            "service.update", {"ref": service.id, "version": service.meta.version, "spec": spec}
        )

    def running(self) -> list[Task]:
        """Tasks that run and are meant to."""
        return [
            t
            for t in self.store.tasks()
            if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING
        ]

    def sleeps(self) -> set[int]:
        """The live `sleep` processes this test process started (the worker's
        first run was this process, so they stay its children)."""
        found = {pid for pid, argv in children_of(os.getpid()) if argv == SLEEP}
        self.pids |= found
        return found

    def stop(self) -> None:
        self.client.close()
        if self.worker is not None:
            self.worker.stop()
        self.manager.stop()
        for pid in self.pids | self.sleeps():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


@contextlib.contextmanager
def pair(heartbeat: float) -> Iterator[Pair]:
    tmp = Path(tempfile.mkdtemp(prefix="swk-"))
    p = Pair(tmp, heartbeat)
    try:
        yield p
    finally:
        p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    # The "killed" worker's exit watcher still runs in this process and may
    # reap the child first (after a real SIGKILL, init would).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    wait_until(lambda: not alive(pid), what=f"pid {pid} gone")


def test_a_restarted_worker_adopts_its_tasks_and_stops_what_is_no_longer_its(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A long heartbeat: the worker is back well before it could be found DOWN.
    with pair(heartbeat=5.0) as p:
        p.create("naps", 3)
        wait_until(lambda: len(p.running()) == 3, what="3 running")
        first = {t.id: t.status.container.pid for t in p.running()}
        assert set(first.values()) == p.sleeps()

        p.kill_worker(monkeypatch)
        assert all(alive(pid) for pid in first.values()), "tasks outlive their node"
        # Meanwhile: one slot is scaled away, one task dies.
        p.scale("naps", 2)
        wait_until(
            lambda: len([t for t in p.store.tasks() if t.desired_state > TaskState.RUNNING]) == 1,
            what="one task told to go",
        )
        (gone_id,) = [t.id for t in p.store.tasks() if t.desired_state > TaskState.RUNNING]
        kept_id, died_id = sorted(tid for tid in first if tid != gone_id)
        kill(first[died_id])
        # And a task the store no longer knows at all (deleted while the node
        # was away), as the previous run recorded it.
        ghost = subprocess.Popen(SLEEP, start_new_session=True)
        p.pids.add(ghost.pid)
        record = p.tmp / "node-2" / "worker" / "tasks" / "ghost" / "pid"
        record.parent.mkdir()
        record.write_text(f"{ghost.pid} {start_time(ghost.pid)}\n")

        p.start_worker()
        wait_until(lambda: not alive(first[gone_id]), what="the scaled-away task stopped")
        wait_until(lambda: ghost.poll() is not None, what="the unknown task stopped")
        assert not record.parent.exists()

        def settled() -> bool:
            running = p.running()
            return len(running) == 2 and len(p.sleeps()) == 2

        wait_until(settled, what="two tasks running, one sleep each")
        kept = p.store.get_task(kept_id)
        assert kept is not None
        assert kept.status.state == TaskState.RUNNING
        assert kept.status.container.pid == first[kept_id]
        died = p.store.get_task(died_id)
        assert died is not None and died.status.state == TaskState.FAILED
        assert died.status.err == "task lost: its process ended while the node's agent was down"
        # The adopted sleep was not started again; the died one's slot got a new one.
        assert first[kept_id] in p.sleeps()
        assert Counter(t.slot for t in p.running()) == Counter({1: 1, 2: 1})


def test_a_worker_back_from_down_stops_the_tasks_rescheduled_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pair(heartbeat=0.3) as p:
        p.create("naps", 2)
        wait_until(lambda: len(p.running()) == 2, what="2 running")
        first = {t.id: t.status.container.pid for t in p.running()}
        p.sleeps()

        p.kill_worker(monkeypatch)
        p.set_availability("node-1", NodeAvailability.ACTIVE)
        wait_until(lambda: p.node_state("node-2") == NodeState.DOWN, what="node-2 DOWN")
        manager_id = p.manager.node_id
        wait_until(
            lambda: [t.node_id for t in p.running()] == [manager_id] * 2,
            what="both slots running on node-1",
        )
        assert all(alive(pid) for pid in first.values())

        p.start_worker()
        wait_until(lambda: p.node_state("node-2") == NodeState.READY, what="node-2 READY")
        wait_until(lambda: not p.sleeps(), what="the superseded sleeps stopped")
        assert not any(alive(pid) for pid in first.values())
        running = p.running()
        assert sorted(t.slot for t in running) == [1, 2]
        assert {t.node_id for t in running} == {manager_id}
