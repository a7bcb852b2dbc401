"""The executor protocol, after SwarmKit's controller: an executor describes
its node and makes one controller per task; the executor actor drives them.

A stop is a signal now plus a deadline the actor enforces on its ticks. Two
optional members change how the actor drives an executor:

- ``blocking = True``: steps may wait (on an engine, a pull); the actor runs
  them in a bounded pool, each task's in order.
- ``watch(notify)``: the executor reports each started or adopted task's exit
  itself, ``notify(task_id, exit_code, err)`` from any thread, and ``close()``
  ends that; such an executor's controllers are polled only at shutdown.
- ``watch_health(report)``: the executor runs health checks and reports each
  change, ``report(task_id, "healthy" | "unhealthy")``, from any thread; a
  controller that started a task with a check says ``awaits_health``, and
  that task counts as RUNNING only once healthy (executor/health.py).

A task's log comes from the executor, not its controller: a task that ended
(or ran under the node's previous run) has no controller but still has its
output, as long as the executor keeps it. ``logs`` returns a ``LogReader``
that never blocks: an executor whose log source blocks reads it on a thread
of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pyswarmkit.api.objects import NodeDescription, Task
from pyswarmkit.executor.taskfiles import TaskFile
from pyswarmkit.logs.lines import LogLine

# The exit code of a task that exited while adopted: only a process's parent
# learns its exit status, and an adopted task's parent was the node's previous run.
EXIT_UNKNOWN = -1


class ExecutorError(Exception):
    """A task could not be prepared or started; the message goes into its status."""


class Controller(Protocol):
    task: Task

    def prepare(self) -> None:
        """Check and set up what the task needs; raise ExecutorError if it cannot run."""

    def start(self) -> int:
        """Start the task; return its pid (0 where there is none)."""

    def poll(self) -> int | None:
        """The exit code once the task has exited, else None."""

    def shutdown(self) -> None:
        """Ask the task to stop (SIGTERM for processes)."""

    def terminate(self) -> None:
        """Stop the task at once (SIGKILL for processes)."""

    def remove(self) -> None:
        """Release everything the task holds; it must not be running after this."""


@dataclass(frozen=True, slots=True)
class Found:
    """A task a previous run of this node left: ``pid`` is its running
    process, adopted by ``controller``, or 0 when the process is gone."""

    task_id: str
    pid: int
    controller: Controller


class LogReader(Protocol):
    """A task's log as lines: ``read`` returns at once with what is there (at
    most ``max_bytes`` of text or ``max_lines`` lines, maybe none); ``done``
    once everything was read and no more will come (never, when following)."""

    @property
    def done(self) -> bool: ...

    def read(self, max_bytes: int, max_lines: int) -> list[LogLine]: ...

    def close(self) -> None: ...


class NoLog:
    """The log of a task that left none (or an executor that keeps none)."""

    done = True

    def read(self, max_bytes: int, max_lines: int) -> list[LogLine]:
        return []

    def close(self) -> None:
        pass


class Executor(Protocol):
    name: str

    def describe(self) -> NodeDescription: ...

    def controller(self, task: Task, files: tuple[TaskFile, ...] = ()) -> Controller:
        """A controller for ``task``, which gets ``files`` (its secrets and
        configs) when prepared."""
        ...

    def recover(self) -> list[Found]:
        """Adopt the tasks a previous run on this node's state left, once,
        before any other call."""
        ...

    def logs(self, task_id: str, *, follow: bool, since: float | None, tail: int) -> LogReader:
        """The task's output from ``since`` (wall seconds), its last ``tail``
        lines (-1: all), going on with what it writes later with ``follow``."""
        ...
