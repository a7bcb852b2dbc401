"""Which secrets and configs a node holds, because of which of its tasks.

A node gets a secret's or config's data only while a task assigned to it
needs it: a task needs what its spec references while it is meant to run
(desired state at most RUNNING). The dispatcher keeps one ``Held`` per
session, sends an object with the first assignment set that makes a task
need it, and tells the node to forget it with the set after which no task
needs it any more.

Pure: fed tasks, it answers with what to add and what to drop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from pyswarmkit.api.objects import Task
from pyswarmkit.api.states import TaskState

# ("secret" | "config", object id)
Dep = tuple[Literal["secret", "config"], str]


def needs(task: Task) -> frozenset[Dep]:
    """What ``task`` needs on its node now."""
    if task.desired_state > TaskState.RUNNING:
        return frozenset()
    c = task.spec.container
    if not c.secrets and not c.configs:
        return frozenset()
    deps: list[Dep] = [("secret", r.secret_id) for r in c.secrets if r.secret_id]
    deps += [("config", r.config_id) for r in c.configs if r.config_id]
    return frozenset(deps)


@dataclass(slots=True)
class Held:
    by_task: dict[str, frozenset[Dep]] = field(default_factory=dict)
    count: Counter[Dep] = field(default_factory=Counter)

    def reset(self) -> None:
        self.by_task.clear()
        self.count.clear()

    def set(self, task_id: str, deps: frozenset[Dep]) -> tuple[list[Dep], list[Dep]]:
        """The task now needs ``deps``: returns what the node gets newly, and
        what no task on it needs any more."""
        old = self.by_task.get(task_id, frozenset())
        if old == deps:
            return [], []
        if deps:
            self.by_task[task_id] = deps
        else:
            self.by_task.pop(task_id, None)
        added: list[Dep] = []
        for dep in deps - old:
            self.count[dep] += 1
            if self.count[dep] == 1:
                added.append(dep)
        dropped: list[Dep] = []
        for dep in old - deps:
            self.count[dep] -= 1
            if self.count[dep] <= 0:
                del self.count[dep]
                dropped.append(dep)
        return added, dropped

    def drop(self, task_id: str) -> list[Dep]:
        return self.set(task_id, frozenset())[1]
