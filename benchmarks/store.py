"""Store throughput: 10,000 tasks created, updated and deleted in one batch each.

    python benchmarks/store.py [--tasks N] [--rounds R] [--json]

Each round uses a fresh store; the best round is reported (the least disturbed
by other work on the machine). Also measures the codec, since with Raft every
batch is encoded once on its way into the log and decoded, with every field
checked, by each follower: targets are 1 us to encode and 3 us to decode and
check one task.
"""

from __future__ import annotations

import argparse
import json
import time

from pyswarmkit.api import codec
from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import (
    ContainerSpec,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
    replace,
)
from pyswarmkit.api.states import TaskState
from pyswarmkit.store.memory import Change, MemoryStore


def make_tasks(n: int) -> list[Task]:
    spec = ServiceSpec(task=TaskSpec(container=ContainerSpec(command=("sleep",), args=("1000",))))
    service = Service(id=new_id(), spec=spec)
    status = TaskStatus(timestamp=time.time(), state=TaskState.PENDING)
    return [
        Task(id=new_id(), service_id=service.id, slot=i + 1, spec=spec.task, status=status)
        for i in range(n)
    ]


def one_round(n: int) -> dict[str, float]:
    tasks = make_tasks(n)
    store = MemoryStore()
    t0 = time.perf_counter()
    store.apply([Change("create", t) for t in tasks], 1, time.time())
    t1 = time.perf_counter()
    assigned = TaskStatus(timestamp=time.time(), state=TaskState.ASSIGNED)
    updates = [
        Change("update", replace(t, node_id="node-1", status=assigned)) for t in store.tasks()
    ]
    t2 = time.perf_counter()
    store.apply(updates, 2, time.time())
    t3 = time.perf_counter()
    data = codec.encode([c.obj for c in updates])
    t4 = time.perf_counter()
    decoded = codec.decode(data, list[Task])
    t5 = time.perf_counter()
    assert decoded[0] == updates[0].obj
    store.apply([Change("delete", t) for t in store.tasks()], 3, time.time())
    t6 = time.perf_counter()
    assert store.count("task") == 0
    return {
        "create_per_s": n / (t1 - t0),
        "update_per_s": n / (t3 - t2),
        "delete_per_s": n / (t6 - t5),
        "encode_per_s": n / (t4 - t3),
        "decode_per_s": n / (t5 - t4),
        "encoded_bytes_per_task": len(data) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.tasks < 1 or args.rounds < 1:
        parser.error("--tasks and --rounds must be at least 1")
    rounds = [one_round(args.tasks) for _ in range(args.rounds)]
    best = {k: max(r[k] for r in rounds) for k in rounds[0] if k.endswith("_per_s")}
    best["encoded_bytes_per_task"] = rounds[0]["encoded_bytes_per_task"]
    result = {"tasks": args.tasks, **{k: round(v) for k, v in best.items()}}
    if args.json:
        print(json.dumps(result))
        return
    print(f"store: {args.tasks:,} tasks per batch, best of {args.rounds} rounds")
    print(f"{'operation':<28}{'tasks/s':>14}{'ms per batch':>14}")
    for key, label in [
        ("create_per_s", "create (one batch)"),
        ("update_per_s", "update (one batch)"),
        ("delete_per_s", "delete (one batch)"),
        ("encode_per_s", "codec encode"),
        ("decode_per_s", "codec decode and check"),
    ]:
        rate = best[key]
        print(f"{label:<28}{rate:>14,.0f}{1000 * args.tasks / rate:>14.1f}")
    print(f"encoded size: {best['encoded_bytes_per_task']:.0f} bytes per task")


if __name__ == "__main__":
    main()
