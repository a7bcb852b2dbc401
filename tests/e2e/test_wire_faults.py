"""Faults between real swarmd processes: a worker cut off from its manager, an
agent reporting a task of another node over CurveZMQ, a worker whose state dir
was deleted, and a join address where nothing listens."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
from cluster import Swarm, free_port, node_status, running_tasks, task_pids
from helpers import alive, tool, wait_until

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Deliver
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.objects import NodeDescription, TaskStatus
from pyswarmkit.api.protocol import (
    Error,
    Heartbeat,
    HeartbeatAck,
    Register,
    Registered,
    StatusUpdate,
    UpdateTaskStatus,
)
from pyswarmkit.api.states import TaskState
from pyswarmkit.ca import files
from pyswarmkit.network import load_upstream
from pyswarmkit.transport.bus import Envelope
from pyswarmkit.transport.zmq_bus import CurveKeys, ZmqBus

pytestmark = pytest.mark.e2e

# The grace: three heartbeats of 1 s.
DOWN_AFTER = 3.0


def inspect(swarm: Swarm, task_id: str) -> dict[str, str]:
    fields = {}
    for line in swarm.ctl("task", "inspect", task_id).splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith(" "):
            fields[key.strip()] = value.strip()
    return fields


def node_ids(swarm: Swarm) -> dict[str, str]:
    """Node id -> status, for every node `node ls` lists."""
    return {
        cols[0]: cols[3]
        for cols in (line.split() for line in swarm.ctl("node", "ls").splitlines()[2:])
        if len(cols) > 3
    }


def no_slot_twice(swarm: Swarm, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        slots = [slot for _, slot, _ in running_tasks(swarm)]
        assert len(slots) == len(set(slots)), slots
        time.sleep(0.2)


def test_a_worker_and_then_its_manager_frozen_past_the_down_time(swarm: Swarm) -> None:
    swarm.init()
    pids = swarm.worker_with_two_of_four()
    (victim, victim_pid), (kept, kept_pid) = sorted(pids.items())
    worker = swarm.procs["node-2"]

    # Cut off: its swarmd frozen for 1.5 times the time to DOWN.
    worker.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_until(lambda: node_status(swarm, "node-2") == "DOWN", timeout=15, what="DOWN")
        wait_until(
            lambda: sorted(node for _, _, node in running_tasks(swarm)).count("node-1") == 4,
            timeout=15,
            what="node-2's tasks replaced on node-1",
        )
        # A task ends while its node cannot say so.
        signal_pid(victim_pid, signal.SIGKILL)
        wait_until(lambda: not alive(victim_pid), what="the task process to end")
        while time.monotonic() - stopped_at < 1.5 * DOWN_AFTER:
            assert alive(kept_pid), "a task of a node cut off from its manager ended"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGCONT)
    assert alive(kept_pid), "a task of a node cut off from its manager ended"

    wait_until(lambda: node_status(swarm, "node-2") == "READY", timeout=15, what="READY again")
    # What it missed reaches the store: that the task ended, and how.
    wait_until(
        lambda: inspect(swarm, victim).get("Exit Code") == "137",
        timeout=15,
        what="the exit of the killed task in the store",
    )
    assert not inspect(swarm, victim)["Last State"].startswith("RUNNING")
    # Its superseded task is stopped, and no slot runs twice.
    wait_until(lambda: not alive(kept_pid), timeout=15, what="the superseded task stopped")
    wait_until(
        lambda: inspect(swarm, kept)["Last State"].startswith("SHUTDOWN"),
        timeout=15,
        what="the superseded task SHUTDOWN in the store",
    )
    no_slot_twice(swarm, 2)
    assert len(running_tasks(swarm)) == 4
    assert worker.poll() is None

    # Now the manager is frozen as long: the worker cannot reach it, keeps its
    # tasks, and says again what the manager missed; no node went silent, so
    # none goes DOWN and no task is replaced.
    swarm.ctl("service", "update", "web", "--replicas", "6")
    wait_until(
        lambda: len(task_pids(swarm, "node-2")) == 2 and len(running_tasks(swarm)) == 6,
        timeout=30,
        what="six running, two on node-2",
    )
    (victim, victim_pid), (kept, kept_pid) = sorted(task_pids(swarm, "node-2").items())
    untouched = {t for t, _, _ in running_tasks(swarm)} - {victim}
    manager = swarm.procs["node-1"]
    manager.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        signal_pid(victim_pid, signal.SIGKILL)
        while time.monotonic() - stopped_at < 1.5 * DOWN_AFTER:
            assert alive(kept_pid), "a task of a node cut off from its manager ended"
            time.sleep(0.1)
    finally:
        manager.send_signal(signal.SIGCONT)
    wait_until(
        lambda: inspect(swarm, victim).get("Exit Code") == "137",
        timeout=15,
        what="the exit of the killed task in the store",
    )
    assert inspect(swarm, victim)["Last State"].startswith("FAILED")
    no_slot_twice(swarm, 1)
    assert untouched <= {t for t, _, _ in running_tasks(swarm)}, "tasks were replaced"
    assert "DOWN" not in [r[3] for r in swarm.rows().values()]
    assert "heartbeat failure" not in swarm.ctl("node", "inspect", "node-2")
    assert alive(kept_pid)
    assert "the dispatcher did not run for" in swarm.log("node-1")


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class Inbox(GuardedActor):
    """What the manager sends this node's agent."""

    name = "agent"

    def __init__(self, got: list[Any], lock: threading.Lock) -> None:
        super().__init__()
        self.got = got
        self.lock = lock

    def handle(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            with self.lock:
                self.got.append(message.envelope.body)
        return None


def test_a_report_about_another_nodes_task_is_refused_over_the_wire(swarm: Swarm) -> None:
    swarm.init()
    token, _ = swarm.tokens()
    swarm.join_workers(token, "node-2")
    swarm.sleepers("web", 2)
    wait_until(
        lambda: sorted(node for _, _, node in running_tasks(swarm)) == ["node-1", "node-2"],
        timeout=30,
        what="one task on each node",
    )
    target = next(tid for tid, _, node in running_tasks(swarm) if node == "node-1")
    # Its swarmd stops; the test speaks with its key and certificate.
    worker = swarm.procs["node-2"]
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    state_dir = swarm.root / "node-2"
    identity = files.load_identity(state_dir, clock.wall())
    upstream = load_upstream(state_dir)
    assert identity is not None and upstream is not None
    me, manager = identity.node_id, upstream.manager_id
    before = inspect(swarm, target)

    got: list[Any] = []
    lock = threading.Lock()
    inbox = Inbox.start(got, lock)
    registry = Registry(me)
    registry.add("agent", inbox)
    bus = ZmqBus(me, CurveKeys(identity.keypair.public, identity.keypair.secret))
    bus.attach(registry)
    bus.start()
    try:
        bus.dial(manager, upstream.addr, upstream.server_key)
        bus.set_default_route(manager)

        def ask(body: Any) -> Any:
            return bus.request(Envelope(me, manager, "dispatcher", body), 10).result(15)

        registered = ask(Register(7, NodeDescription(hostname="node-2")))
        assert isinstance(registered, Registered)
        session = registered.session_id
        forged = TaskStatus(
            timestamp=clock.wall(), state=TaskState.FAILED, message="forged", err="forged"
        )
        bus.send(
            Envelope(
                me,
                manager,
                "dispatcher",
                UpdateTaskStatus(session, (StatusUpdate(target, forged),)),
            )
        )

        def errors() -> list[Error]:
            with lock:
                return [b for b in got if isinstance(b, Error)]

        refusals = wait_until(errors, timeout=15, what="a refusal")
        # A round trip after it: anything else the report caused has arrived by now.
        assert isinstance(ask(Heartbeat(session)), HeartbeatAck)
        refusals = errors()
        assert len(refusals) == 1, refusals
        assert refusals[0].code == "invalid_argument"
        assert refusals[0].message == f"task {target} is not assigned to node {me}"
    finally:
        bus.stop()
        inbox.stop()

    after = inspect(swarm, target)
    # All but the age shown in Last State ("RUNNING 2 seconds ago").
    assert after.pop("Last State").split()[0] == before.pop("Last State").split()[0] == "RUNNING"
    assert after == before
    assert swarm.procs["node-1"].poll() is None
    assert swarm.log("node-1").count(f"task {target} is not assigned to node {me}") == 1


def test_a_deleted_state_dir_and_a_join_address_where_nothing_listens(swarm: Swarm) -> None:
    # Two faults side by side, as their waits overlap: a node joining an address
    # where nothing listens, and a worker that lost its state dir.
    nowhere = f"127.0.0.1:{free_port()}"
    bad_token = "SWMTKN-1-" + "0" * 50 + "-" + "1" * 25
    lost = swarm.start("node-x", "--join-addr", nowhere, "--join-token", bad_token)
    swarm.init("--heartbeat-period", "1")
    token, _ = swarm.tokens()
    swarm.join_workers(token, "node-2")
    old = swarm.rows()["node-2"][0]
    # Killed, so the manager sees it go silent rather than leave.
    swarm.procs["node-2"].send_signal(signal.SIGKILL)
    swarm.procs["node-2"].wait(10)
    shutil.rmtree(swarm.root / "node-2")

    # Without a token it cannot be anyone: one line saying what to do.
    alone = subprocess.run(
        [
            tool("swarmd"),
            "-d",
            str(swarm.root / "node-2"),
            "--hostname",
            "node-2",
            "--join-addr",
            swarm.addr,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert alone.returncode != 0
    assert alone.stderr.strip().splitlines()[-1] == (
        "swarmd: error: --join-addr and --join-token go together: give both to join"
    ), alone.stderr
    assert not (swarm.root / "node-2" / "certificates" / "swarm-node.crt").exists()

    swarm.join("node-2", token)
    wait_until(
        lambda: sorted(node_ids(swarm).values()) == ["DOWN", "READY", "READY"],
        timeout=30,
        what="a new node-2 READY, the old one DOWN",
    )
    ids = node_ids(swarm)
    assert ids[old] == "DOWN" and len(ids) == 3
    # The old one stays until removed; it is DOWN, so no --force is needed.
    no_change_for = time.monotonic() + 2
    while time.monotonic() < no_change_for:
        assert node_ids(swarm).get(old) == "DOWN"
        time.sleep(0.2)
    assert swarm.ctl("node", "rm", old) == f"{old}\n"
    assert sorted(node_ids(swarm).values()) == ["READY", "READY"]
    assert swarm.procs["node-2"].poll() is None

    # Nothing listens there: one line per attempt, in order, and no crash.
    wait_until(lambda: "(attempt 2)" in swarm.log("node-x"), timeout=30, what="a second attempt")
    assert lost.poll() is None, swarm.log("node-x")
    attempts = re.findall(
        rf"no answer from a manager at {re.escape(nowhere)} \(attempt (\d+)\)",
        swarm.log("node-x"),
    )
    assert attempts == [str(n + 1) for n in range(len(attempts))] and len(attempts) >= 2
    lost.send_signal(signal.SIGTERM)
    lost.wait(15)
    assert "Traceback" not in swarm.log("node-x")
    assert not (swarm.root / "node-x" / "certificates" / "swarm-node.crt").exists()
