"""The agent and dispatcher cores over a network that drops, duplicates and
reorders messages (seeded), in one thread on virtual time: every message goes
through the envelope's bytes, and the swarm must still end with the right
tasks on the node in the right states, every report acknowledged."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pyswarmkit.agent.core import Agent, Command
from pyswarmkit.agent.core import Effects as AgentEffects
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.api.objects import (
    Cluster,
    ClusterSpec,
    ContainerSpec,
    DispatcherConfig,
    NodeDescription,
    Task,
    TaskSpec,
    TaskStatus,
    replace,
)
from pyswarmkit.api.protocol import Error
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.dispatcher.core import Dispatcher, Outgoing, assignable
from pyswarmkit.dispatcher.core import Effects as DispatcherEffects
from pyswarmkit.store.memory import Change, MemoryStore
from pyswarmkit.transport.bus import Envelope, ProtocolError, decode_envelope, encode_envelope

pytestmark = pytest.mark.sim

MANAGER, WORKER = "manager", "worker"
STEP = 0.05
PERIOD = 1.0
END = 90.0
# Lossless for this long at the end: under loss, agreement is only ever likely.
HEAL = 10.0
# The wall clock runs far from the monotonic one: nothing may mix them up.
WALL_OFFSET = 1.7e9


@dataclass(order=True)
class InFlight:
    at: float
    seq: int
    data: bytes = field(compare=False)


class LossyNet:
    """Drops, duplicates and delays (so reorders) each message, from one seed."""

    def __init__(self, rng: random.Random, drop: float, dup: float, max_delay: float) -> None:
        self.rng = rng
        self.drop, self.dup, self.max_delay = drop, dup, max_delay
        self.queue: list[InFlight] = []
        self.seq = itertools.count()
        self.sent = self.lost = self.refused = 0

    def send(self, env: Envelope, now: float) -> None:
        self.sent += 1
        data = encode_envelope(env, now)
        if self.rng.random() < self.drop:
            self.lost += 1
            return
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            at = now + self.rng.uniform(0.0, self.max_delay)
            heapq.heappush(self.queue, InFlight(at, next(self.seq), data))

    def arrived(self, now: float) -> list[Envelope]:
        out = []
        while self.queue and self.queue[0].at <= now:
            data = heapq.heappop(self.queue).data
            try:
                out.append(decode_envelope(data, now))
            except ProtocolError:
                self.refused += 1
        return out


class SimExecutor:
    """Runs tasks in virtual time: each step takes a little while; tasks whose
    command is ``finish`` exit 0 on their own some time after they start."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.events: list[tuple[float, int, str, str]] = []
        self.seq = itertools.count()
        self.running: set[str] = set()
        self.commands: dict[str, Task] = {}

    def command(self, cmd: Command, now: float) -> None:
        tid = cmd.task.id
        self.commands[tid] = cmd.task
        later = now + self.rng.uniform(0.01, 0.5)
        if cmd.op == "prepare":
            heapq.heappush(self.events, (later, next(self.seq), "prepared", tid))
        elif cmd.op == "start":
            heapq.heappush(self.events, (later, next(self.seq), "started", tid))
            if cmd.task.spec.container.command == ("finish",):
                heapq.heappush(self.events, (later + 3.0, next(self.seq), "exited", tid))
        elif cmd.op == "shutdown":
            heapq.heappush(self.events, (later, next(self.seq), "exited", tid))
        elif cmd.op == "remove":
            self.running.discard(tid)

    def due(self, now: float) -> list[tuple[str, str]]:
        out = []
        while self.events and self.events[0][0] <= now:
            _, _, kind, tid = heapq.heappop(self.events)
            out.append((kind, tid))
        return out


