"""End to end on one node: ``service create --replicas N`` with the sim executor.

One SwarmNode runs in this process (store, control, orchestrator, scheduler,
dispatcher, agent, executor and Raft member actors, the ticker), as ``swarmd --executor sim``
runs them. The service is created and removed through the control actor, as
``swarmctl`` does, minus the socket. Reported:

- ``running_s``: from the create request to N/N tasks RUNNING in the store;
- ``removed_s``: from the remove request to no task of it left in the store;
- when each stage's first and last write committed (tasks created by the
  orchestrator, ASSIGNED by the scheduler, ACCEPTED..RUNNING reported through
  the dispatcher, tasks told to stop, tasks deleted);
- per actor: messages handled, time spent handling them (wall and CPU, in
  all and up to N/N running: ``to run``); the store's time to apply each kind
  of batch;
- the process's peak RSS.

``--profile`` runs cProfile inside every actor (slower; use it to find the
functions, not to time) and prints each actor's costliest functions.

Usage:
    python benchmarks/end_to_end.py [--replicas N] [--json] [--profile] [--top K]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyswarmkit.actors import (
    agent,
    control,
    dispatcher,
    executor,
    orchestrator,
    raft,
    scheduler,
    store,
)
from pyswarmkit.actors.messages import ControlRequest
from pyswarmkit.api.objects import Annotations as Names
from pyswarmkit.api.objects import ContainerSpec, ServiceMode, ServiceSpec, Task, TaskSpec
from pyswarmkit.api.states import TaskState
from pyswarmkit.node import NodeConfig, SwarmNode
from pyswarmkit.store.memory import EventBatch, MemoryStore

TIMEOUT = 600.0

ACTORS: dict[str, Any] = {
    "raft": raft.RaftActor,
    "store": store.StoreActor,
    "control": control.ControlActor,
    "orchestrator": orchestrator.OrchestratorActor,
    "scheduler": scheduler.SchedulerActor,
    "dispatcher": dispatcher.DispatcherActor,
    "agent": agent.AgentActor,
    "executor": executor.ExecutorActor,
}


def _zero() -> list[float]:
    return [0, 0.0]


@dataclass
class ActorCost:
    messages: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    # message type -> [count, cpu seconds]
    by_message: dict[str, list[float]] = field(default_factory=lambda: defaultdict(_zero))
    profile: cProfile.Profile | None = None


COSTS: dict[str, ActorCost] = {name: ActorCost() for name in ACTORS}


def instrument(profile: bool) -> None:
    """Wrap each actor class's on_receive to account its time (and profile it)."""
    for name, cls in ACTORS.items():
        cost = COSTS[name]
        if profile:
            cost.profile = cProfile.Profile()
        original = cls.on_receive

        def wrapped(
            self: Any,
            message: Any,
            _orig: Callable[[Any, Any], Any] = original,
            _cost: ActorCost = cost,
        ) -> Any:
            w0, c0 = time.perf_counter(), time.thread_time()
            prof = _cost.profile
            if prof is not None:
                prof.enable()
            try:
                return _orig(self, message)
            finally:
                if prof is not None:
                    prof.disable()
                dw, dc = time.perf_counter() - w0, time.thread_time() - c0
                _cost.messages += 1
                _cost.wall += dw
                _cost.cpu += dc
                entry = _cost.by_message[type(message).__name__]
                entry[0] += 1
                entry[1] += dc

        cls.on_receive = wrapped


def batch_kind(batch: EventBatch) -> str:
    """Name a committed batch after the stage that wrote it."""
    first = batch.events[0] if batch.events else None
    if first is None:
        return "empty"
    obj, old = first.obj, first.old
    if first.kind != "task":
        return f"{first.kind} {first.op}"
    assert isinstance(obj, Task)
    if first.op == "create":
        return "task create (orchestrator)"
    if first.op == "delete":
        return "task delete (orchestrator)"
    was = old.status.state if isinstance(old, Task) else None
    if obj.status.state == TaskState.ASSIGNED and was != TaskState.ASSIGNED:
        return "task assign (scheduler)"
    if isinstance(old, Task) and obj.desired_state != old.desired_state:
        return "task desired state (orchestrator)"
    return "task status (dispatcher)"


