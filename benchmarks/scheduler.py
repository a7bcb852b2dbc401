"""Scheduler throughput, in the shapes of SwarmKit's BenchmarkScheduler*.

N READY nodes and M PENDING tasks are created in one store batch; the clock
starts just before that batch is applied and stops when the store holds all M
tasks ASSIGNED. In between, the scheduling core runs as the scheduler actor
drives it: committed batches go in through ``observe``, ``schedule(now)`` runs
once ``due(now)``, its changes are committed through ``LocalProposer`` and the
resulting batch is observed again.

As in SwarmKit the tasks share no service (each is its own group); with
``--grouped`` they all belong to one service. With ``--constraints`` every
third node carries the label ``special=true`` and every task requires it.

``ms`` is wall-clock time, including the debounce wait (50 ms after the last
event) that SwarmKit's numbers include too; ``work_ms`` leaves that wait out;
``cpu_ms`` is the process's CPU time, which other load on the machine does not
inflate. The garbage collector stays on, as it would in a node.

Usage:
    python benchmarks/scheduler.py                      # every shape, as a table
    python benchmarks/scheduler.py --nodes 1000 --tasks 10000 [--constraints]
        [--grouped] [--json] [--repeat K]     # K runs, the median reported
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import dataclass

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

# SwarmKit v2.0.0's Go scheduler on a 2-core machine, in ms.
SWARMKIT_MS: dict[tuple[int, int, bool], float] = {
    (1_000, 1_000, False): 155.0,
    (1_000, 10_000, False): 1_350.0,
    (100_000, 1_000, False): 16_100.0,
    (1_000, 1_000, True): 173.0,
    (1_000, 10_000, True): 1_640.0,
}

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


@dataclass
class Result:
    nodes: int
    tasks: int
    constraints: bool
    grouped: bool
    ms: float
    work_ms: float
    cpu_ms: float
    schedule_passes: int

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / (self.ms / 1000.0)

    def to_json(self) -> dict[str, object]:
        return {
            "nodes": self.nodes,
            "tasks": self.tasks,
            "constraints": self.constraints,
            "grouped": self.grouped,
            "ms": round(self.ms, 1),
            "work_ms": round(self.work_ms, 1),
            "cpu_ms": round(self.cpu_ms, 1),
            "tasks_per_s": round(self.tasks_per_s, 1),
            "schedule_passes": self.schedule_passes,
        }


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
    spec = TaskSpec(placement=placement)
    status = TaskStatus(state=TaskState.PENDING, message="pending task scheduling")
    return [
        Task(
            id=f"task{i}",
            service_id="service" if grouped else f"service{i}",
            slot=i + 1 if grouped else 1,
            spec=spec,
            spec_version=1,
            service_name="service" if grouped else f"service{i}",
            desired_state=TaskState.RUNNING,
            status=status,
        )
        for i in range(m)
    ]


def run(nodes: int, tasks: int, constraints: bool = False, grouped: bool = False) -> Result:
    store = MemoryStore()
    proposer = LocalProposer(store)
    core = Scheduler()
    inbox: list[EventBatch] = []
    store.watch(inbox.append)
    core.reset([], [], time.monotonic())

    creates = [Change("create", n) for n in make_nodes(nodes, constraints)]
    creates += [Change("create", t) for t in make_tasks(tasks, constraints, grouped)]
    assigned = 0
    slept = 0.0
    passes = 0

    def done(batch: EventBatch | None, err: object) -> None:
        if err is not None:
            core.rejected(pending_changes)

    pending_changes: list[Change] = []
    gc.collect()
    start = time.perf_counter()
    cpu_start = time.process_time()
    proposer.propose(creates, time.monotonic(), done)
    while assigned < tasks:
        now = time.monotonic()
        while inbox:
            batch = inbox.pop(0)
            core.observe(batch, now)
            for ev in batch.events:
                obj, old = ev.obj, ev.old
                if (
                    isinstance(obj, Task)
                    and obj.status.state == TaskState.ASSIGNED
                    and (not isinstance(old, Task) or old.status.state != TaskState.ASSIGNED)
                ):
                    assigned += 1
        if assigned >= tasks:
            break
        if core.due(now):
            passes += 1
            pending_changes = core.schedule(now)
            if pending_changes:
                proposer.propose(pending_changes, now, done)
            continue
        wake = core.wake_at()
        if wake is None:
            raise RuntimeError(f"scheduler idle with {tasks - assigned} tasks unassigned")
        before = time.perf_counter()
        time.sleep(max(0.0, wake - time.monotonic()))
        slept += time.perf_counter() - before
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return Result(
        nodes,
        tasks,
        constraints,
        grouped,
        ms=elapsed * 1000,
        work_ms=(elapsed - slept) * 1000,
        cpu_ms=cpu * 1000,
        schedule_passes=passes,
    )


def median_run(repeat: int, nodes: int, tasks: int, constraints: bool, grouped: bool) -> Result:
    runs = sorted(
        (run(nodes, tasks, constraints, grouped) for _ in range(repeat)), key=lambda r: r.ms
    )
    return runs[len(runs) // 2]


def _label(r: Result) -> str:
    kind = "constraints " if r.constraints else ""
    kind += "grouped " if r.grouped else ""
    return f"{kind}{_k(r.nodes)} nodes / {_k(r.tasks)} tasks"


def _k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else str(n)


def print_table(results: list[Result]) -> None:
    head = (
        f"{'shape':<36} {'ms':>10} {'work ms':>10} {'cpu ms':>10} {'tasks/s':>10} "
        f"{'SwarmKit ms':>12} {'target ms':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        go = None if r.grouped else SWARMKIT_MS.get((r.nodes, r.tasks, r.constraints))
        go_s = f"{go:>12.0f}" if go else f"{'-':>12}"
        target = f"{go / 2:>10.0f}" if go else f"{'-':>10}"
        times = f"{r.ms:>10.1f} {r.work_ms:>10.1f} {r.cpu_ms:>10.1f} {r.tasks_per_s:>10.0f}"
        print(f"{_label(r):<36} {times} {go_s} {target}")


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
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each shape this many times; report the median"
    )
    args = parser.parse_args(argv)
    if (args.nodes is None) != (args.tasks is None):
        parser.error("give both --nodes and --tasks, or neither")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.nodes is not None:
        result = median_run(args.repeat, args.nodes, args.tasks, args.constraints, args.grouped)
        if args.json:
            print(json.dumps(result.to_json()))
        else:
            print_table([result])
        return 0
    results = []
    for nodes, tasks, constraints, grouped in SHAPES:
        results.append(median_run(args.repeat, nodes, tasks, constraints, grouped))
        if args.json:
            print(json.dumps(results[-1].to_json()), flush=True)
    if not args.json:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