class World:
    def __init__(self, seed: int, drop: float = 0.2, dup: float = 0.1) -> None:
        rng = random.Random(seed)
        self.net = LossyNet(random.Random(rng.random()), drop, dup, max_delay=0.4)
        self.executor = SimExecutor(random.Random(rng.random()))
        self.store = MemoryStore()
        self.now = 0.0
        ids = itertools.count(1)
        self.session_ids: Callable[[], str] = lambda: f"session-{next(ids)}"
        spec = ClusterSpec(dispatcher=DispatcherConfig(heartbeat_period=PERIOD))
        self.write([Change("create", Cluster(id="c1", spec=spec))])
        self.dispatcher = self.new_dispatcher()
        self.agent = Agent(NodeDescription(hostname=WORKER), random.Random(rng.random()))

    @property
    def wall(self) -> float:
        return self.now + WALL_OFFSET

    def new_dispatcher(self) -> Dispatcher:
        d = Dispatcher(heartbeat_period=99.0, id_gen=self.session_ids)
        self.dispatcher = d
        self.carry_out(d.start(self.store, self.now))
        return d

    def write(self, changes: list[Change]) -> None:
        if changes:
            batch = self.store.apply(changes, self.store.index + 1, self.wall)
            if hasattr(self, "dispatcher"):
                self.dispatcher.observe(batch)

    # --- the orchestrator's part, done by hand ---------------------------------

    def create(
        self, tid: str, desired: TaskState = TaskState.RUNNING, finish: bool = False
    ) -> None:
        spec = TaskSpec(container=ContainerSpec(command=("finish",) if finish else ("serve",)))
        status = TaskStatus(timestamp=self.wall, state=TaskState.ASSIGNED)
        task = Task(id=tid, node_id=WORKER, spec=spec, desired_state=desired, status=status)
        self.write([Change("create", task)])

    def desire(self, tid: str, desired: TaskState) -> None:
        task = self.store.get_task(tid)
        assert task is not None
        self.write([Change("update", replace(task, desired_state=desired))])

    def delete(self, tid: str) -> None:
        task = self.store.get_task(tid)
        assert task is not None
        self.write([Change("delete", task)])

    # --- moving messages ------------------------------------------------------------

    def to_agent(self, out: Outgoing) -> None:
        env = Envelope(MANAGER, out.node_id, "agent", out.body, reply_to=out.reply_to)
        self.net.send(env, self.now)

    def carry_out(self, fx: DispatcherEffects) -> None:
        for w in fx.writes:
            try:
                self.write(w.build(self.store))
            except SwarmError as err:
                if w.node_id:
                    self.to_agent(Outgoing(w.node_id, Error.of(err, w.request, w.session_id)))
                continue
            for out in w.then:
                self.to_agent(out)
        for out in fx.replies:
            self.to_agent(out)

    def agent_effects(self, fx: AgentEffects) -> None:
        for cmd in fx.commands:
            self.executor.command(cmd, self.now)
        for body in fx.messages:
            ttl = self.agent.heartbeat_period
            env = Envelope(WORKER, MANAGER, "dispatcher", body, deadline=self.now + ttl)
            self.net.send(env, self.now)

    def step(self) -> None:
        self.now += STEP
        for env in self.net.arrived(self.now):
            if env.expired(self.now):
                continue
            if env.dest_actor == "dispatcher":
                try:
                    fx = self.dispatcher.handle(env.source, env.body, "10.0.0.2", self.now, env.id)
                except SwarmError as err:
                    sid = getattr(env.body, "session_id", "")
                    self.to_agent(Outgoing(env.source, Error.of(err, env.kind, sid), env.id))
                    continue
                self.carry_out(fx)
            else:
                self.agent_effects(self.agent.receive(env.body, self.now, self.wall))
        for kind, tid in self.executor.due(self.now):
            if kind == "prepared":
                self.agent_effects(self.agent.prepared(tid, "", self.wall))
            elif kind == "started":
                self.executor.running.add(tid)
                self.agent.started(tid, 100, "", self.wall)
            elif kind == "exited" and tid in self.executor.running:
                self.executor.running.discard(tid)
                self.agent.exited(tid, 0, self.wall)
        self.carry_out(self.dispatcher.tick(self.store, self.now))
        self.agent_effects(self.agent.tick(self.now))

    def run_until(self, t: float) -> None:
        while self.now < t:
            self.step()


def scenario(world: World) -> None:
    """Tasks come, some finish on their own, some are stopped, removed, held
    ready then started; halfway the dispatcher restarts with nothing in memory.
    Losses, duplicates and reordering all along, but for the last seconds."""
    world.run_until(2.0)
    for i in range(8):
        world.create(f"t{i}")
    world.create("f1", finish=True)
    world.create("f2", finish=True)
    world.run_until(10.0)
    for tid in ("t0", "t1", "t2"):
        world.desire(tid, TaskState.SHUTDOWN)
    world.create("r1", desired=TaskState.READY)
    world.create("r2", desired=TaskState.READY)
    world.run_until(20.0)
    for tid in ("r1", "r2"):
        world.desire(tid, TaskState.RUNNING)
    world.delete("t0")
    world.run_until(30.0)
    world.new_dispatcher()  # a new leader: no sessions, every node UNKNOWN
    world.run_until(35.0)
    world.desire("t3", TaskState.SHUTDOWN)
    world.create("t8")
    world.run_until(40.0)
    for i in range(10):
        world.create(f"u{i}")
    world.run_until(50.0)
    for i in range(5):
        world.desire(f"u{i}", TaskState.SHUTDOWN)
    world.run_until(60.0)
    world.delete("t1")
    world.delete("t2")
    world.run_until(END - HEAL)
    # The network heals (still reordering): whatever is owed must now arrive.
    world.net.drop = world.net.dup = 0.0
    world.run_until(END)


def check(world: World) -> None:
    store, agent = world.store, world.agent
    state = {t.id: t.status.state for t in store.tasks()}
    expected = {
        **{f"t{i}": TaskState.RUNNING for i in range(4, 9)},
        **{f"u{i}": TaskState.SHUTDOWN for i in range(5)},
        **{f"u{i}": TaskState.RUNNING for i in range(5, 10)},
        "t3": TaskState.SHUTDOWN,
        "f1": TaskState.COMPLETE,
        "f2": TaskState.COMPLETE,
        "r1": TaskState.RUNNING,
        "r2": TaskState.RUNNING,
    }
    assert state == expected
    held = {t.id for t in store.tasks() if assignable(t)}
    assert set(agent.tasks) == held
    assert world.executor.running == {t for t, s in expected.items() if s == TaskState.RUNNING}
    assert agent.pending == {}, "every report acknowledged"
    node = store.get_node(WORKER)
    assert node is not None
    assert (node.status.state, node.status.addr) == (NodeState.READY, "10.0.0.2")
    # Timestamps are wall time, not the monotonic clock.
    assert all(t.status.timestamp > WALL_OFFSET for t in store.tasks())


@pytest.mark.parametrize("seed", range(20))
def test_the_protocol_converges_over_a_lossy_network(seed: int) -> None:
    world = World(seed)
    scenario(world)
    check(world)
    # The network really was hostile.
    assert world.net.lost > 0.1 * world.net.sent


def test_a_perfect_network_converges_too() -> None:
    world = World(0, drop=0.0, dup=0.0)
    scenario(world)
    check(world)
