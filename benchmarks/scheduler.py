"""Scheduler throughput, in the shapes of SwarmKit's BenchmarkScheduler*.

N READY nodes and M PENDING tasks are created in one store batch. Every object
goes through the codec first (encoded, then decoded with every field checked),
as it comes out of the store on a manager that applied it from the Raft log:
each task carries its own spec object, equal in value to the others', never
the same object.

Two ways to run each shape:

- core (default): the scheduling core alone, driven as its actor drives it:
  committed batches go in through ``observe``, ``schedule(now)`` runs once
  ``due(now)``, its changes are committed through ``LocalProposer`` and the
  resulting batch is observed again. The clock starts just before the batch
  is applied and stops when the store holds all M tasks ASSIGNED. ``now``
  for ``observe`` is read once the store has taken the batch in, so the
  debounce starts when the last object is ingested.
- ``--through-actors``: a live node's store actor, scheduler actor and ticker
  (100 ms, the node's default), timed from the commit of the batch to the
  commit of the batch holding the last assignment.

As in SwarmKit the tasks share no service (each is its own group); with
``--grouped`` they all belong to one service. With ``--constraints`` every
third node carries the label ``special=true`` and every task requires it.

``ms`` is wall-clock time, including the debounce (SwarmKit's numbers include
its own); ``cpu_ms`` is the process's CPU time over all threads, which other
load on the machine does not inflate. The garbage collector stays on, as it
would in a node.

Usage:
    python benchmarks/scheduler.py [--through-actors | --both]   # every shape, a table
    python benchmarks/scheduler.py --nodes 1000 --tasks 10000 [--constraints]
        [--grouped] [--json] [--repeat K]     # K runs, the median reported
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
from dataclasses import dataclass

from pyswarmkit.actors.messages import Propose
from pyswarmkit.actors.registry import Registry
from pyswarmkit.actors.scheduler import SchedulerActor
from pyswarmkit.actors.store import StoreActor
from pyswarmkit.api import codec
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.api.objects import (
    Annotations,
    Node,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Placement,
    Task,
    TaskSpec,
    TaskStatus,
)
from pyswarmkit.api.states import NodeState, TaskState
from pyswarmkit.scheduler.core import Scheduler
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.store.proposer import LocalProposer
from pyswarmkit.ticker import Ticker

# SwarmKit v2.0.0's Go scheduler, measured on this project's 2-core machine, in
# ms (100k nodes / 1k tasks ranged from 18.5 to 30 s; the low end is used).
SWARMKIT_MS: dict[tuple[int, int, bool], float] = {
    (1_000, 1_000, False): 126.0,
    (1_000, 10_000, False): 1_053.0,
    (100_000, 1_000, False): 18_500.0,
    (1_000, 1_000, True): 136.0,
    (1_000, 10_000, True): 1_203.0,
}
# At most this fraction of SwarmKit's time.
TARGET = 0.25

SHAPES: list[tuple[int, int, bool, bool]] = [
    (1_000, 1_000, False, False),
    (1_000, 10_000, False, False),
    (1_000, 100_000, False, False),
    (100_000, 1_000, False, False),
    (100_000, 100_000, False, False),
    (1_000, 1_000, True, False),
    (1_000, 10_000, True, False),
    (5_000, 100_000, True, False),
    (1_000, 10_000, False, True),
    (1_000, 100_000, False, True),
]

TICK_INTERVAL = 0.1  # NodeConfig's default
ACTOR_TIMEOUT = 300.0


@dataclass
class Result:
    mode: str
    nodes: int
    tasks: int
    constraints: bool
    grouped: bool
    ms: float
    cpu_ms: float
    # store batches holding assignments (one per scheduling pass that placed tasks)
    batches: int

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / (self.ms / 1000.0)

    def to_json(self) -> dict[str, object]:
        go = swarmkit_ms(self)
        return {
            "mode": self.mode,
            "nodes": self.nodes,
            "tasks": self.tasks,
            "constraints": self.constraints,
            "grouped": self.grouped,
            "ms": round(self.ms, 1),
            "cpu_ms": round(self.cpu_ms, 1),
            "tasks_per_s": round(self.tasks_per_s, 1),
            "assignment_batches": self.batches,
            "swarmkit_ms": go,
            "target_ms": None if go is None else go * TARGET,
        }


def swarmkit_ms(r: Result) -> float | None:
    return None if r.grouped else SWARMKIT_MS.get((r.nodes, r.tasks, r.constraints))


def make_nodes(n: int, constraints: bool) -> list[Node]:
    nodes = []
    for i in range(n):
        labels = {"special": "true"} if constraints and i % 3 == 0 else {}
        nodes.append(
            Node(
                id=f"node{i}",
                spec=NodeSpec(annotations=Annotations(name=f"name{i}", labels=labels)),
                description=NodeDescription(hostname=f"name{i}"),
                status=NodeStatus(
                    state=NodeState.READY, addr=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                ),
            )
        )
    return nodes


def make_tasks(m: int, constraints: bool, grouped: bool) -> list[Task]:
    placement = (
        Placement(constraints=("node.labels.special==true",)) if constraints else Placement()
    )
    status = TaskStatus(state=TaskState.PENDING, message="pending task scheduling")
    return [
        Task(
            id=f"task{i}",
            service_id="service" if grouped else f"service{i}",
            slot=i + 1 if grouped else 1,
            spec=TaskSpec(placement=placement),
            spec_version=1,
            service_name="service" if grouped else f"service{i}",
            desired_state=TaskState.RUNNING,
            status=status,
        )
        for i in range(m)
    ]


def make_batch(nodes: int, tasks: int, constraints: bool, grouped: bool) -> list[Change]:
    """The creates, as a manager decodes them from the log: one object each."""
    built: list[Node | Task] = [*make_nodes(nodes, constraints)]
    built += make_tasks(tasks, constraints, grouped)
    decoded = codec.unpackb(codec.packb(built), max_size=1 << 31)
    specs = {id(o.spec) for o in decoded if isinstance(o, Task)}
    assert len(specs) == tasks, "every task must carry its own spec object"
    return [Change("create", o) for o in decoded]


def newly_assigned(batch: EventBatch) -> int:
    n = 0
    for ev in batch.events:
        obj, old = ev.obj, ev.old
        if (
            isinstance(obj, Task)
            and obj.status.state == TaskState.ASSIGNED
            and (not isinstance(old, Task) or old.status.state != TaskState.ASSIGNED)
        ):
            n += 1
    return n


def run_core(nodes: int, tasks: int, constraints: bool = False, grouped: bool = False) -> Result:
    creates = make_batch(nodes, tasks, constraints, grouped)
    store = MemoryStore()
    proposer = LocalProposer(store)
    core = Scheduler()
    inbox: list[EventBatch] = []
    store.watch(inbox.append)
    core.reset([], [], time.monotonic())
    assigned = 0
    batches = 0
    pending_changes: list[Change] = []

    def done(batch: EventBatch | None, err: object) -> None:
        if err is not None:
            core.rejected(pending_changes)

    gc.collect()
    proposer.propose(creates, time.time(), done)
    # As SwarmKit's benchmark: the clock starts once the store holds every object.
    start = time.perf_counter()
    cpu_start = time.process_time()
    while assigned < tasks:
        while inbox:
            batch = inbox.pop(0)
            core.observe(batch, time.monotonic())
            n = newly_assigned(batch)
            assigned += n
            batches += n > 0
        if assigned >= tasks:
            break
        now = time.monotonic()
        if core.due(now):
            pending_changes = core.schedule(now, time.time())
            if pending_changes:
                proposer.propose(pending_changes, time.time(), done)
            continue
        wake = core.wake_at()
        if wake is None:
            raise RuntimeError(f"scheduler idle with {tasks - assigned} tasks unassigned")
        time.sleep(max(0.0, wake - time.monotonic()))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return Result("core", nodes, tasks, constraints, grouped, elapsed * 1000, cpu * 1000, batches)


def run_actors(nodes: int, tasks: int, constraints: bool = False, grouped: bool = False) -> Result:
    creates = make_batch(nodes, tasks, constraints, grouped)
    store = MemoryStore()
    registry = Registry("bench")
    finished = threading.Event()
    marks: dict[str, float] = {}
    counts = {"assigned": 0, "batches": 0}

    def watcher(batch: EventBatch) -> None:
        # Runs on the store's thread as the batch commits, before the
        # scheduler actor is told of it (it watches after us).
        now = time.perf_counter()
        if "start" not in marks:
            marks["start"] = now
            marks["cpu_start"] = time.process_time()
        n = newly_assigned(batch)
        if n:
            counts["assigned"] += n
            counts["batches"] += 1
            if counts["assigned"] >= tasks:
                marks["end"] = now
                marks["cpu_end"] = time.process_time()
                finished.set()

    store.watch(watcher)
    refused: list[SwarmError] = []

    def on_done(batch: EventBatch | None, err: SwarmError | None) -> None:
        if err is not None:
            refused.append(err)
            finished.set()

    registry.add("store", StoreActor.start(store, LocalProposer(store)))
    registry.add("scheduler", SchedulerActor.start(registry, store))
    ticker = Ticker(registry, ["scheduler"], TICK_INTERVAL)
    ticker.start()
    try:
        gc.collect()
        registry.tell("store", Propose(creates, time.time(), on_done))
        if not finished.wait(ACTOR_TIMEOUT):
            raise RuntimeError(
                f"{tasks - counts['assigned']} tasks unassigned after {ACTOR_TIMEOUT:.0f} s"
            )
        if refused:
            raise RuntimeError(f"the creates batch was refused: {refused[0]}")
    finally:
        ticker.stop()
        for name in ("scheduler", "store"):
            ref = registry.remove(name)
            if ref is not None:
                ref.stop()
    return Result(
        "actors",
        nodes,
        tasks,
        constraints,
        grouped,
        (marks["end"] - marks["start"]) * 1000,
        (marks["cpu_end"] - marks["cpu_start"]) * 1000,
        counts["batches"],
    )


RUNNERS = {"core": run_core, "actors": run_actors}


def median_run(
    mode: str, repeat: int, nodes: int, tasks: int, constraints: bool, grouped: bool
) -> Result:
    runner = RUNNERS[mode]
    runs = sorted(
        (runner(nodes, tasks, constraints, grouped) for _ in range(repeat)), key=lambda r: r.ms
    )
    return runs[len(runs) // 2]


def _label(nodes: int, tasks: int, constraints: bool, grouped: bool) -> str:
    kind = "constraints " if constraints else ""
    kind += "grouped " if grouped else ""
    return f"{kind}{_k(nodes)} nodes / {_k(tasks)} tasks"


def _k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else str(n)


def print_table(results: list[Result]) -> None:
    modes = [m for m in RUNNERS if any(r.mode == m for r in results)]
    shapes: dict[tuple[int, int, bool, bool], dict[str, Result]] = {}
    for r in results:
        shapes.setdefault((r.nodes, r.tasks, r.constraints, r.grouped), {})[r.mode] = r
    head = f"{'shape':<36}"
    for m in modes:
        head += f" {m + ' ms':>11} {m + ' cpu':>11}"
    head += f" {'SwarmKit ms':>12} {'target ms':>10}"
    print(head)
    print("-" * len(head))
    for shape, by_mode in shapes.items():
        line = f"{_label(*shape):<36}"
        for m in modes:
            found = by_mode.get(m)
            if found is None:
                line += f" {'-':>11} {'-':>11}"
            else:
                line += f" {found.ms:>11.1f} {found.cpu_ms:>11.1f}"
        go = swarmkit_ms(next(iter(by_mode.values())))
        line += f" {go:>12.0f} {go * TARGET:>10.0f}" if go else f" {'-':>12} {'-':>10}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--tasks", type=int)
    parser.add_argument(
        "--constraints", action="store_true", help="every task needs a label one node in three has"
    )
    parser.add_argument("--grouped", action="store_true", help="all tasks belong to one service")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--through-actors",
        action="store_true",
        help="run through a store actor, the scheduler actor and a ticker",
    )
    mode.add_argument("--both", action="store_true", help="run the core alone and through actors")
    parser.add_argument("--json", action="store_true", help="print one JSON object per result")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each shape this many times; report the median"
    )
    args = parser.parse_args(argv)
    if (args.nodes is None) != (args.tasks is None):
        parser.error("give both --nodes and --tasks, or neither")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    modes = ["core", "actors"] if args.both else ["actors"] if args.through_actors else ["core"]
    if args.nodes is not None:
        shapes = [(args.nodes, args.tasks, args.constraints, args.grouped)]
    else:
        shapes = SHAPES
    results = []
    for nodes, tasks, constraints, grouped in shapes:
        for m in modes:
            results.append(median_run(m, args.repeat, nodes, tasks, constraints, grouped))
            if args.json:
                print(json.dumps(results[-1].to_json()), flush=True)
    if not args.json:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
