"""No actor dies for good: a message that makes a handler raise is logged and
the actor serves the next one; an actor that stops anyway is restarted by the
node's supervisor, and one that keeps stopping ends the node with one line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from helpers import wait_until
from nodes import one_node, running, spec

from pyswarmkit.actors.control import ControlActor
from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.messages import (
    Committed,
    ControlRequest,
    ExecutorEvent,
    ExecutorEvents,
    Propose,
    StoreEvents,
    Tick,
    Transact,
)
from pyswarmkit.actors.reconciler import Proposal, ReconcilerActor
from pyswarmkit.actors.registry import Registry
from pyswarmkit.actors.store import StoreActor
from pyswarmkit.agent.core import Command
from pyswarmkit.api.errors import Internal, InvalidArgument, SwarmError
from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
)
from pyswarmkit.control.handlers import Handlers, Reply
from pyswarmkit.executor.sim import SimExecutor
from pyswarmkit.node import SwarmNode
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import LocalProposer
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration


class Outcome:
    """Collects what a proposer hands back."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.batch: EventBatch | None = None
        self.err: SwarmError | None = None

    def __call__(self, batch: EventBatch | None, err: SwarmError | None) -> None:
        self.batch, self.err = batch, err
        self.done.set()

    def wait(self) -> Outcome:
        assert self.done.wait(5), "no outcome came back"
        return self


def service(name: str, replicas: int = 1) -> Service:
    spec = ServiceSpec(
        annotations=Annotations(name=name),
        task=TaskSpec(container=ContainerSpec(command=("serve",))),
        mode=ServiceMode(replicas=replicas),
    )
    return Service(id=f"svc-{name}", spec=spec)


# --- the store actor -------------------------------------------------------------


def test_store_actor_keeps_applying_after_bad_batches() -> None:
    store = MemoryStore()
    actor = StoreActor.start(store, LocalProposer(store))
    try:

        def boom(_: MemoryStore) -> list[Change]:
            raise RuntimeError("bug in a build function")

        # A build that raises fails only its own proposal, with an error back.
        out = Outcome()
        actor.tell(Transact(boom, 1.0, out))
        assert isinstance(out.wait().err, Internal)
        assert "bug in a build function" in str(out.err)

        # A batch of things that are not store changes is refused whole.
        out = Outcome()
        actor.tell(Propose([Change("create", "not an object")], 1.0, out))  # type: ignore[arg-type]
        assert isinstance(out.wait().err, InvalidArgument)
        out = Outcome()
        actor.tell(Propose(["junk"], 1.0, out))  # type: ignore[list-item]
        assert isinstance(out.wait().err, InvalidArgument)

        # A watcher that raises neither fails the write nor starves other watchers.
        def bad_watcher(_: EventBatch) -> None:
            raise RuntimeError("bug in a watcher")

        seen: list[int] = []
        store.watch(bad_watcher)
        store.watch(lambda b: seen.append(b.index))

        # A proposer's callback that raises is its own bug, not the store's.
        def raising(batch: EventBatch | None, err: SwarmError | None) -> None:
            raise RuntimeError("bug in a callback")

        actor.tell(Propose([Change("create", service("a"))], 1.0, raising))
        out = Outcome()
        actor.tell(Propose([Change("create", service("b"))], 1.0, out))
        assert out.wait().err is None and out.batch is not None
        assert len(seen) == 2 and seen[-1] == out.batch.index
        assert {s.name for s in store.services()} == {"a", "b"}
        assert actor.is_alive()
    finally:
        actor.stop()


# --- the control and executor actors -------------------------------------------


class BrokenHandlers(Handlers):
    """Returns something that is neither a Reply nor a Write for 'bad'."""

    def handle(self, store: MemoryStore, method: str, body: dict[str, Any]) -> Any:
        if method == "bad":
            return object()
        return Reply({"fine": True})


def test_control_actor_serves_after_a_handler_raises() -> None:
    registry = Registry("n")
    actor = ControlActor.start(registry, MemoryStore(), BrokenHandlers())
    try:
        replies: list[dict[str, Any]] = []
        got = threading.Event()

        def reply(r: dict[str, Any]) -> None:
            replies.append(r)
            got.set()

        actor.tell(ControlRequest("bad", {}, reply))
        actor.tell(ControlRequest("good", {}, reply))
        assert got.wait(5)
        assert replies == [{"ok": True, "result": {"fine": True}}]
        assert actor.is_alive()
        assert actor.proxy().failures.get() == 1
    finally:
        actor.stop()


