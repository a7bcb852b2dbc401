"""``swarmd bench FILE``: launch a manager and agent hosts, run the file's
services one after the other, measure each from the manager's own record of
commits (``events.since``), report, and stop every process it started.

Processes: the manager is a real ``swarmd --executor sim`` started as
``swarmd up`` starts one (the same command line, a free port on 127.0.0.1,
its state dir's lock held here, a parent-death signal); the agents run in
``python -m pyswarmkit.bench.agents`` host processes, each joining with the
worker token read from the manager's control socket. Any of them exiting
early, Ctrl-C, SIGTERM or an error stops them all, hosts first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pyswarmkit import clock, topology
from pyswarmkit.api.errors import DeadlineExceeded, SwarmError, Unavailable
from pyswarmkit.api.objects import NodeSpec, replace
from pyswarmkit.api.states import NodeAvailability
from pyswarmkit.bench.agents import encode_agents
from pyswarmkit.bench.report import ProcSample, ServiceTrack
from pyswarmkit.bench.spec import BenchSpec
from pyswarmkit.control.events import FIELDS
from pyswarmkit.transport.control import ControlClient

MANAGER_HOSTNAME = "bench-manager"
# How often the manager's record is read while a service starts.
POLL = 0.1
# A host stops its agents at once; a manager stops its (simulated) tasks.
STOP_GRACE = 15.0
_STATE = FIELDS.index("state")
_KIND = FIELDS.index("kind")
_ID = FIELDS.index("id")


def sample(pid: int) -> ProcSample:
    """CPU time and memory of a live process, from /proc."""
    out = ProcSample()
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        # utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
        out.cpu = (int(fields[11]) + int(fields[12])) / ticks
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out.rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    out.peak_rss = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


@dataclass(slots=True)
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    reader: threading.Thread


class Bench:
    def __init__(
        self,
        spec: BenchSpec,
        workdir: Path,
        *,
        timeout: float = 120.0,
        log_level: str = "warning",
        err: IO[str] | None = None,
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        self.timeout = timeout
        self.log_level = log_level
        self.err = err or sys.stderr
        self._lines = topology.Lines(self.err)
        self.children: list[_Child] = []
        # Set from a signal handler: a plain flag, polled.
        self._stop_asked = False
        self.manager = topology.NodeEntry(
            hostname=MANAGER_HOSTNAME,
            state_dir=workdir / "manager",
            socket=workdir / "manager" / "swarm.sock",
            executor="sim",
            heartbeat_period=spec.heartbeat_period,
            role="manager",
        )
        self._client: ControlClient | None = None

    # --- the run ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        def on_signal(signum: int, frame: Any) -> None:
            self._stop_asked = True

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
        lock = topology.claim(self.manager)
        try:
            return self._run()
        except KeyboardInterrupt:
            self._say("swarmd: bench interrupted: stopping every process it started")
            raise
        finally:
            if self._client is not None:
                self._client.close()
            self._stop_all()
            lock.close()

    def _run(self) -> dict[str, Any]:
        spec = self.spec
        began = clock.monotonic()
        listen = f"127.0.0.1:{topology.free_port()}"
        argv = topology.node_argv(topology.swarmd_command(), self.manager, self.log_level, listen)
        manager = self._spawn("manager", argv, None)
        sock = self.manager.socket
        self._wait("the manager's control socket", lambda: topology.control_answers(sock))
        client = self._client = ControlClient(str(sock), timeout=30.0)
        token = topology.worker_token(sock)
        index = client.call("events.since")["next"]
        # The agents' nodes are all created after this index; the manager's
        # may be older (it registers with its own dispatcher at once).
        manager_ids = {n.id for n in client.call("node.list")["nodes"]}
        agents = spec.agents
        for h, part in enumerate(agents.slices(), 1):
            argv = [
                sys.executable,
                "-m",
                "pyswarmkit.bench.agents",
                "--join-addr",
                topology.dial_addr(listen),
                "--host",
                str(h),
                "--agents",
                encode_agents(agents),
                "--first",
                str(part.start),
                "--count",
                str(len(part)),
                "--log-level",
                self.log_level,
            ]
            self._spawn(f"agents-{h}", argv, token)
        states: dict[str, str] = {}

        def all_ready() -> bool:
            nonlocal index
            reply = client.call("events.since", {"index": index, "kinds": ["node"]})
            index = reply["next"]
            for r in reply["events"]:
                if r[_ID] not in manager_ids:
                    states[r[_ID]] = r[_STATE]
            return sum(1 for s in states.values() if s == "READY") >= agents.count

        def progress() -> str:
            ready = sum(1 for s in states.values() if s == "READY")
            return f"{len(states)} nodes joined, {ready} READY"

        self._wait(f"{agents.count} agents READY", all_ready, self.timeout, progress)
        ready_s = clock.monotonic() - began
        label_s = self._prepare_nodes(client)
        services = []
        for svc in spec.services:
            services.append(self._one_service(client, manager.proc.pid, svc))
        final = sample(manager.proc.pid)
        return {
            "setup": {
                "managers": spec.managers,
                "agents": agents.count,
                "hosts": agents.hosts,
                "ready_s": round(ready_s, 2),
                "labels_s": round(label_s, 2),
            },
            "services": services,
            "manager": {
                "cpu_s": round(final.cpu, 2),
                "rss_mb": round(final.rss / 2**20, 1),
                "peak_rss_mb": round(final.peak_rss / 2**20, 1),
            },
            "pids": {c.name: c.proc.pid for c in self.children},
        }

    def _prepare_nodes(self, client: ControlClient) -> float:
        """Drain the manager (as production swarms do, so every task runs on
        an agent) and give each agent the labels the file names, as an
        operator would with ``swarmctl node update --label-add``."""
        started = clock.monotonic()
        agents = self.spec.agents
        prefix = agents.hostname_prefix
        for node in client.call("node.list")["nodes"]:
            self._check()
            name = node.description.hostname
            spec: NodeSpec = node.spec
            if name == MANAGER_HOSTNAME:
                spec = replace(spec, availability=NodeAvailability.DRAIN)
            elif agents.labels and name.startswith(prefix):
                i = int(name[len(prefix) :]) - 1
                labels = {**spec.annotations.labels, **agents.labels_of(i)}
                spec = replace(spec, annotations=replace(spec.annotations, labels=labels))
            else:
                continue
            client.call("node.update", {"ref": node.id, "version": node.meta.version, "spec": spec})
        return clock.monotonic() - started

    def _one_service(self, client: ControlClient, pid: int, svc: Any) -> dict[str, Any]:
        index = client.call("events.since")["next"]
        before = sample(pid)
        call_at = clock.wall()
        service_id = client.call("service.create", {"spec": svc})["id"]
        track = ServiceTrack(svc.annotations.name, svc.mode.replicas, service_id)
        deadline = clock.monotonic() + self.timeout
        while True:
            reply = client.call("events.since", {"index": index, "kinds": ["task", "service"]})
            index = reply["next"]
            track.feed(reply["events"])
            if track.done:
                break
            self._check()
            if clock.monotonic() > deadline:
                raise DeadlineExceeded(
                    f"service {track.name}: {len(track.running)} of {track.replicas} tasks "
                    f"running after {self.timeout:g} s"
                )
            time.sleep(POLL)
        after = sample(pid)
        return track.figures(call_at, after.cpu - before.cpu, after)

    # --- processes ----------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], token: str | None) -> _Child:
        env = dict(os.environ)
        env.pop("SWARM_JOIN_TOKEN", None)
        if token is not None:
            env["SWARM_JOIN_TOKEN"] = token
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            # Ctrl-C in a terminal reaches bench alone, which stops them in order.
            process_group=0,
            preexec_fn=topology.die_with_parent(os.getpid()),
        )
        assert proc.stdout is not None
        reader = threading.Thread(
            target=self._relay, args=(name, proc.stdout), name=f"bench-relay-{name}", daemon=True
        )
        reader.start()
        child = _Child(name, proc, reader)
        self.children.append(child)
        return child

    def _relay(self, name: str, stream: IO[bytes]) -> None:
        self._lines.relay(name, stream)

    def _say(self, line: str) -> None:
        self._lines.say(line)

    def _check(self) -> None:
        if self._stop_asked:
            raise KeyboardInterrupt
        dead = [c for c in self.children if c.proc.poll() is not None]
        if dead:
            what = ", ".join(f"{c.name} exited with code {c.proc.returncode}" for c in dead)
            raise Unavailable(f"{what}: stopped the bench")

    def _wait(
        self,
        what: str,
        ready: Any,
        timeout: float = topology.START_TIMEOUT,
        progress: Any = None,
    ) -> None:
        deadline = clock.monotonic() + timeout
        while True:
            self._check()
            try:
                if ready():
                    return
            except SwarmError:
                pass  # not up yet: asked again
            if clock.monotonic() > deadline:
                seen = f" ({progress()})" if progress is not None else ""
                raise DeadlineExceeded(f"timed out after {timeout:g} s waiting for {what}{seen}")
            time.sleep(0.2)

    def _stop_all(self) -> None:
        """Agent hosts first, then the manager: SIGTERM, SIGKILL past the grace."""
        hosts = [(c.name, c.proc) for c in self.children if c.name != "manager"]
        managers = [(c.name, c.proc) for c in self.children if c.name == "manager"]
        topology.stop_in_order((hosts, managers), self._say)
        for c in self.children:
            c.reader.join(2)
