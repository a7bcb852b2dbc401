"""The default executor: each task is a local process in its own process group.

Output goes to files under ``<state-dir>/worker/tasks/<task-id>/``. A stop sends
SIGTERM to the whole group; whoever drives the controller sends SIGKILL after
the task's stop grace period.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
from pathlib import Path
from typing import IO

from pyswarmkit.api.objects import (
    EngineDescription,
    NodeDescription,
    Platform,
    Resources,
    Task,
)
from pyswarmkit.executor.base import ExecutorError


def machine_resources() -> Resources:
    cpus = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    return Resources(nano_cpus=cpus * 1_000_000_000, memory_bytes=memory)


def local_platform() -> Platform:
    return Platform(os=platform.system().lower(), architecture=platform.machine())


def describe_node(
    hostname: str, resources: Resources, engine: str, labels: dict[str, str]
) -> NodeDescription:
    """What a worker tells the dispatcher about itself."""
    return NodeDescription(
        hostname=hostname,
        platform=local_platform(),
        resources=resources,
        engine=EngineDescription(engine_version=engine, labels=dict(labels)),
    )


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ProcessController:
    def __init__(self, task: Task, workdir: Path) -> None:
        self.task = task
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []

    @property
    def argv(self) -> list[str]:
        c = self.task.spec.container
        return [*c.command, *c.args]

    def prepare(self) -> None:
        if not self.argv:
            raise ExecutorError("no command to run: the process executor needs --command")
        cwd = self.task.spec.container.dir
        if cwd and not os.path.isdir(cwd):
            raise ExecutorError(f"working directory {cwd} does not exist")
        for item in self.task.spec.container.env:
            if "=" not in item:
                raise ExecutorError(f"environment entry {item!r} is not KEY=VALUE")
        self.workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> int:
        env = dict(os.environ)
        for item in self.task.spec.container.env:
            key, _, value = item.partition("=")
            env[key] = value
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - held for the task's life
        err = open(self.workdir / "stderr.log", "ab")  # noqa: SIM115
        self._files = [out, err]
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.task.spec.container.dir or None,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._close()
            reason = exc.strerror or str(exc)
            raise ExecutorError(f"starting {self.argv[0]!r} failed: {reason}") from exc
        return self.proc.pid

    def poll(self) -> int | None:
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        # Children the task left behind share its group; they go with it.
        _kill_group(self.proc.pid, signal.SIGKILL)
        self._close()
        # Report a death by signal the way shells and Docker do: 128 + signal.
        return 128 - code if code < 0 else code

    def shutdown(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _kill_group(self.proc.pid, signal.SIGTERM)

    def terminate(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc.pid, signal.SIGKILL)

    def remove(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.wait(timeout=5)
        self._close()

    def logs(self) -> list[Path]:
        return [self.workdir / "stdout.log", self.workdir / "stderr.log"]

    def _close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []


class ProcessExecutor:
    name = "process"

    def __init__(
        self,
        state_dir: Path,
        hostname: str,
        resources: Resources | None = None,
        engine_labels: dict[str, str] | None = None,
    ) -> None:
        self.tasks_dir = state_dir / "worker" / "tasks"
        self.hostname = hostname
        self.resources = resources or machine_resources()
        self.engine_labels = dict(engine_labels or {})

    def describe(self) -> NodeDescription:
        return describe_node(self.hostname, self.resources, self.name, self.engine_labels)

    def controller(self, task: Task) -> ProcessController:
        return ProcessController(task, self.tasks_dir / task.id)
