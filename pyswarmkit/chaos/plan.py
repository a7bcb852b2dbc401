"""What a chaos run does, and when, from its seed.

Pure: ``plan(seed, duration, ...)`` is the same list of steps for the same
arguments, so a failing seed replays. A step is either workload (what an
operator does: create, update, scale and remove services, drain and
activate nodes, add labels) or a fault with its own end (a node killed with
SIGKILL and started again, frozen with SIGSTOP and continued, cut off from
every other node and joined again, its wall clock jumped by hours and set
back, a manager's Raft log disk filled up and emptied again), and one manager
has a slow disk for the whole run. At most one manager is under a fault at
a time, so a quorum of the three always remains; workers may all be.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

WORKLOAD = ("create", "update", "scale", "remove", "drain", "activate", "label")
FAULTS = ("kill", "freeze", "isolate", "clock", "disk")
# Faults only a manager can have: a full disk under its Raft log.
MANAGER_FAULTS = ("disk",)


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    op: str
    target: str = ""
    # Seconds a fault lasts; a workload step's value (replicas, a label).
    length: float = 0.0
    value: str = ""


@dataclass(frozen=True, slots=True)
class Wire:
    """The message faults of one node's transport, for the whole run."""

    drop: float
    dup: float
    delay: float
    fsync_delay: float = 0.0

    def env(self, seed: int, file: str) -> str:
        return (
            f"seed={seed},drop={self.drop:.3f},dup={self.dup:.3f},"
            f"delay={self.delay:.3f},delay_max=0.3,file={file},"
            f"fsync_delay={self.fsync_delay:.3f}"
        )


@dataclass(frozen=True, slots=True)
class Plan:
    seed: int
    duration: float
    managers: tuple[str, ...]
    workers: tuple[str, ...]
    steps: tuple[Step, ...]
    wire: dict[str, Wire] = field(default_factory=dict)


def plan(
    seed: int,
    duration: float,
    managers: tuple[str, ...] = ("m1", "m2", "m3"),
    workers: tuple[str, ...] = ("w1", "w2", "w3"),
    every: float = 2.0,
) -> Plan:
    rng = random.Random(seed)
    nodes = managers + workers
    slow = rng.choice(managers)
    wire = {
        n: Wire(
            rng.uniform(0, 0.03),
            rng.uniform(0, 0.03),
            rng.uniform(0, 0.05),
            rng.uniform(0.005, 0.05) if n == slow else 0.0,
        )
        for n in nodes
    }
    steps: list[Step] = []
    # When each node's current fault ends; managers share one slot.
    busy_until = {n: 0.0 for n in nodes}
    manager_busy_until = 0.0
    services = 0
    # The services the plan has created and not removed.
    live: list[str] = []
    t = 1.0
    while t < duration:
        if rng.random() < 0.35:
            op = rng.choice(FAULTS)
            free = [
                n
                for n in nodes
                if busy_until[n] <= t
                and (n not in managers or manager_busy_until <= t)
                and (op not in MANAGER_FAULTS or n in managers)
            ]
            if free:
                target = rng.choice(free)
                length = round(rng.uniform(2.0, 8.0), 2)
                # A clock fault's value: the jump, in seconds, either way.
                value = str(rng.choice((-1, 1)) * rng.randint(3600, 86400)) if op == "clock" else ""
                busy_until[target] = t + length + 2.0
                if target in managers:
                    # The next manager fault waits until this one has healed
                    # and the member has caught up.
                    manager_busy_until = t + length + 6.0
                steps.append(Step(round(t, 2), op, target, length, value))
        else:
            op = rng.choices(WORKLOAD, weights=(4, 3, 3, 2, 1, 1, 1))[0]
            if op == "create" or (not live and op in ("update", "scale", "remove")):
                services += 1
                name = f"c{services}"
                live.append(name)
                steps.append(Step(round(t, 2), "create", name, value=str(rng.randint(1, 4))))
            elif op in ("update", "scale", "remove"):
                name = rng.choice(live)
                if op == "remove":
                    live.remove(name)
                value = str(rng.randint(0, 5)) if op == "scale" else str(rng.randint(1, 10**6))
                steps.append(Step(round(t, 2), op, name, value=value))
            elif op in ("drain", "activate"):
                steps.append(Step(round(t, 2), op, rng.choice(workers)))
            else:
                steps.append(
                    Step(round(t, 2), op, rng.choice(nodes), value=f"z{rng.randint(1, 3)}")
                )
        t += rng.uniform(0.5, every)
    return Plan(seed, duration, managers, workers, tuple(steps), wire)
