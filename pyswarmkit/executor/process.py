"""The default executor: each task is a local process in its own process group.

Output goes to files under ``<state-dir>/worker/tasks/<task-id>/``, removed with
the task. A stop sends SIGTERM (or the task's --stop-signal) to the whole group;
whoever drives the controller sends SIGKILL after the task's stop grace period.

Tasks outlive a node that dies without stopping them (a SIGKILLed swarmd), and
the next swarmd on the same state dir takes them back: each task records
``<pid> <start time>`` in its directory, and ``recover`` adopts every recorded
process that still runs with that start time (a reused pid is never touched).
An adopted task keeps writing to the files it was given; it is no child of this
process, so whether it still runs is read from /proc. Exits, of children and of
adopted tasks alike, are reported as they happen through pidfds
(executor/pidwatch.py), once the executor actor has called ``watch``. The agent then keeps each
adopted task its dispatcher still assigns, and stops every other one, so a task
whose node never returns is stopped the next time its state dir is used.
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pyswarmkit import clock
from pyswarmkit.api.objects import (
    EngineDescription,
    NodeDescription,
    Platform,
    Resources,
    Task,
)
from pyswarmkit.executor.base import EXIT_UNKNOWN, ExecutorError, Found, LogReader, NoLog
from pyswarmkit.executor.health import Policy, probe_argv
from pyswarmkit.executor.pidwatch import PidWatch
from pyswarmkit.executor.probes import ProbeRunner, Target
from pyswarmkit.executor.records import (
    ProcInfo,
    Record,
    is_running,
    may_signal_group,
    parse_record,
    parse_stat,
    sort_records,
)
from pyswarmkit.executor.taskfiles import TaskFile, TaskFiles, default_root
from pyswarmkit.logs.files import FileLogReader, checkpoint

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


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def read_proc(pid: int) -> ProcInfo | None:
    """/proc's view of one process; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read())
    except (OSError, IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None if there is
    no such process."""
    info = read_proc(pid)
    return None if info is None else info.started


PID_FILE = "pid"
# Where a task finds its secret and config files.
SECRETS_ENV = "SWARM_SECRETS_DIR"
CONFIGS_ENV = "SWARM_CONFIGS_DIR"
# How long removing an adopted task waits for it to be gone.
ADOPTED_REMOVE_WAIT = 5.0


def read_records(tasks_dir: Path) -> list[tuple[str, Record | None]]:
    """Every task directory under ``tasks_dir`` with its pid record, if any."""
    if not tasks_dir.is_dir():
        return []
    out: list[tuple[str, Record | None]] = []
    for workdir in sorted(tasks_dir.iterdir()):
        if not workdir.is_dir():
            continue
        try:
            record = parse_record((workdir / PID_FILE).read_text())
        except OSError:
            record = None
        out.append((workdir.name, record))
    return out


def stop_recorded(tasks_dir: Path, grace: float = 5.0) -> list[str]:
    """Stop every task a node recorded under ``tasks_dir`` that still runs: for
    a node that died and will not be started again (``swarmd up`` stopping a
    topology one of whose nodes was killed). SIGTERM to each task's process
    group, SIGKILL to what is left after ``grace`` seconds. Returns the IDs of
    the tasks it signalled; a reused pid is never touched."""
    targets = [
        (task_id, record)
        for task_id, record in read_records(tasks_dir)
        if record is not None and is_running(record, read_proc)
    ]
    for _, record in targets:
        _kill_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_running(r, read_proc) for _, r in targets):
        clock.sleep(0.05)
    for _, record in targets:
        if may_signal_group(record, read_proc):
            _kill_group(record.pid, signal.SIGKILL)
    return [task_id for task_id, _ in targets]


def stop_signal(name: str) -> signal.Signals:
    """The task's ``--stop-signal`` (a name or number, checked when the
    service was created), SIGTERM when it has none."""
    if not name:
        return signal.SIGTERM
    return signal.Signals(int(name)) if name.isdigit() else signal.Signals[name]


class ProcessController:
    def __init__(
        self,
        task: Task,
        workdir: Path,
        adopted: Record | None = None,
        exits: PidWatch | None = None,
        probes: ProbeRunner | None = None,
        files: tuple[TaskFile, ...] = (),
        task_files: TaskFiles | None = None,
    ) -> None:
        self.task = task
        self.workdir = workdir
        # Its secrets and configs, and where they are written (on a tmpfs).
        self.files = files
        self.task_files = task_files
        # Where the process's exit is reported from, once the executor is watched.
        self.exits = exits
        # Where its health check runs, once the executor reports health.
        self.probes = probes
        # Started with a health check: it runs only once the check passes.
        self.awaits_health = False
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        # A process a previous run of the node started: no Popen, only its record.
        self.adopted = adopted

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
        if self.files and self.task_files is not None:
            try:
                # Secrets readable by the task's user (this node's) alone.
                self.task_files.write(self.task.id, self.files, owners=False, secret_mode=0o400)
            except OSError as exc:
                self._drop_files()
                msg = f"writing the task's secrets and configs failed: {exc}"
                raise ExecutorError(msg) from None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for item in self.task.spec.container.env:
            key, _, value = item.partition("=")
            env[key] = value
        if self.task_files is not None:
            base = self.task_files.task_dir(self.task.id)
            for kind, var in (("secrets", SECRETS_ENV), ("configs", CONFIGS_ENV)):
                if (base / kind).is_dir():
                    env[var] = str(base / kind)
        return env

    def _drop_files(self) -> None:
        """The task ended (or never will run): its secrets go at once."""
        if self.task_files is not None:
            self.task_files.remove(self.task.id)

    def start(self) -> int:
        env = self._env()
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
                # No parent-death signal: a task outlives a killed node, and
                # the node's next run adopts it (see the module's docstring).
                start_new_session=True,
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
        self._check_health(env, clock.monotonic())
        if self.exits is not None:
            self.exits.add(self.task.id, pid, self.poll)
        return pid

    def _check_health(self, env: dict[str, str], started: float) -> None:
        """Probe the task as Docker would: ``sh -c CMD`` with the task's
        environment and working directory, on the check's schedule."""
        check = self.task.spec.container.healthcheck
        argv = probe_argv(check)
        if argv is None or self.probes is None or not self.probes.started:
            return
        cwd = self.task.spec.container.dir or None
        self.probes.add(self.task.id, Policy.of(check), Target(argv, env, cwd), started)
        self.awaits_health = True

    def take_over(self, task: Task) -> None:
        """The spec of a task adopted from a previous run, once an assignment
        names it: its health is checked again, as if it had just started."""
        if self.adopted is None or self.awaits_health:
            return
        self.task = task
        self._check_health(self._env(), clock.monotonic())

    def _stop_probes(self) -> None:
        if self.awaits_health and self.probes is not None:
            self.probes.remove(self.task.id)

    def poll(self) -> int | None:
        if self.adopted is not None:
            if is_running(self.adopted, read_proc):
                return None
            self._stop_probes()
            self._signal_adopted(signal.SIGKILL)
            self._drop_files()
            return EXIT_UNKNOWN
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        self._stop_probes()
        # Children the task left behind share its group; they go with it.
        _kill_group(self.proc.pid, signal.SIGKILL)
        self._close()
        self._drop_files()
        # Report a death by signal the way shells and Docker do: 128 + signal.
        return 128 - code if code < 0 else code

    def shutdown(self) -> None:
        sig = stop_signal(self.task.spec.container.stop_signal)
        if self.adopted is not None:
            if is_running(self.adopted, read_proc):
                self._signal_adopted(sig)
        elif self.proc is not None and self.proc.poll() is None:
            _kill_group(self.proc.pid, sig)

    def terminate(self) -> None:
        if self.adopted is not None:
            self._signal_adopted(signal.SIGKILL)
        elif self.proc is not None:
            _kill_group(self.proc.pid, signal.SIGKILL)

    def remove(self) -> None:
        self._stop_probes()
        if self.exits is not None:
            self.exits.discard(self.task.id)
        if self.adopted is not None:
            self._signal_adopted(signal.SIGKILL)
            # Not our child: its new parent reaps it; wait until it has.
            deadline = clock.monotonic() + ADOPTED_REMOVE_WAIT
            while is_running(self.adopted, read_proc) and clock.monotonic() < deadline:
                clock.sleep(0.01)
        if self.proc is not None and self.proc.returncode is None:
            # Once reaped, the pid may belong to another task's group by now.
            _kill_group(self.proc.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.wait(timeout=5)
        self._close()
        self._drop_files()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_files(self) -> list[Path]:
        """The files the task's stdout and stderr go to."""
        return [self.workdir / "stdout.log", self.workdir / "stderr.log"]

    def _signal_adopted(self, sig: signal.Signals) -> None:
        if self.adopted is not None and may_signal_group(self.adopted, read_proc):
            _kill_group(self.adopted.pid, sig)

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
        files_root: Path | None = None,
    ) -> None:
        self.tasks_dir = state_dir / "worker" / "tasks"
        self.task_files = TaskFiles(files_root or default_root(state_dir))
        self.hostname = hostname
        self.resources = resources or machine_resources()
        self.engine_labels = dict(engine_labels or {})
        self.exits = PidWatch()
        self.probes = ProbeRunner()
        self._adopted: dict[str, ProcessController] = {}
        # Output file sizes last recorded per task (see ``scan_logs``).
        self._log_sizes: dict[Path, dict[Path, int]] = {}

    def describe(self) -> NodeDescription:
        return describe_node(self.hostname, self.resources, self.name, self.engine_labels)

    def controller(self, task: Task, files: tuple[TaskFile, ...] = ()) -> ProcessController:
        return ProcessController(
            task,
            self.tasks_dir / task.id,
            exits=self.exits,
            probes=self.probes,
            files=files,
            task_files=self.task_files,
        )

    def watch(self, notify: Callable[[str, int, str], None]) -> None:
        """Report each started or adopted task's exit as it happens (pidfds,
        see executor/pidwatch.py) rather than when polled."""
        self.exits.start(notify)
        for task_id, ctl in self._adopted.items():
            if ctl.adopted is not None:
                self.exits.add(task_id, ctl.adopted.pid, ctl.poll)
        self._adopted = {}

    def watch_health(self, report: Callable[[str, str], None]) -> None:
        """Run the health checks of the tasks started from now on, reporting
        each change, ``report(task_id, "healthy" | "unhealthy")``."""
        self.probes.start(report)

    def close(self) -> None:
        self.exits.close()
        self.probes.close()
        self.task_files.close()

    def recover(self) -> list[Found]:
        """Adopt what a previous run recorded. Whoever made this executor
        holds the state dir (its lock): what is recorded there is a previous
        run's, and no one else's."""
        records = read_records(self.tasks_dir)
        found = sort_records(records, read_proc)
        out: list[Found] = []
        for task_id, record in found.adopt.items():
            log.info("adopted task %s (pid %d) left running by a previous run", task_id, record.pid)
            ctl = ProcessController(
                Task(id=task_id),
                self.tasks_dir / task_id,
                record,
                exits=self.exits,
                probes=self.probes,
                task_files=self.task_files,
            )
            # Watched once ``watch`` starts, which comes after this.
            self._adopted[task_id] = ctl
            out.append(Found(task_id, record.pid, ctl))
        for task_id in found.gone:
            # Its leader is gone, and with it any proof that a process group of
            # that number is still the task's (the pid may have been reused and
            # released since): nothing is signalled.
            ctl = ProcessController(
                Task(id=task_id), self.tasks_dir / task_id, task_files=self.task_files
            )
            log.debug("task %s recorded by a previous run is no longer running", task_id)
            out.append(Found(task_id, 0, ctl))
        if found.gone:
            log.info("%d task(s) recorded by a previous run no longer run", len(found.gone))
        # A task that no longer runs keeps no secret on the node.
        self.task_files.prune(set(found.adopt))
        return out

    def logs(self, task_id: str, *, follow: bool, since: float | None, tail: int) -> LogReader:
        """The task's output files (kept until the task is removed from the
        node), read back through ``logs/files.py``."""
        workdir = self.tasks_dir / task_id
        if not workdir.is_dir() and not follow:
            # Never prepared here, or removed: nothing was kept. (A follow
            # waits: a task just assigned has its files made when it starts.)
            return NoLog()
        return FileLogReader(workdir, follow=follow, since=since, tail=tail, clock=clock.wall)

    def scan_logs(self, wall: float) -> None:
        """Record when each task's output grew (the stamps of its lines) and
        rotate output files past ``ROTATE_BYTES``; the node calls this about
        once a second."""
        try:
            names = os.listdir(self.tasks_dir)
        except OSError:
            return
        seen = self._log_sizes
        alive = set()
        for name in names:
            workdir = self.tasks_dir / name
            alive.add(workdir)
            try:
                checkpoint(workdir, seen.setdefault(workdir, {}), wall)
            except OSError as exc:
                log.warning("recording the output of task %s failed: %s", name, exc)
        for gone in set(seen) - alive:
            del seen[gone]
