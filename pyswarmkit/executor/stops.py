"""When a stopping task has outlasted its grace period. Pure: times are arguments."""

from __future__ import annotations

import heapq


class StopDeadlines:
    """SIGTERM was sent at ``now``; SIGKILL is due at ``now + grace``."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def start(self, task_id: str, now: float, grace: float) -> None:
        when = now + max(0.0, grace)
        self._due[task_id] = when
        heapq.heappush(self._heap, (when, task_id))

    def cancel(self, task_id: str) -> None:
        self._due.pop(task_id, None)
        # Cancelled entries stay in the heap until due; with many stops at once
        # (a service of 100,000 removed) rebuild it rather than hold them all.
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(when, tid) for tid, when in self._due.items()]
            heapq.heapify(self._heap)

    def pop_due(self, now: float) -> list[str]:
        """Tasks whose grace ran out by ``now``; each is returned once."""
        out: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            when, task_id = heapq.heappop(self._heap)
            if self._due.get(task_id) == when:
                del self._due[task_id]
                out.append(task_id)
        return out

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._due
