"""Restart policy: whether, and when, a finished task's slot gets a new task."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyswarmkit.api.objects import RestartPolicy, Task
from pyswarmkit.api.states import RestartCondition, TaskState


def wants_restart(policy: RestartPolicy, task: Task) -> bool:
    if policy.condition == RestartCondition.NONE:
        return False
    if policy.condition == RestartCondition.ON_FAILURE:
        return task.status.state in (TaskState.FAILED, TaskState.REJECTED, TaskState.ORPHANED)
    return True


@dataclass(slots=True)
class RestartHistory:
    """Restart times per (service, slot), for max attempts within a window.

    Kept in memory as SwarmKit does: a new leader starts counting afresh."""

    times: dict[tuple[str, int], list[float]] = field(default_factory=dict)

    def allowed(self, policy: RestartPolicy, key: tuple[str, int], now: float) -> bool:
        if policy.max_attempts <= 0:
            return True
        times = self.times.get(key, [])
        if policy.window > 0:
            times = [t for t in times if t > now - policy.window]
        return len(times) < policy.max_attempts

    def record(self, key: tuple[str, int], now: float) -> None:
        self.times.setdefault(key, []).append(now)

    def forget_service(self, service_id: str) -> None:
        for key in [k for k in self.times if k[0] == service_id]:
            del self.times[key]