class Progress:
    """Watches the store: counts live and running tasks and marks when each
    stage wrote. Runs on the store's thread, so it keeps to a few operations
    per event (each event carries the task's version before and after)."""

    def __init__(self) -> None:
        self.running = 0
        self.live = 0
        self.target = 0
        self.reached = threading.Event()
        self.gone = threading.Event()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.batches: dict[str, int] = defaultdict(int)
        self.changes: dict[str, int] = defaultdict(int)
        self.apply_s: dict[str, float] = defaultdict(float)

    def mark(self, kind: str, now: float) -> None:
        self.first.setdefault(kind, now)
        self.last[kind] = now

    def __call__(self, batch: EventBatch) -> None:
        now = time.perf_counter()
        kind = batch_kind(batch)
        self.batches[kind] += 1
        self.changes[kind] += len(batch.events)
        self.mark(kind, now)
        running = TaskState.RUNNING
        live = up = 0
        for ev in batch.events:
            if ev.kind != "task":
                continue
            old, new = ev.old, ev.obj
            was = old is not None and old.status.state == running  # type: ignore[union-attr]
            if ev.op == "delete":
                live -= 1
                up -= was
                continue
            if old is None:
                live += 1
            up += (new.status.state == running) - was  # type: ignore[union-attr]
        self.live += live
        self.running += up
        if not self.reached.is_set() and self.target and self.running >= self.target:
            self.mark("all running", now)
            self.reached.set()
        if self.reached.is_set() and self.live == 0 and not self.gone.is_set():
            self.mark("all removed", now)
            self.gone.set()


def timed_apply(progress: Progress) -> None:
    """Account the store's apply time per kind of batch."""
    original = MemoryStore.apply

    def apply(self: MemoryStore, changes: Any, index: int, now: float) -> EventBatch:
        t0 = time.perf_counter()
        batch = original(self, changes, index, now)
        # Includes the watchers (this benchmark's own Progress among them).
        progress.apply_s[batch_kind(batch)] += time.perf_counter() - t0
        return batch

    MemoryStore.apply = apply  # type: ignore[method-assign]


def call(node: SwarmNode, method: str, body: dict[str, Any]) -> dict[str, Any]:
    done = threading.Event()
    out: list[dict[str, Any]] = []

    def reply(answer: dict[str, Any]) -> None:
        out.append(answer)
        done.set()

    if not node.registry.tell("control", ControlRequest(method, body, reply)):
        raise RuntimeError("the control actor is not running")
    if not done.wait(TIMEOUT):
        raise RuntimeError(f"{method} got no answer in {TIMEOUT:.0f} s")
    answer = out[0]
    if not answer.get("ok"):
        raise RuntimeError(f"{method} failed: {answer.get('error')}")
    return answer