class Events(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[ExecutorEvent] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ExecutorEvents):
            self.events.extend(message.events)


def test_executor_actor_serves_after_a_handler_raises() -> None:
    registry = Registry("n")
    events = Events.start()
    registry.add("agent", events)
    actor = ExecutorActor.start(registry, SimExecutor("n"))
    try:
        actor.tell(Command("prepare", None))  # type: ignore[arg-type]
        actor.tell(Command("prepare", Task(id="t1")))
        wait_until(
            lambda: [e for e in events.proxy().events.get() if e.task_id == "t1"], what="prepared"
        )
        assert actor.is_alive()
        assert actor.proxy().failures.get() == 1
    finally:
        actor.stop()
        events.stop()


# --- reconcilers ---------------------------------------------------------------


class Flaky(ReconcilerActor):
    """A reconciler whose core raises while ``fail`` says so."""

    name = "flaky"

    def __init__(self, registry: Registry, store: MemoryStore, fail: set[str]) -> None:
        super().__init__(registry, store)
        self.fail = fail
        self.calls = {"reset": 0, "observe": 0, "decide": 0}
        self.pending: list[str] = []

    def _maybe_fail(self, what: str) -> None:
        self.calls[what] += 1
        if what in self.fail:
            raise RuntimeError(f"{what} is broken")

    def reset(self) -> None:
        self._maybe_fail("reset")
        self.pending = [s.id for s in self.store.services() if s.spec.mode.replicas == 1]

    def observe(self, batch: EventBatch) -> None:
        self._maybe_fail("observe")
        self.pending += [
            e.obj.id for e in batch.events if isinstance(e.obj, Service) and e.op == "create"
        ]

    def due(self, now: float) -> bool:
        return bool(self.pending)

    def decide(self, now: float, wall: float) -> list[Change]:
        self._maybe_fail("decide")
        changes = []
        for sid in self.pending:
            svc = self.store.get_service(sid)
            if svc is not None and svc.spec.mode.replicas == 1:
                spec = ServiceSpec(annotations=svc.spec.annotations, mode=ServiceMode(replicas=2))
                changes.append(Change("update", Service(id=svc.id, spec=spec, meta=svc.meta)))
        self.pending = []
        return changes

    def refused(self, changes: list[Change], error: SwarmError) -> None:
        self.reset()


def replicas(store: MemoryStore, sid: str) -> int:
    svc = store.get_service(sid)
    return 0 if svc is None else svc.spec.mode.replicas


def test_a_reconciler_whose_core_raises_recovers_from_the_store() -> None:
    store = MemoryStore()
    registry = Registry("n")
    registry.add("store", StoreActor.start(store, LocalProposer(store)))
    fail = {"observe"}
    actor = Flaky.start(registry, store, fail)
    proxy = actor.proxy()
    try:
        out = Outcome()
        registry.tell("store", Propose([Change("create", service("a"))], 1.0, out))
        out.wait()
        wait_until(lambda: proxy.calls.get()["observe"] >= 1, what="observe raised")
        fail.clear()  # the fault goes away; the core is rebuilt and catches up
        now = 0.0

        def converged() -> bool:
            nonlocal now
            now += 1.0
            actor.tell(Tick(now, now))
            return replicas(store, "svc-a") == 2

        wait_until(converged, what="the service handled after the core was rebuilt")
        assert proxy.calls.get()["reset"] >= 2  # once at start, once after the failure

        # A decide that raises once: the next tick (after a back-off) tries again.
        fail.add("decide")
        out = Outcome()
        registry.tell("store", Propose([Change("create", service("b"))], 1.0, out))
        out.wait()
        wait_until(lambda: (converged(), proxy.calls.get()["decide"])[1] >= 3, what="decide")
        fail.clear()
        wait_until(lambda: converged() and replicas(store, "svc-b") == 2, what="b handled")
        assert actor.is_alive()
    finally:
        actor.stop()
        registry.get("store").stop()  # type: ignore[union-attr]


