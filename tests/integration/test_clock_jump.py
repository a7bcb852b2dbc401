"""A wall-clock jump of an hour, forward or back, moves no duration: no node
goes DOWN, a restart delay takes its seconds, a stop grace period is kept.

The wall clock is made to jump by patching ``time.time`` itself (which
``pyswarmkit.clock.wall`` reads), so code reading it directly is caught too.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from helpers import alive, wait_until

from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    RestartPolicy,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
)
from pyswarmkit.api.states import NodeState, RestartCondition, TaskState
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.transport.bus import LocalBus
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration

HOUR = 3600.0
HEARTBEAT = 0.3


class WallClock:
    """``time.time`` with an offset a test can move."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.real = time.time

    def __call__(self) -> float:
        return self.real() + self.offset


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    clock = WallClock()
    monkeypatch.setattr(time, "time", clock)
    return clock


@pytest.fixture
def swarm(wall: WallClock) -> Iterator[tuple[SwarmNode, SwarmNode, ControlClient]]:
    """A manager and a worker, both running real processes."""
    tmp = Path(tempfile.mkdtemp(prefix="swk-"))
    bus = LocalBus()
    common = {"executor": "process", "tick_interval": 0.02, "heartbeat_period": HEARTBEAT}
    manager = SwarmNode(
        NodeConfig(
            state_dir=tmp / "m",
            hostname="manager",
            control_socket=str(tmp / "s.sock"),
            **common,  # type: ignore[arg-type]
        ),
        bus,
    )
    manager.start()
    worker = SwarmNode(
        NodeConfig(
            state_dir=tmp / "w",
            hostname="worker",
            manager_id=manager.node_id,
            **common,  # type: ignore[arg-type]
        ),
        bus,
    )
    worker.start()
    client = ControlClient(str(tmp / "s.sock"))
    try:
        yield manager, worker, client
    finally:
        client.close()
        worker.stop()
        manager.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def states(n: SwarmNode) -> dict[str, NodeState]:
    return {node.description.hostname: node.status.state for node in n.store.nodes()}


def spec(name: str, script: str, delay: float = 0.0, grace: float = 10.0) -> ServiceSpec:
    container = ContainerSpec(command=("sh",), args=("-c", script), stop_grace_period=grace)
    return ServiceSpec(
        annotations=Annotations(name=name),
        task=TaskSpec(
            container=container,
            restart=RestartPolicy(condition=RestartCondition.ANY, delay=delay),
        ),
        mode=ServiceMode(replicas=1),
    )


def tasks_of(n: SwarmNode, name: str) -> list[Task]:
    ids = {s.id for s in n.store.services() if s.name == name}
    return [t for t in n.store.tasks() if t.service_id in ids]


def gone(pid: int) -> bool:
    return not alive(pid)


def halfway(start: float, duration: float) -> None:
    """Wait until half of ``duration`` has passed since ``start`` (monotonic):
    the moment a test makes the wall clock jump, not a condition to wait for."""
    wait_until(lambda: time.monotonic() >= start + duration / 2, interval=0.01, what="halfway")


def test_no_node_goes_down_when_the_wall_clock_jumps(
    swarm: tuple[SwarmNode, SwarmNode, ControlClient], wall: WallClock
) -> None:
    manager, _, _ = swarm
    wait_until(
        lambda: states(manager) == {"manager": NodeState.READY, "worker": NodeState.READY},
        what="both nodes READY",
    )
    for offset in (HOUR, -HOUR, 0.0):
        wall.offset = offset
        # Watch for ten heartbeat periods, three times the expiry grace.
        until = time.monotonic() + 10 * HEARTBEAT
        while time.monotonic() < until:
            assert set(states(manager).values()) == {NodeState.READY}, (offset, states(manager))
            time.sleep(0.02)


def test_a_restart_delay_takes_its_seconds_across_jumps(
    swarm: tuple[SwarmNode, SwarmNode, ControlClient], wall: WallClock
) -> None:
    manager, _, client = swarm
    delay = 2.0
    client.call("service.create", {"spec": spec("flaky", "exit 1", delay=delay)})
    seen: set[str] = set()
    for offset in (HOUR, -HOUR):

        def failed() -> list[Task]:
            return [
                t
                for t in tasks_of(manager, "flaky")
                if t.id not in seen and t.status.state == TaskState.FAILED
            ]

        first = wait_until(failed, interval=0.01, what="a task failed")[0]
        failed_at = time.monotonic()
        seen.update(t.id for t in tasks_of(manager, "flaky"))
        # The clock jumps halfway through the delay, once the restart is planned.
        halfway(failed_at, delay)
        wall.offset = offset

        def replaced(slot: int = first.slot) -> list[Task]:
            # The replacement is started (not just created) once the delay is over.
            return [
                t
                for t in tasks_of(manager, "flaky")
                if t.id not in seen and t.slot == slot and t.status.state >= TaskState.STARTING
            ]

        wait_until(replaced, timeout=delay + 10, interval=0.01, what="the replacement started")
        took = time.monotonic() - failed_at
        assert delay - 0.2 <= took <= delay + 3.0, (offset, took)
        seen.update(t.id for t in tasks_of(manager, "flaky"))


def test_a_stop_grace_period_is_kept_across_jumps(
    swarm: tuple[SwarmNode, SwarmNode, ControlClient], wall: WallClock
) -> None:
    manager, _, client = swarm
    grace = 1.5
    stubborn = "trap '' TERM; while :; do sleep 0.1; done"
    for i, offset in enumerate((HOUR, -HOUR)):
        name = f"stubborn-{i}"
        client.call("service.create", {"spec": spec(name, stubborn, grace=grace)})

        def pid(name: str = name) -> int:
            live = [t for t in tasks_of(manager, name) if t.status.state == TaskState.RUNNING]
            return live[0].status.container.pid if live else 0

        task_pid = wait_until(pid, what="the task running")
        stopped_at = time.monotonic()
        client.call("service.remove", {"ref": name})
        # The clock jumps halfway through the grace period, once SIGTERM is sent.
        halfway(stopped_at, grace)
        wall.offset = offset
        wait_until(partial(gone, task_pid), timeout=grace + 10, interval=0.01, what="killed")
        took = time.monotonic() - stopped_at
        assert grace - 0.1 <= took <= grace + 3.0, (offset, took)
        wall.offset = 0.0