def run(replicas: int, profile: bool) -> dict[str, Any]:
    instrument(profile)
    progress = Progress()
    progress.target = replicas
    timed_apply(progress)
    with tempfile.TemporaryDirectory(prefix="pyswarmkit-e2e-") as tmp:
        node = SwarmNode(NodeConfig(state_dir=Path(tmp), hostname="bench", executor="sim"))
        node.store.watch(progress)
        node.start()
        try:
            spec = ServiceSpec(
                annotations=Names(name="bench"),
                task=TaskSpec(container=ContainerSpec(image="sim", command=("sleep", "1d"))),
                mode=ServiceMode(replicas=replicas),
            )
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            service_id = call(node, "service.create", {"spec": spec})["result"]["id"]
            if not progress.reached.wait(TIMEOUT):
                raise RuntimeError(f"{progress.running}/{replicas} running after {TIMEOUT:.0f} s")
            t1 = time.perf_counter()
            cpu1 = time.process_time()
            at_running = {name: (c.messages, c.wall, c.cpu) for name, c in COSTS.items()}
            call(node, "service.remove", {"ref": service_id})
            if not progress.gone.wait(TIMEOUT):
                raise RuntimeError(f"{progress.live} tasks left after {TIMEOUT:.0f} s")
            t2 = time.perf_counter()
            cpu2 = time.process_time()
        finally:
            node.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stages = {
        kind: {
            "first_s": round(progress.first[kind] - t0, 3),
            "last_s": round(progress.last[kind] - t0, 3),
            "batches": progress.batches.get(kind, 0),
            "changes": progress.changes.get(kind, 0),
            "apply_s": round(progress.apply_s.get(kind, 0.0), 3),
        }
        for kind in sorted(progress.first, key=lambda k: progress.first[k])
    }
    actors = {
        name: {
            "messages": c.messages,
            "wall_s": round(c.wall, 3),
            "cpu_s": round(c.cpu, 3),
            "cpu_to_running_s": round(at_running[name][2], 3),
            "by_message": {k: [v[0], round(v[1], 3)] for k, v in c.by_message.items()},
        }
        for name, c in COSTS.items()
    }
    return {
        "replicas": replicas,
        "running_s": round(t1 - t0, 3),
        "removed_s": round(t2 - t1, 3),
        "cpu_running_s": round(cpu1 - cpu0, 3),
        "cpu_removed_s": round(cpu2 - cpu1, 3),
        "peak_rss_mb": round(rss_mb, 1),
        "profiled": profile,
        "stages": stages,
        "actors": actors,
    }


def print_report(r: dict[str, Any], top: int) -> None:
    n = r["replicas"]
    print(f"service create --replicas {n} (sim executor, one node, in process)")
    print(f"  {n}/{n} running after {r['running_s']:.2f} s (CPU {r['cpu_running_s']:.2f} s)")
    print(f"  all removed after     {r['removed_s']:.2f} s (CPU {r['cpu_removed_s']:.2f} s)")
    note = "  [profiled: times inflated]" if r["profiled"] else ""
    print(f"  peak RSS {r['peak_rss_mb']:.0f} MB{note}")
    print()
    head = f"{'stage (store batches)':<36} {'first s':>8} {'last s':>8} {'batches':>8}"
    head += f" {'changes':>9} {'apply s':>8}"
    print(head)
    print("-" * len(head))
    for kind, s in r["stages"].items():
        print(
            f"{kind:<36} {s['first_s']:>8.2f} {s['last_s']:>8.2f} {s['batches']:>8} "
            f"{s['changes']:>9} {s['apply_s']:>8.2f}"
        )
    print()
    head = f"{'actor':<14} {'messages':>9} {'wall s':>8} {'cpu s':>8} {'to run':>7}"
    head += "  costliest messages (count, cpu s)"
    print(head)
    print("-" * len(head))
    for name, a in r["actors"].items():
        msgs = sorted(a["by_message"].items(), key=lambda kv: -kv[1][1])[:3]
        shown = ", ".join(f"{k} {v[0]} {v[1]:.2f}" for k, v in msgs)
        print(
            f"{name:<14} {a['messages']:>9} {a['wall_s']:>8.2f} {a['cpu_s']:>8.2f}"
            f" {a['cpu_to_running_s']:>7.2f}  {shown}"
        )
    if r["profiled"]:
        for name, cost in COSTS.items():
            if cost.profile is None or not cost.messages:
                continue
            out = io.StringIO()
            stats = pstats.Stats(cost.profile, stream=out)
            stats.sort_stats("tottime").print_stats(top)
            print(f"\n=== {name}: top {top} by own time ===")
            lines = out.getvalue().splitlines()
            start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
            print("\n".join(lines[start : start + top + 1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", action="store_true", help="cProfile every actor")
    parser.add_argument("--top", type=int, default=12, help="functions shown per actor")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    result = run(args.replicas, args.profile)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