def test_a_persistent_fault_backs_off_instead_of_spinning() -> None:
    store = MemoryStore()
    store.apply([Change("create", service("a"))], 1, 1.0)
    registry = Registry("n")
    actor = Flaky.start(registry, store, {"decide"})
    proxy = actor.proxy()
    try:
        # One second of ticks every 10 ms, as a busy ticker would send them.
        for i in range(100):
            actor.tell(Tick(i * 0.01, i * 0.01))
        calls = proxy.calls.get()  # answered after every tick above was handled
        assert actor.is_alive()
        # Back-off from 0.1 s doubling: a try at about 0, 0.1, 0.3, 0.7 s.
        assert 3 <= calls["decide"] <= 6, calls
        assert proxy.failures.get() == calls["decide"]
    finally:
        actor.stop()


def test_a_repeated_failure_is_logged_once_per_period(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    registry = Registry("n")
    actor = Flaky.start(registry, store, {"observe"})
    try:
        with caplog.at_level(logging.ERROR, logger="pyswarmkit.actors.base"):
            for i in range(50):
                actor.tell(StoreEvents(EventBatch(i, ())))
                # The core is rebuilt on a tick; the next batch fails again.
                actor.tell(Tick(i * 10.0 + 0.0, 0.0))
            actor.proxy().calls.get()
        logged = [r for r in caplog.records if "observing" in r.getMessage()]
        # One tick every 10 s of monotonic time, but the log is on the real
        # monotonic clock: the 50 failures of this second make one line.
        assert len(logged) == 1
        assert "StoreEvents" in logged[0].getMessage()
    finally:
        actor.stop()


def test_a_stale_commit_answer_is_ignored() -> None:
    store = MemoryStore()
    registry = Registry("n")
    actor = Flaky.start(registry, store, set())
    try:
        # An answer to no proposal of this actor's changes nothing and raises nothing.
        actor.tell(Committed(None, Internal("late"), "not a proposal"))
        actor.tell(Committed(None, Internal("late"), None))
        assert actor.proxy().failures.get() == 0
    finally:
        actor.stop()


class BlackHole(pykka.ThreadingActor):
    """A store that loses every proposal (as a store that restarted would)."""

    def __init__(self) -> None:
        super().__init__()
        self.proposals = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Propose):
            self.proposals += 1


def test_a_lost_proposal_does_not_wedge_a_reconciler() -> None:
    store = MemoryStore()
    store.apply([Change("create", service("a"))], 1, 1.0)
    registry = Registry("n")
    hole = BlackHole.start()
    registry.add("store", hole)
    actor = Flaky.start(registry, store, set())
    try:
        actor.tell(Tick(1.0, 1.0))
        actor.tell(Tick(30.0, 30.0))  # still waiting for the outcome
        assert actor.proxy().busy.get()
        assert hole.proxy().proposals.get() == 1
        # Past the proposal timeout: the core looks at the store again and re-decides.
        actor.tell(Tick(62.0, 62.0))
        actor.tell(Tick(62.1, 62.1))
        wait_until(lambda: hole.proxy().proposals.get() == 2, what="a second proposal")
        # The late answer to the first proposal changes nothing.
        actor.tell(Committed(None, None, Proposal(1, [])))
        assert actor.proxy().busy.get()
        # A store replaced (restarted) lost what it had: no need to wait for the timeout.
        other = BlackHole.start()
        registry.add("store", other)
        actor.tell(Tick(63.0, 63.0))
        actor.tell(Tick(63.1, 63.1))
        wait_until(lambda: other.proxy().proposals.get() == 1, what="proposed to the new store")
    finally:
        actor.stop()
        hole.stop()
        registry.get("store").stop()  # type: ignore[union-attr]


# --- the node's supervisor ----------------------------------------------------------


@pytest.fixture
def node() -> Iterator[tuple[SwarmNode, ControlClient]]:
    with one_node(max_restarts=3) as pair:
        yield pair


def kill(n: SwarmNode, name: str) -> pykka.ActorRef[Any]:
    ref = n.registry.get(name)
    assert ref is not None
    ref.stop()
    return ref


def restarted(n: SwarmNode, name: str, old: pykka.ActorRef[Any]) -> bool:
    ref = n.registry.get(name)
    return ref is not None and ref is not old and ref.is_alive()


