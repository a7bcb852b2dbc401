"""Restart policy: whether a finished task's slot gets a new task, and how many
restarts a slot has had (SwarmKit's restart supervisor, without its timers)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pyswarmkit.api.objects import RestartPolicy, Task
from pyswarmkit.api.states import RestartCondition, TaskState

SlotKey = tuple[str, int]
# What restarts are counted by: a SlotKey, or (service id, node id) for the
# services that run one task per node (global services and global jobs).
RestartKey = tuple[str, int | str]


def wants_restart(policy: RestartPolicy, task: Task) -> bool:
    """The policy's answer for a task that stopped: ``on-failure`` restarts
    anything that did not complete successfully (a non-zero exit is FAILED, so
    COMPLETE is the one success)."""
    if policy.condition == RestartCondition.NONE:
        return False
    if policy.condition == RestartCondition.ON_FAILURE:
        return task.status.state != TaskState.COMPLETE
    return True


@dataclass(slots=True)
class SlotRestarts:
    """The restarts of one slot under one spec version."""

    spec_version: int
    total: int = 0
    # Times (monotonic) of the latest restarts, oldest first; kept only when the
    # policy has a window, and never more than max attempts of them, which is
    # all the window check can look at.
    recent: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class RestartHistory:
    """Restarts per (service, slot), for max attempts within a window.

    Recorded only for policies with max attempts, and keyed by spec version as
    SwarmKit does: a slot's count starts afresh when the service's task spec
    changes. A new leader rebuilds it from the tasks in the store."""

    slots: dict[RestartKey, SlotRestarts] = field(default_factory=dict)

    def allowed(
        self, policy: RestartPolicy, key: RestartKey, spec_version: int, now: float
    ) -> bool:
        if policy.max_attempts <= 0:
            return True
        info = self.slots.get(key)
        if info is None or info.spec_version != spec_version:
            return True
        if policy.window <= 0:
            return info.total < policy.max_attempts
        _expire(info, policy.window, now)
        return len(info.recent) < policy.max_attempts

    def record(self, policy: RestartPolicy, key: RestartKey, spec_version: int, now: float) -> None:
        if policy.max_attempts <= 0:
            return
        info = self.slots.get(key)
        if info is None or info.spec_version != spec_version:
            info = SlotRestarts(spec_version, recent=deque(maxlen=policy.max_attempts))
            self.slots[key] = info
        info.total += 1
        if policy.window > 0:
            info.recent.append(now)
            _expire(info, policy.window, now)

    def forget_slot(self, key: RestartKey) -> None:
        self.slots.pop(key, None)

    def forget_service(self, service_id: str) -> None:
        for key in [k for k in self.slots if k[0] == service_id]:
            del self.slots[key]

    def __len__(self) -> int:
        return len(self.slots)


def _expire(info: SlotRestarts, window: float, now: float) -> None:
    """Drop restarts that fell out of the window; they can never count again."""
    while info.recent and info.recent[0] <= now - window:
        info.recent.popleft()
