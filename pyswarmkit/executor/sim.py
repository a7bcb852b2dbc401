"""An executor whose tasks do nothing: they run until stopped. For scale tests."""

from __future__ import annotations

from pyswarmkit.api.objects import NodeDescription, Resources, Task
from pyswarmkit.executor.base import Found, LogReader, NoLog
from pyswarmkit.executor.process import describe_node, machine_resources
from pyswarmkit.executor.taskfiles import TaskFile


class SimController:
    def __init__(self, task: Task) -> None:
        self.task = task
        self.exit_code: int | None = None
        self.running = False

    def prepare(self) -> None:
        pass

    def start(self) -> int:
        self.running = True
        return 0

    def poll(self) -> int | None:
        return self.exit_code

    def shutdown(self) -> None:
        if self.running:
            self.exit_code = 0

    def terminate(self) -> None:
        self.shutdown()

    def remove(self) -> None:
        self.running = False


class SimExecutor:
    name = "sim"

    def __init__(
        self,
        hostname: str,
        resources: Resources | None = None,
        engine_labels: dict[str, str] | None = None,
    ) -> None:
        self.hostname = hostname
        self.resources = resources or machine_resources()
        self.engine_labels = dict(engine_labels or {})

    def describe(self) -> NodeDescription:
        return describe_node(self.hostname, self.resources, self.name, self.engine_labels)

    def controller(self, task: Task, files: tuple[TaskFile, ...] = ()) -> SimController:
        return SimController(task)

    def recover(self) -> list[Found]:
        # Simulated tasks live in memory: nothing outlives the node.
        return []

    def logs(self, task_id: str, *, follow: bool, since: float | None, tail: int) -> LogReader:
        # Simulated tasks write nothing.
        return NoLog()
