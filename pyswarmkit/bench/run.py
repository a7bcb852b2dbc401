"""``swarmd bench FILE``: launch managers and agent hosts, run the file's
services one after the other, measure each from the leader's own record of
commits (``events.since``) and metrics, report, and stop every process it
started.

Processes: each manager is a real ``swarmd --executor sim`` started as
``swarmd up`` starts one (the same command line, free ports on 127.0.0.1,
its state dir's lock held here, a parent-death signal). The first starts the
swarm and leads; the others join it with the manager token (in their
environment, never argv) and the bench waits until each is REACHABLE. Every
manager is drained. The agents run in ``python -m pyswarmkit.bench.agents``
host processes, each joining the first manager with the worker token. Any
of them exiting early, Ctrl-C, SIGTERM or an error stops them all, agent
hosts first, then the managers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pyswarmkit import clock, topology
from pyswarmkit.api.errors import DeadlineExceeded, FailedPrecondition, SwarmError, Unavailable
from pyswarmkit.api.objects import NodeSpec, replace
from pyswarmkit.api.states import NodeAvailability, NodeState, Reachability
from pyswarmkit.bench.agents import encode_agents
from pyswarmkit.bench.report import NodeWatch, ProcSample, ServiceTrack, miss_rate, parse_metrics
from pyswarmkit.bench.spec import BenchSpec
from pyswarmkit.transport.control import ControlClient

MANAGER_PREFIX = "bench-manager-"
# How often the manager's record is read while a service starts.
POLL = 0.1
# A metrics page of a large swarm is built from the whole store: allow for it.
SCRAPE_TIMEOUT = 30.0
# How often, at most, the bench checks that the first manager still leads.
LEADER_CHECK = 5.0


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


def scrape(addr: str) -> dict[str, float]:
    """A manager's unlabelled metrics, from its ``--listen-metrics`` endpoint."""
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=SCRAPE_TIMEOUT) as r:
            return parse_metrics(r.read().decode("utf-8", "replace"))
    except (OSError, ValueError) as err:
        raise Unavailable(f"the metrics at {addr} did not answer: {err}") from None


@dataclass(slots=True)
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    reader: threading.Thread


@dataclass(slots=True)
class _Manager:
    entry: topology.NodeEntry
    listen: str  # its remote API, HOST:PORT
    metrics: str  # its metrics endpoint, HOST:PORT
    child: _Child | None = None


@dataclass(slots=True)
class _Mark:
    """The leader's Raft log and the clock at one point of the run."""

    at: float
    commit: float


@dataclass(frozen=True, slots=True)
class _Leader:
    hostname: str
    pid: int
    metrics: str