@pytest.mark.parametrize(
    "victim", ["store", "control", "orchestrator", "scheduler", "dispatcher", "agent", "executor"]
)
def test_a_stopped_actor_is_restarted_and_the_node_converges(
    node: tuple[SwarmNode, ControlClient], victim: str
) -> None:
    n, client = node
    client.call("service.create", {"spec": spec("before", 3)})
    wait_until(lambda: running(n, "before") == 3, what="3 running")
    old = kill(n, victim)
    wait_until(lambda: restarted(n, victim, old), what=f"{victim} restarted")
    assert n.supervisor.restarts == {victim: 1}
    client.call("service.create", {"spec": spec("after", 4)})
    wait_until(lambda: running(n, "after") == 4, what="a new service converges")
    wait_until(lambda: running(n, "before") == 3, what="the old one still runs")
    assert n.failure is None and not n.stopped.is_set()


def test_an_actor_that_keeps_stopping_stops_the_node(
    node: tuple[SwarmNode, ControlClient],
) -> None:
    n, _ = node
    for _ in range(3):
        old = kill(n, "scheduler")
        wait_until(lambda old=old: restarted(n, "scheduler", old), what="restarted")  # type: ignore[misc]
    kill(n, "scheduler")
    assert n.stopped.wait(30), "the node did not stop"
    assert n.failure is not None
    assert "scheduler" in n.failure and "stopping the node" in n.failure
    assert n.registry.names() == []


def test_swarmd_exits_non_zero_naming_the_actor(tmp_path: Path) -> None:
    # A scheduler that cannot start: the supervisor restarts it until its
    # budget is spent, then swarmd stops the node and says why, in one line.
    script = (
        "import sys\n"
        "from pyswarmkit.actors.scheduler import SchedulerActor\n"
        "def broken(self):\n"
        "    raise RuntimeError('cannot start')\n"
        "SchedulerActor.on_start = broken\n"
        "from pyswarmkit.cli import swarmd_main\n"
        f"sys.argv = ['swarmd', '-d', {str(tmp_path / 'st')!r}, '--executor', 'sim',"
        " '--log-level', 'error', '--listen-remote-api', '127.0.0.1:0']\n"
        "swarmd_main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("swarmd: error: the scheduler actor stopped again after 5 restarts")


@pytest.mark.parametrize(
    ("actor", "cls", "method"),
    [
        ("orchestrator", "pyswarmkit.orchestrator.replicated.ReplicatedOrchestrator", "step"),
        ("scheduler", "pyswarmkit.scheduler.core.Scheduler", "schedule"),
    ],
)
def test_a_real_core_that_raises_neither_stops_its_actor_nor_the_others(
    node: tuple[SwarmNode, ControlClient],
    monkeypatch: pytest.MonkeyPatch,
    actor: str,
    cls: str,
    method: str,
) -> None:
    n, client = node
    ref = n.registry.get(actor)
    module, name = cls.rsplit(".", 1)
    core_class = getattr(__import__(module, fromlist=[name]), name)
    real = getattr(core_class, method)
    faults = [3]

    def flaky(self: Any, *args: Any) -> Any:
        if faults[0] > 0:
            faults[0] -= 1
            raise RuntimeError(f"{method} is broken")
        return real(self, *args)

    monkeypatch.setattr(core_class, method, flaky)
    client.call("service.create", {"spec": spec("web", 5)})
    wait_until(lambda: running(n, "web") == 5, what="5 running after the faults")
    assert faults == [0]
    assert n.registry.get(actor) is ref  # served on, not restarted
    assert n.supervisor.restarts == {}


class Ticks(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Tick):
            self.count += 1


class FlakyRegistry(Registry):
    """Fails the ticker's first look at the running actors."""

    def __init__(self) -> None:
        super().__init__("n")
        self.looks = 0

    def names(self) -> list[str]:
        self.looks += 1
        if self.looks == 1:
            raise RuntimeError("registry is broken")
        return super().names()


def test_the_ticker_ticks_on_after_a_failure() -> None:
    from pyswarmkit.ticker import Ticker

    registry = FlakyRegistry()
    ticks = Ticks.start()
    registry.add("agent", ticks)
    ticker = Ticker(registry, ["agent"], 0.01)
    ticker.start()
    try:
        wait_until(lambda: ticks.proxy().count.get() >= 3, what="ticks after the failure")
    finally:
        ticker.stop()
        ticks.stop()
