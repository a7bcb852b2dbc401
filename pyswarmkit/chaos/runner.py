"""Run one chaos plan against a real swarm of ``swarmd`` processes on 127.0.0.1.

Three managers and three workers (process executor; tasks are ``sleep``),
each with message faults in its transport (``transport/faults.py``, turned
on through the environment) and a partition file; each manager's Raft log on
a small tmpfs of its own (``chaos/disk.py``), so that it can fill up. The plan's steps run at
their times; each fault heals by itself. Then every fault stops, every node
runs again, and the invariants (``chaos/checks.py``) must all hold within the
settling time. Whatever happens, every process the run started is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pyswarmkit.chaos import disk
from pyswarmkit.chaos.checks import Expect, View, check_all
from pyswarmkit.chaos.plan import FAULTS, Plan, Step
from pyswarmkit.faults import ENV as FAULTS_ENV
from pyswarmkit.topology import die_with_parent, free_port

RUN_ENV = "PYSWARMKIT_CHAOS_RUN"
BIN = Path(sys.executable).parent
CTL_TIMEOUT = 15.0
# What a manager that cannot write its Raft log says as it stops.
FULL_DISK_LINE = "cannot write this manager's log under"


@dataclass(slots=True)
class Member:
    name: str
    manager: bool
    port: int
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    # Under a fault: "kill", "freeze", "isolate", "clock" or "disk"; "" when healthy.
    fault: str = ""


class Run:
    def __init__(self, plan: Plan, root: Path, out: IO[str], settle: float = 120.0) -> None:
        self.plan = plan
        self.root = root
        self.out = out
        self.settle = settle
        self.members = {
            n: Member(n, n in plan.managers, free_port()) for n in plan.managers + plan.workers
        }
        self.first = plan.managers[0]
        self.expected: dict[str, Expect] = {}
        self.heals: list[tuple[float, str]] = []
        self.began = 0.0
        self.faketime = libfaketime()
        self.acked = 0
        self.unacked = 0
        # Each manager's Raft log disk (a tmpfs), when this run may mount them.
        self.disks: dict[str, Path] = {}
        self.no_disks = ""
        # Managers that stopped on a full disk, and said so.
        self.disk_stops = 0
        # What went wrong while the faults ran (checked again after settling).
        self.problems: list[str] = []

    # --- processes --------------------------------------------------------------

    def sock(self, name: str) -> str:
        return str(self.root / name / "swarm.sock")

    def fault_file(self, name: str) -> Path:
        return self.root / f"{name}.faults"

    def clock_file(self, name: str) -> Path:
        return self.root / f"{name}.faketime"

    def set_clock(self, name: str, offset: int) -> None:
        tmp = self.clock_file(name).with_suffix(".tmp")
        tmp.write_text(f"{offset:+d}\n")
        # Whole or not at all: the library reads it on every clock read.
        os.replace(tmp, self.clock_file(name))

    def say(self, line: str) -> None:
        t = time.monotonic() - self.began if self.began else 0.0
        print(f"[{t:6.1f}s] {line}", file=self.out, flush=True)

    def start(self, m: Member) -> None:
        with open(self.root / f"{m.name}.log", "ab") as log:
            m.proc = subprocess.Popen(
                m.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **m.env},
                start_new_session=True,
                # SIGTERM when this run dies, however it dies: no node outlives it.
                preexec_fn=die_with_parent(os.getpid()),
            )

    def prepare(self, m: Member, token: str) -> None:
        seed = self.plan.seed * 1000 + sorted(self.members).index(m.name)
        wire = self.plan.wire[m.name].env(seed, str(self.fault_file(m.name)))
        m.env = {FAULTS_ENV: wire, RUN_ENV: str(self.root)}
        if self.faketime:
            self.clock_file(m.name).write_text("+0\n")
            m.env.update(
                LD_PRELOAD=self.faketime,
                FAKETIME_TIMESTAMP_FILE=str(self.clock_file(m.name)),
                FAKETIME_NO_CACHE="1",
                FAKETIME_DONT_FAKE_MONOTONIC="1",
            )
        m.argv = [
            str(BIN / "swarmd"),
            "-d",
            str(self.root / m.name),
            "--hostname",
            m.name,
            "--log-level",
            "info",
        ]
        if m.manager:
            m.argv += [
                "--listen-control-api",
                self.sock(m.name),
                "--listen-remote-api",
                f"127.0.0.1:{m.port}",
            ]
        if m.name != self.first:
            m.argv += ["--join-addr", f"127.0.0.1:{self.members[self.first].port}"]
            # In the environment, not argv; a restart reuses the node's identity.
            m.env["SWARM_JOIN_TOKEN"] = token

    def ctl(self, *args: str, via: str | None = None) -> subprocess.CompletedProcess[str]:
        names = [via] if via else [n for n in self.plan.managers if not self.members[n].fault]
        last: subprocess.CompletedProcess[str] | None = None
        for name in names:
            try:
                last = subprocess.run(
                    [str(BIN / "swarmctl"), "-s", self.sock(name), *args],
                    capture_output=True,
                    text=True,
                    timeout=CTL_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                last = subprocess.CompletedProcess(args, 124, "", "timed out")
                continue
            if last.returncode == 0 or "connect" not in last.stderr:
                return last
        return last or subprocess.CompletedProcess(args, 1, "", "no manager to ask")

    def wait(self, what: str, cond: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.SubprocessError, ValueError, KeyError):
                if cond():
                    return
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}")

    def nodes(self, via: str | None = None) -> list[dict[str, Any]]:
        r = self.ctl("node", "ls", "--format", "json", via=via)
        return list(json.loads(r.stdout)) if r.returncode == 0 else []

    def ready(self, count: int) -> bool:
        return sum(bool(x["status"]["state"] == "ready") for x in self.nodes(self.first)) >= count

    def mount_disks(self) -> None:
        for name in self.plan.managers:
            path = self.root / name / "raft"
            why = disk.mount_small(path)
            if why:
                self.no_disks = why
                self.say(f"disk faults off: cannot mount a tmpfs ({why})")
                return
            self.disks[name] = path

    def up(self) -> None:
        if any(s.op == "disk" for s in self.plan.steps):
            self.mount_disks()
        first = self.members[self.first]
        self.prepare(first, "")
        self.start(first)
        self.wait(f"{first.name} READY", lambda: len(self.nodes(first.name)) == 1)
        self.ctl("cluster", "update", "default", "--heartbeat-period", "1s", via=first.name)
        out = self.ctl("cluster", "inspect", "default", via=first.name).stdout
        tokens = dict(re.findall(r"^    (Worker|Manager): (\S+)$", out, re.M))
        for count, name in enumerate(self.plan.managers[1:] + self.plan.workers, start=2):
            m = self.members[name]
            self.prepare(m, tokens["Manager" if m.manager else "Worker"])
            self.start(m)
            self.wait(f"{name} READY", _counted(self.ready, count))

    def stop(self) -> None:
        for m in self.members.values():
            if m.proc is not None and m.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(m.proc.pid, signal.SIGCONT)
                    m.proc.terminate()
        for m in self.members.values():
            if m.proc is None:
                continue
            try:
                m.proc.wait(30)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(10)
        # Tasks of nodes killed and never stopped since: this run's, by its mark.
        for pid in task_pids(self.root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for path in self.disks.values():
            disk.unmount(path)
        self.disks.clear()

    # --- steps ------------------------------------------------------------------

    def step(self, s: Step) -> None:
        if s.op in FAULTS:
            self.fault(s)
            return
        if s.op == "create":
            r = self.ctl(
                "service", "create", "--detach", "--name", s.target, "--replicas", s.value,
                "--restart-delay", "1s", "--command", "sleep", "--args", "1000",
            )  # fmt: skip
            self._note(s, r, Expect(True, int(s.value)), Expect(None))
        elif s.op == "update":
            r = self.ctl("service", "update", "--detach", s.target, "--env", f"GEN={s.value}")
            self._change(s, r, generation=s.value)
        elif s.op == "scale":
            r = self.ctl("service", "update", "--detach", s.target, "--replicas", s.value)
            self._change(s, r, replicas=int(s.value))
        elif s.op == "remove":
            r = self.ctl("service", "rm", s.target)
            self._note(s, r, Expect(False), Expect(None))
        elif s.op in ("drain", "activate"):
            r = self.ctl("node", "update", "--availability", s.op.replace("activate", "active"),
                         s.target)  # fmt: skip
            self._report(s, r)
        elif s.op == "label":
            r = self.ctl("node", "update", "--label-add", f"zone={s.value}", s.target)
            self._report(s, r)

    def _report(self, s: Step, r: subprocess.CompletedProcess[str]) -> bool:
        ok = r.returncode == 0
        if ok:
            self.acked += 1
        else:
            self.unacked += 1
        err = (
            ""
            if ok
            else f": {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
        )
        outcome = "ok" if ok else "not acknowledged"
        self.say(f"{s.op} {s.target} {s.value} {outcome}{err}".replace("  ", " "))
        return ok

    def _note(self, s: Step, r: subprocess.CompletedProcess[str], ok: Expect, bad: Expect) -> None:
        if self._report(s, r):
            self.expected[s.target] = ok
        elif "not found" in r.stderr or "already exists" in r.stderr:
            return  # refused as a whole: nothing was written
        else:
            self.expected[s.target] = bad

    def _change(
        self,
        s: Step,
        r: subprocess.CompletedProcess[str],
        replicas: int | None = None,
        generation: str | None = None,
    ) -> None:
        want = self.expected.get(s.target)
        ok = self._report(s, r)
        if want is None or "not found" in r.stderr:
            return
        if ok:
            want.exists = True
        if replicas is not None:
            want.replicas = replicas if ok else None
        if generation is not None:
            want.generation = generation if ok else None

    def fault(self, s: Step) -> None:
        m = self.members[s.target]
        if m.fault or m.proc is None:
            return
        if s.op == "clock" and not self.faketime:
            self.say(f"skipped: clock {s.target} (libfaketime is not installed)")
            return
        if s.op == "disk" and s.target not in self.disks:
            self.say(f"skipped: disk {s.target} (no tmpfs: {self.no_disks or 'not a manager'})")
            return
        m.fault = s.op
        jump = f" by {int(s.value):+d}s" if s.op == "clock" else ""
        self.say(f"fault: {s.op} {s.target}{jump} for {s.length:g}s")
        if s.op == "kill":
            m.proc.kill()
            m.proc.wait(10)
        elif s.op == "freeze":
            os.kill(m.proc.pid, signal.SIGSTOP)
        elif s.op == "clock":
            self.set_clock(s.target, int(s.value))
        elif s.op == "disk":
            disk.fill(self.disks[s.target])
        else:
            self.fault_file(s.target).write_text("isolate")
        self.heals.append((time.monotonic() + s.length, s.target))

    def heal(self, name: str) -> None:
        m = self.members[name]
        if m.fault == "kill":
            self.start(m)
        elif m.fault == "freeze" and m.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(m.proc.pid, signal.SIGCONT)
        elif m.fault == "isolate":
            self.fault_file(name).write_text("")
        elif m.fault == "clock":
            self.set_clock(name, 0)
        elif m.fault == "disk":
            disk.free(self.disks[name])
            if m.proc is not None and m.proc.poll() is not None:
                # It stopped at its first write that found no room: it must
                # have said why, and start again by itself once there is room.
                said = FULL_DISK_LINE in (self.root / f"{name}.log").read_text(errors="replace")
                self.disk_stops += said
                self.say(f"{name} had stopped (exit {m.proc.returncode}); starting it again")
                if not said:
                    self.problems.append(f"{name} stopped on a full disk without saying so")
                self.start(m)
        self.say(f"healed: {m.fault} {name}")
        m.fault = ""

    # --- the run ----------------------------------------------------------------

    def run(self) -> list[str]:
        self.up()
        self.began = time.monotonic()
        self.say(f"swarm up: {len(self.members)} nodes; {len(self.plan.steps)} steps to run")
        pending = list(self.plan.steps)
        while pending or self.heals:
            # Before every step, not once per pass: a step that took long (a
            # command waiting out an election) must not let later steps run
            # ahead of a heal that was due before them.
            for at, name in sorted(h for h in self.heals if h[0] <= time.monotonic()):
                self.heals.remove((at, name))
                self.heal(name)
            if (
                pending
                and pending[0].at <= time.monotonic() - self.began
                and not self._manager_busy(pending[0])
            ):
                self.step(pending.pop(0))
                continue
            time.sleep(0.1)
        for name in self.members:
            self.fault_file(name).write_text("calm")
        self.say("faults over: settling")
        return self.settled()

    def _manager_busy(self, s: Step) -> bool:
        """A fault for a manager waits while another manager is under one (a
        fault that started late heals late): a quorum must always remain."""
        managers = self.plan.managers
        return (
            s.op in FAULTS
            and s.target in managers
            and any(self.members[n].fault for n in managers if n != s.target)
        )

    def views(self) -> dict[str, View]:
        out: dict[str, View] = {}
        for name in self.plan.managers:
            view: View = {}
            for kind, args in (
                ("services", ("service", "ls")),
                ("tasks", ("task", "ls", "-a")),
                ("nodes", ("node", "ls")),
            ):
                r = self.ctl(*args, "--format", "json", via=name)
                if r.returncode != 0:
                    break
                view[kind] = json.loads(r.stdout)
            else:
                out[name] = view
        return out

    def settled(self) -> list[str]:
        deadline = time.monotonic() + self.settle
        problems: list[str] = []
        while time.monotonic() < deadline:
            views = self.views()
            if len(views) < len(self.plan.managers):
                problems = [f"only {sorted(views)} of the managers answer"]
            else:
                problems = check_all(views, self.expected, task_pids(self.root))
            if not problems:
                if self.disk_stops:
                    self.say(f"managers stopped by a full disk and back: {self.disk_stops}")
                self.say("every invariant holds")
                return self.problems
            time.sleep(2.0)
        return self.problems + problems


FAKETIME_DIRS = (
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
    "/usr/local/lib/faketime",
)


def libfaketime() -> str:
    """libfaketime's multi-threaded build (swarmd reads the clock from many
    threads), or "" where it is not installed (apt-get install faketime)."""
    for d in FAKETIME_DIRS:
        for name in ("libfaketimeMT.so.1", "libfaketime.so.1"):
            if (Path(d) / name).exists():
                return str(Path(d) / name)
    return ""


def _counted(ready: Callable[[int], bool], count: int) -> Callable[[], bool]:
    return lambda: ready(count)


def task_pids(root: Path) -> set[int]:
    """The task processes of the run under ``root``: ``sleep``s carrying its mark."""
    mark = f"{RUN_ENV}={root}".encode()
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", "rb") as f:
                if f.read().strip() != b"sleep":
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        out.add(int(entry))
    return out


def run_seed(plan: Plan, out: IO[str], settle: float, keep: bool) -> tuple[list[str], Path]:
    root = Path(tempfile.mkdtemp(prefix=f"chaos-{plan.seed}-"))
    run = Run(plan, root, out, settle)
    problems: list[str] = []
    try:
        problems = run.run()
    except (RuntimeError, OSError) as exc:
        problems = [f"the run could not go on: {exc}"]
    finally:
        run.stop()
        if not problems and not keep:
            shutil.rmtree(root, ignore_errors=True)
    return problems, root