def _proc_figures(p: ProcSample) -> dict[str, float]:
    return {
        "cpu_s": round(p.cpu, 2),
        "rss_mb": round(p.rss / 2**20, 1),
        "peak_rss_mb": round(p.peak_rss / 2**20, 1),
    }


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
        self.managers = [
            _Manager(
                topology.NodeEntry(
                    hostname=f"{MANAGER_PREFIX}{i}",
                    state_dir=workdir / f"manager-{i}",
                    socket=workdir / f"manager-{i}" / "swarm.sock",
                    executor="sim",
                    heartbeat_period=spec.heartbeat_period,
                    role="manager",
                ),
                listen=f"127.0.0.1:{topology.free_port()}",
                metrics=f"127.0.0.1:{topology.free_port()}",
            )
            for i in range(1, spec.managers + 1)
        ]
        self._client: ControlClient | None = None
        self._leader_checked_at = 0.0
        # Whether the first manager was seen leading: only then can it lose the lead.
        self._led = False
        self._index = 0

    # --- the run ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        def on_signal(signum: int, frame: Any) -> None:
            self._stop_asked = True

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
        locks = []
        try:
            for m in self.managers:
                locks.append(topology.claim(m.entry))
            return self._run()
        except KeyboardInterrupt:
            self._say("swarmd: bench interrupted: stopping every process it started")
            raise
        finally:
            if self._client is not None:
                self._client.close()
            self._stop_all()
            for lock in locks:
                lock.close()

    def _run(self) -> dict[str, Any]:
        spec = self.spec
        began = clock.monotonic()
        client = self._start_managers()
        leader = self._leader(client)
        self._led = leader.hostname == self.managers[0].entry.hostname
        tokens = client.call("cluster.list")["clusters"][0].join_tokens
        # Every read of the record goes on from where the last one ended, so
        # no node row is missed between the phases (nor left the ring unread).
        self._index = client.call("events.since")["next"]
        # The agents' nodes are all created after this index; the managers'
        # are older (each registers with the dispatcher as it starts).
        managers = self._nodes_of(client, {m.entry.hostname for m in self.managers})
        self._drain(client, managers)
        watch = NodeWatch(others=frozenset(managers.values()))
        first = self._mark(leader)
        agents = spec.agents
        for h, part in enumerate(agents.slices(), 1):
            argv = [
                sys.executable,
                "-m",
                "pyswarmkit.bench.agents",
                "--join-addr",
                topology.dial_addr(self.managers[0].listen),
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
            self._spawn(f"agents-{h}", argv, str(tokens.worker))

        def all_ready() -> bool:
            watch.feed(self._events(client, ["node"]))
            return watch.ready >= agents.count

        def progress() -> str:
            return f"{len(watch.states)} nodes joined, {watch.ready} READY"

        self._wait(f"{agents.count} agents READY", all_ready, self.timeout, progress)
        ready_at = clock.monotonic()
        label_s = self._label_agents(client)
        services = []
        tasks_from = clock.wall()
        for svc in spec.services:
            services.append(self._one_service(client, leader.pid, svc, watch))
        last = self._mark(leader)
        # Node rows the last service's wait did not read yet, and any node DOWN
        # now (a write still on its way when the rows were read).
        watch.feed(self._events(client, ["node"]))
        watch.down.update(
            n.id for n in client.call("node.list")["nodes"] if n.status.state == NodeState.DOWN
        )
        return self._report(
            client, leader, watch, began, ready_at, first, last, label_s, tasks_from, services
        )

    def _report(
        self,
        client: ControlClient,
        leader: _Leader,
        watch: NodeWatch,
        began: float,
        ready_at: float,
        first: _Mark,
        last: _Mark,
        label_s: float,
        tasks_from: float,
        services: list[dict[str, Any]],
    ) -> dict[str, Any]:
        spec, agents = self.spec, self.spec.agents
        now_leader = self._leader(client)
        final = sample(leader.pid)
        misses = int(scrape(leader.metrics).get("swarm_dispatcher_heartbeat_misses_total", 0))
        seconds = last.at - first.at
        entries = int(last.commit - first.commit)
        return {
            "setup": {
                "managers": spec.managers,
                "agents": agents.count,
                "hosts": agents.hosts,
                "heartbeat_period_s": spec.heartbeat_period,
                # From the first agent host started to the last agent READY.
                "register_s": round(ready_at - first.at, 2),
                # From the bench's start: managers up and joined, then the agents.
                "ready_s": round(ready_at - began, 2),
                "labels_s": round(label_s, 2),
            },
            "services": services,
            "totals": {
                "tasks": sum(s["running"] for s in services),
                "to_all_running_s": round(
                    max((s["last_running_at"] for s in services), default=tasks_from) - tasks_from,
                    2,
                ),
                "run_s": round(clock.monotonic() - began, 2),
            },
            "leader": {
                "hostname": leader.hostname,
                "stayed": now_leader.hostname == leader.hostname,
                "cpu_s": round(final.cpu, 2),
                "rss_mb": round(final.rss / 2**20, 1),
                "peak_rss_mb": round(final.peak_rss / 2**20, 1),
            },
            "managers": {
                m.entry.hostname: _proc_figures(sample(m.child.proc.pid))
                for m in self.managers
                if m.child is not None
            },
            "raft": {
                "entries": entries,
                "seconds": round(seconds, 2),
                "entries_per_s": round(entries / seconds, 1) if seconds > 0 else 0.0,
            },
            "heartbeats": {
                "misses": misses,
                "miss_rate": round(
                    miss_rate(misses, agents.count, last.at - ready_at, spec.heartbeat_period),
                    6,
                ),
                "nodes_down": len(watch.down),
            },
            # Kept for readers of the one-manager report: the leader is "the manager".
            "manager": _proc_figures(final),
            "pids": {c.name: c.proc.pid for c in self.children},
        }

    # --- the managers -------------------------------------------------------------

    def _start_managers(self) -> ControlClient:
        """The first manager starts the swarm; the others join it with the
        manager token, one after the other (each joins the Raft group as the
        previous one's membership change has committed), each REACHABLE."""
        first = self.managers[0]
        self._spawn_manager(first, None)
        sock = first.entry.socket
        self._wait("the first manager's control socket", lambda: topology.control_answers(sock))
        client = self._client = ControlClient(str(sock), timeout=30.0)
        token = str(client.call("cluster.list")["clusters"][0].join_tokens.manager)
        for m in self.managers[1:]:
            self._spawn_manager(m, token)
            name = m.entry.hostname
            self._wait(f"manager {name} REACHABLE", lambda n=name: self._reachable(client, n))
        return client

    def _spawn_manager(self, m: _Manager, token: str | None) -> None:
        argv = topology.node_argv(topology.swarmd_command(), m.entry, self.log_level, m.listen)
        argv += ["--listen-metrics", m.metrics, "--election-tick", str(self.spec.election_tick)]
        if token is not None:
            argv += ["--join-addr", topology.dial_addr(self.managers[0].listen)]
        m.child = self._spawn(m.entry.hostname.removeprefix("bench-"), argv, token)

    @staticmethod
    def _reachable(client: ControlClient, hostname: str) -> bool:
        for node in client.call("node.list")["nodes"]:
            status = node.manager_status
            if node.description.hostname == hostname and status is not None:
                return bool(status.reachability == Reachability.REACHABLE)
        return False

    def _leader(self, client: ControlClient) -> _Leader:
        for node in client.call("node.list")["nodes"]:
            status = node.manager_status
            if status is not None and status.leader:
                for m in self.managers:
                    if m.entry.hostname == node.description.hostname and m.child is not None:
                        return _Leader(m.entry.hostname, m.child.proc.pid, m.metrics)
        raise Unavailable("no manager of the bench leads the swarm")

    @staticmethod
    def _nodes_of(client: ControlClient, hostnames: set[str]) -> dict[str, str]:
        return {
            n.description.hostname: n.id
            for n in client.call("node.list")["nodes"]
            if n.description.hostname in hostnames
        }

    def _events(self, client: ControlClient, kinds: list[str]) -> list[list[Any]]:
        """The rows of ``kinds`` committed since the last read."""
        reply = client.call("events.since", {"index": self._index, "kinds": kinds})
        self._index = reply["next"]
        rows: list[list[Any]] = reply["events"]
        return rows

    def _mark(self, leader: _Leader) -> _Mark:
        metrics = scrape(leader.metrics)
        return _Mark(clock.monotonic(), metrics.get("swarm_raft_commit_index", 0.0))

    def _drain(self, client: ControlClient, managers: dict[str, str]) -> None:
        """Drain every manager, as production swarms do, so every task runs
        on an agent."""
        for node_id in managers.values():
            node = client.call("node.inspect", {"ref": node_id})["node"]
            _update_node(
                client, node, lambda spec: replace(spec, availability=NodeAvailability.DRAIN)
            )

    def _label_agents(self, client: ControlClient) -> float:
        """Give each agent the labels the file names, as an operator would
        with ``swarmctl node update --label-add``."""
        started = clock.monotonic()
        agents = self.spec.agents
        if not agents.labels:
            return 0.0
        prefix = agents.hostname_prefix
        managers = {m.entry.hostname for m in self.managers}
        for node in client.call("node.list")["nodes"]:
            self._check()
            name = node.description.hostname
            if name in managers or not name.startswith(prefix):
                continue
            extra = agents.labels_of(int(name[len(prefix) :]) - 1)

            def labelled(spec: NodeSpec, extra: dict[str, str] = extra) -> NodeSpec:
                labels = {**spec.annotations.labels, **extra}
                return replace(spec, annotations=replace(spec.annotations, labels=labels))

            _update_node(client, node, labelled)
        return clock.monotonic() - started

    def _one_service(
        self, client: ControlClient, pid: int, svc: Any, watch: NodeWatch
    ) -> dict[str, Any]:
        before = sample(pid)
        call_at = clock.wall()
        service_id = client.call("service.create", {"spec": svc})["id"]
        track = ServiceTrack(svc.annotations.name, svc.mode.replicas, service_id)
        deadline = clock.monotonic() + self.timeout
        while True:
            rows = self._events(client, ["task", "service", "node"])
            track.feed(rows)
            watch.feed(rows)
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
        figures = track.figures(call_at, after.cpu - before.cpu, after)
        figures["last_running_at"] = max(track.running.values(), default=call_at)
        return figures

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
        self._check_leader()

    def _check_leader(self) -> None:
        """The agents report to the first manager only: once it has lost the
        lead, waiting on is waiting for nothing. Say so at once."""
        first = self.managers[0]
        now = clock.monotonic()
        if not self._led or first.child is None or now - self._leader_checked_at < LEADER_CHECK:
            return
        self._leader_checked_at = now
        try:
            leading = scrape(first.metrics).get("swarm_manager_leader")
        except Unavailable:
            return  # a busy manager answers later; its processes are checked above
        if leading == 0.0:
            raise Unavailable(
                f"{first.entry.hostname} lost the lead (its election timeout is "
                f"{self.spec.election_tick} ticks of 0.1 s; election_tick raises it): "
                "the agents report to it only, so the bench stopped"
            )

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
        """Agent hosts first, then the managers: SIGTERM, SIGKILL past the grace."""
        hosts = [(c.name, c.proc) for c in self.children if c.name.startswith("agents-")]
        managers = [(c.name, c.proc) for c in self.children if not c.name.startswith("agents-")]
        topology.stop_in_order((hosts, managers), self._say)
        for c in self.children:
            c.reader.join(2)


def _update_node(client: ControlClient, node: Any, change: Callable[[NodeSpec], NodeSpec]) -> None:
    """Update ``node``'s spec by ``change``, reading it again when its version
    moved since it was read (its status changes too: a registration, a
    heartbeat's state), as an operator would run the update again."""
    for attempt in range(10):
        try:
            client.call(
                "node.update",
                {"ref": node.id, "version": node.meta.version, "spec": change(node.spec)},
            )
            return
        except FailedPrecondition:
            if attempt == 9:
                raise
            node = client.call("node.inspect", {"ref": node.id})["node"]
