"""The default executor: each task is a local process in its own process group.

Output goes to files under ``<state-dir>/worker/tasks/<task-id>/``, removed with
the task. A stop sends SIGTERM to the whole group; whoever drives the controller
sends SIGKILL after the task's stop grace period.

Tasks must not outlive their node unnoticed. Each task process gets SIGKILL
from the kernel when the thread that started it exits (PR_SET_PDEATHSIG): that
is the executor actor's thread, which ends only after it has stopped every
task, or when the node dies. Only the group's leader gets that signal, so each
task also records ``<pid> <start time>`` in its directory, and the next
executor on the same state dir kills the groups a previous run left (the start
time from /proc tells a reused pid from ours) before it starts anything.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pyswarmkit.api.objects import (
    EngineDescription,
    NodeDescription,
    Platform,
    Resources,
    Task,
)
from pyswarmkit.executor.base import ExecutorError

log = logging.getLogger(__name__)


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


_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None


def _prctl() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.prctl


def set_parent_death_signal(sig: signal.Signals) -> bool:
    """Have the kernel send ``sig`` to this process when the thread that forked
    it exits (Linux's PR_SET_PDEATHSIG). False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(_prctl()(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _die_with_parent_thread() -> Callable[[], None] | None:
    """What the forked child runs before exec: arm SIGKILL for when the
    starting thread exits. The libc function is looked up here, not after the
    fork, so the child only makes one system call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = _prctl()
    except (OSError, AttributeError):
        return None
    kill = int(signal.SIGKILL)

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)

    return arm


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Whether the group had a process to signal."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (/proc/<pid>/stat
    field 22); None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces or parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


PID_FILE = "pid"


def stop_leftovers(tasks_dir: Path, log: logging.Logger) -> int:
    """Kill the task processes a previous run recorded under ``tasks_dir`` and
    remove their directories (the store that knew those tasks is gone).
    Returns how many process groups were signalled."""
    if not tasks_dir.is_dir():
        return 0
    killed = 0
    for workdir in sorted(tasks_dir.iterdir()):
        if not workdir.is_dir():
            continue
        record = _read_pid_record(workdir / PID_FILE)
        if record is not None:
            pid, started = record
            now_started = start_time(pid)
            # A live pid with another start time was reused: the old group is
            # empty (Linux keeps a pid number while any group uses it). A
            # vanished leader may have left members in its group: kill that too.
            if (now_started is None or now_started == started) and _signal_group(
                pid, signal.SIGKILL
            ):
                log.warning(
                    "stopped task %s (process group %d) left running by a previous run",
                    workdir.name,
                    pid,
                )
                killed += 1
        shutil.rmtree(workdir, ignore_errors=True)
    return killed


def _read_pid_record(path: Path) -> tuple[int, int] | None:
    try:
        pid_text, started_text = path.read_text().split()
        pid, started = int(pid_text), int(started_text)
    except (OSError, ValueError):
        return None
    return (pid, started) if pid > 1 else None


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
                preexec_fn=_die_with_parent_thread(),
            )
        except OSError as exc:
            self._close()
            reason = exc.strerror or str(exc)
            raise ExecutorError(f"starting {self.argv[0]!r} failed: {reason}") from exc
        pid = self.proc.pid
        started = start_time(pid)
        if started is not None:
            record = self.workdir / PID_FILE
            record.write_text(f"{pid} {started}\n")
        return pid

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
        shutil.rmtree(self.workdir, ignore_errors=True)

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
        # Whoever made this executor holds the state dir: what is recorded
        # there is a previous run's, and no one else's.
        stop_leftovers(self.tasks_dir, log)
        self.hostname = hostname
        self.resources = resources or machine_resources()
        self.engine_labels = dict(engine_labels or {})

    def describe(self) -> NodeDescription:
        return describe_node(self.hostname, self.resources, self.name, self.engine_labels)

    def controller(self, task: Task) -> ProcessController:
        return ProcessController(task, self.tasks_dir / task.id)
