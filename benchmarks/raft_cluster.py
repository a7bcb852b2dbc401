"""Three replicated managers on 127.0.0.1, beside three PySyncObj processes.

Ours: three manager processes over CurveZMQ, each with its Raft log under its
own state dir (``DurableStorage``, one ``fdatasync`` per Ready round). The
first starts the swarm, the other two join with the manager token, as
``swarmd --join-addr ... --join-token ...`` does.

PySyncObj (``pip install -e '.[bench]'``): three processes replicating a
counter whose command carries 64 bytes; PySyncObj keeps its log in memory
(no journal file, so no fsync), its defaults otherwise. Without it installed,
ours is measured alone and the JSON says why PySyncObj was skipped.

Both are driven the same way, in the same run:

- ``throughput``: committed writes per second with N writes in flight at all
  times (each completion sends the next), one ``--seconds`` run for each N of
  ``--clients``; each member's CPU (by thread for ours) and, for ours, how
  many writes shared each of the leader's fdatasyncs;
- ``latency`` / ``follower_latency``: one write at a time (light load, before
  any throughput run), p50/p99 of the time from submitting it to its commit
  being applied in the writer's process, on the leader and on a follower
  (forwarded to the leader); for ours, each member's fdatasync times meanwhile;
- ``failover_s``: ``--failovers`` times, from ``kill -9`` of the leader's
  process to the first write committed through a surviving member, which
  starts a new attempt every 20 ms (a client that keeps retrying: the figure
  is when the swarm serves writes again, not how long one stuck attempt
  waits). The killed member is started again and catches up before the next.

**Why a child-process harness rather than three ``swarmd``:** each child runs
one ``SwarmNode`` manager (the same code ``swarmd`` runs: its actors, the
CurveZMQ transport, the durable log) and takes commands from this script on
its stdin, so the script can ask any member who leads, time its fdatasyncs
and read its threads' CPU. The load generator runs inside the writer's
process and writes the store as the control actor does (a ``Transact`` per
write, here creating a service with no replicas and the 64-byte payload as
its command), so the figures are those of the store over Raft, not of the
control socket and its JSON codec; PySyncObj is driven from inside its
leader's process too.

Everything started here stops by itself: every child gets SIGKILL when this
process dies (``PR_SET_PDEATHSIG``), exits when its stdin closes or a command
fails, and kills itself after a time limit derived from the run's length;
this process kills what is left on any exit path (SIGTERM and SIGHUP unwind
like Ctrl-C) and removes its temporary directory. Interrupted, it says so in
one line and exits with 128 and the signal's number (130 for Ctrl-C, 143 for
SIGTERM).

``--profile`` runs cProfile inside the Raft and store actors of the leader and
of a follower during the throughput runs: where a missed target's time goes.

Usage:
    python benchmarks/raft_cluster.py [--json] [--seconds S] [--clients N,M,...]
        [--writes W] [--failovers K] [--only ours|pysyncobj] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PAYLOAD = 64
NO_PYSYNCOBJ = "pysyncobj is not installed (pip install -e '.[bench]')"
# A member's attempts after the leader died: one every this many seconds.
RETRY_EVERY = 0.02
# The longest one command to a child may take, beyond its own duration.
SLACK = 60.0
# Writes built ahead per second of a throughput run (beyond that, built as sent).
PREPARED_PER_S = 40_000
# Every child this process started, so an interrupted run can make sure none
# outlives it whatever the cleanup on the way out managed to do.
STARTED: list[subprocess.Popen[str]] = []


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP: unwinds like Ctrl-C (``except Exception``
    lets it through, every ``finally`` runs) and remembers which signal, for
    the exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The stop signals received so far.
SIGNALLED: list[int] = []


def on_stop_signal(signum: int, frame: object) -> None:
    # Only the first signal unwinds: a second Ctrl-C while children are being
    # killed and the temporary directory removed would cut that cleanup short.
    SIGNALLED.append(signum)
    if len(SIGNALLED) == 1:
        raise Interrupted(signum)


# --- both kinds of child ------------------------------------------------------


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the process that started it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)  # it died before the line above


def self_destruct(after: float) -> None:
    timer = threading.Timer(after, lambda: os._exit(3))
    timer.daemon = True
    timer.start()


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Driver:
    """One process's side of the load: ``submit(on_done)`` starts one write and
    calls ``on_done(ok)`` from any thread once it committed (or failed)."""

    submit: Callable[[Callable[[bool], None]], None]

    def prepare(self, writes: int) -> None:
        """Build ahead, before the clock starts, what ``writes`` writes will
        send: the load generator's own work is not the system's."""

    def throughput(self, seconds: float, clients: int) -> dict[str, Any]:
        self.prepare(int(seconds * PREPARED_PER_S))
        lock = threading.Lock()
        done = threading.Event()
        counts = {"ok": 0, "failed": 0, "in_flight": 0}
        end = time.monotonic() + seconds

        def one() -> None:
            with lock:
                counts["in_flight"] += 1
            self.submit(finished)

        def finished(ok: bool) -> None:
            now = time.monotonic()
            with lock:
                counts["in_flight"] -= 1
                if now <= end:
                    counts["ok" if ok else "failed"] += 1
                more = now < end
                idle = counts["in_flight"] == 0
            if more:
                one()
            elif idle:
                done.set()

        start = time.monotonic()
        end = start + seconds
        for _ in range(clients):
            one()
        drained = done.wait(seconds + SLACK)
        took = min(time.monotonic(), end) - start
        return {
            "writes": counts["ok"],
            "failed": counts["failed"],
            "seconds": round(took, 3),
            "writes_per_s": round(counts["ok"] / took, 1) if took > 0 else 0.0,
            "drained": drained,
        }

    def latency(self, writes: int, seconds: float) -> dict[str, Any]:
        samples: list[float] = []
        failed = 0
        end = time.monotonic() + seconds
        while len(samples) < writes and time.monotonic() < end:
            got = threading.Event()
            result: list[bool] = []

            def finished(ok: bool, _r: list[bool] = result, _g: threading.Event = got) -> None:
                _r.append(ok)
                _g.set()

            t0 = time.perf_counter()
            self.submit(finished)
            if not got.wait(SLACK):
                failed += 1
                break
            dt = time.perf_counter() - t0
            if result[0]:
                samples.append(dt * 1000)
            else:
                failed += 1
        return {
            "writes": len(samples),
            "failed": failed,
            "p50_ms": round(percentile(samples, 50), 3),
            "p99_ms": round(percentile(samples, 99), 3),
            "max_ms": round(max(samples), 3) if samples else None,
        }

    def first_write(self, timeout: float) -> dict[str, Any]:
        """Attempt a write every RETRY_EVERY until one commits: the monotonic
        time (shared by every process on the machine) it committed at."""
        first: list[float] = []
        got = threading.Event()
        attempts = 0

        def finished(ok: bool) -> None:
            if ok and not got.is_set():
                first.append(time.monotonic())
                got.set()

        end = time.monotonic() + timeout
        while not got.is_set() and time.monotonic() < end:
            attempts += 1
            self.submit(finished)
            got.wait(RETRY_EVERY)
        return {"committed_at": first[0] if first else None, "attempts": attempts}


def serve(driver: Driver, status: Callable[[], dict[str, Any]], stop: Callable[[], None]) -> None:
    """Answer the parent's commands, one JSON object a line, until told to stop
    or stdin closes."""
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "status":
            say(status())
        elif op == "throughput":
            say(driver.throughput(cmd["seconds"], cmd["clients"]))
        elif op == "latency":
            say(driver.latency(cmd["writes"], cmd["seconds"]))
        elif op == "first_write":
            say(driver.first_write(cmd["timeout"]))
        elif op == "profile":
            setattr(driver, "profiling", cmd["on"])  # noqa: B010
            say({})
        elif op == "syncs":
            say(sync_times() if SYNCS or cmd.get("always") else {})
        elif op == "threads":
            say(thread_cpu())
        elif op == "extra":
            say(getattr(driver, "extra", dict)())
        elif op == "stop":
            break
    stop()
    say({"stopped": True})


# --- our manager, in a child --------------------------------------------------


class OursDriver(Driver):
    def __init__(self, node: Any, profile: bool) -> None:
        from pyswarmkit import clock
        from pyswarmkit.actors.messages import Transact
        from pyswarmkit.api import codec
        from pyswarmkit.api.ids import ID_LENGTH, to_base36
        from pyswarmkit.api.objects import (
            Annotations,
            ContainerSpec,
            Service,
            ServiceMode,
            ServiceSpec,
            TaskSpec,
        )
        from pyswarmkit.store.memory import Change

        self.node = node
        self.profiles: dict[str, Any] = {}
        self.profiling = False
        if profile:
            self._instrument()
        payload = "x" * PAYLOAD
        prefix = f"b{os.getpid()}-"
        # Unique IDs without the OS's random source: the load generator should
        # cost little beside what it measures.
        base = os.getpid() << 64
        seq = iter(range(1 << 62))

        def build() -> Service:
            n = next(seq)
            return Service(
                id=to_base36(base + n, ID_LENGTH),
                spec=ServiceSpec(
                    annotations=Annotations(name=f"{prefix}{n}"),
                    task=TaskSpec(container=ContainerSpec(image="bench", command=(payload,))),
                    mode=ServiceMode(replicas=0),
                ),
            )

        # Writes built ahead arrive encoded, as a control request's spec does,
        # and are decoded here: the leader pays what it would for a client's.
        ready: collections.deque[bytes] = collections.deque()
        decode = codec.decoder(Service).decode

        def prepare(writes: int) -> None:
            while len(ready) < writes:
                ready.append(codec.encode(build()))

        self.prepare = prepare  # type: ignore[method-assign]

        def submit(on_done: Callable[[bool], None]) -> None:
            try:
                service = decode(ready.popleft())
            except IndexError:
                service = build()
            change = [Change("create", service)]

            def done(batch: Any, err: Any) -> None:
                on_done(err is None)

            if not node.registry.tell("store", Transact(lambda _s: change, clock.wall(), done)):
                on_done(False)

        self.submit = submit

    def _instrument(self) -> None:
        import cProfile

        from pyswarmkit.actors.raft import RaftActor
        from pyswarmkit.actors.store import StoreActor

        for name, cls in (("raft", RaftActor), ("store", StoreActor)):
            prof = cProfile.Profile()
            self.profiles[name] = prof
            original = cls.on_receive

            def wrapped(
                actor: Any,
                message: Any,
                _orig: Callable[[Any, Any], Any] = original,
                _prof: Any = prof,
            ) -> Any:
                if not self.profiling:
                    return _orig(actor, message)
                _prof.enable()
                try:
                    return _orig(actor, message)
                finally:
                    _prof.disable()

            setattr(cls, "on_receive", wrapped)  # noqa: B010

    def extra(self) -> dict[str, Any]:
        import io
        import pstats

        out: dict[str, Any] = {}
        for name, prof in self.profiles.items():
            if not prof.getstats():
                continue
            for order in ("tottime", "cumulative"):
                buf = io.StringIO()
                stats = pstats.Stats(prof, stream=buf)
                stats.sort_stats(order).print_stats(20)
                lines = buf.getvalue().splitlines()
                start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
                out[f"{name} by {order}"] = lines[start : start + 21]
        return out


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each thread spent between two ``thread_cpu()`` readings,
    costliest first (threads under 10 ms left out)."""
    diff = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: round(v, 2) for k, v in sorted(diff.items(), key=lambda kv: -kv[1]) if v >= 0.01}


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name (Linux)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid_dir in Path("/proc/self/task").iterdir():
        try:
            fields = (tid_dir / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tid = int(tid_dir.name)
        # utime and stime are the 14th and 15th fields (after pid and comm).
        cpu = (int(fields[11]) + int(fields[12])) / tick
        name = names.get(tid, f"native-{tid}")
        # pykka's threads are named after their actor class and a number,
        # the node's after the node's ID.
        key = name.split("-")[0]
        out[key] = out.get(key, 0.0) + cpu
    return out


# How long each fdatasync of the Raft log took here (ms), since last asked.
SYNCS: list[float] = []


def time_syncs() -> None:
    from pyswarmkit.raft import DurableStorage

    original = DurableStorage.sync

    def sync(storage: DurableStorage) -> None:
        t0 = time.perf_counter()
        original(storage)
        SYNCS.append((time.perf_counter() - t0) * 1000)

    setattr(DurableStorage, "sync", sync)  # noqa: B010


def sync_times() -> dict[str, Any]:
    taken = SYNCS[:]
    del SYNCS[:]
    return {
        "syncs": len(taken),
        "p50_ms": round(percentile(taken, 50), 3) if taken else None,
        "p99_ms": round(percentile(taken, 99), 3) if taken else None,
    }


def ours_child(args: argparse.Namespace) -> None:
    from pyswarmkit.node import NodeConfig, SwarmNode, tune_gc

    time_syncs()
    config = NodeConfig(
        state_dir=Path(args.state),
        hostname=args.name,
        executor="sim",
        listen_remote_api=args.listen,
        join_addr=args.join or None,
        join_token=args.token or None,
    )
    node = SwarmNode(config)
    node.start()
    tune_gc()  # as swarmd does
    driver = OursDriver(node, args.profile)
    clusters = node.store.clusters()
    token = clusters[0].join_tokens.manager if clusters and not args.join else None
    say({"ready": True, "node_id": node.node_id, "token": token})

    def status() -> dict[str, Any]:
        raft = node.raft
        assert raft is not None
        core = raft.core
        return {
            "leading": raft.leading,
            "voters": len(core.voters),
            "has_leader": bool(core.leader),
            "applied": core.applied_index,
        }

    serve(driver, status, node.stop)


# --- PySyncObj, in a child ----------------------------------------------------


def pso_child(args: argparse.Namespace) -> None:
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):  # type: ignore[misc, unused-ignore]
        def __init__(self, me: str, others: list[str]) -> None:
            super().__init__(me, others, SyncObjConf())
            self.count = 0
            self.last = b""

        @replicated  # type: ignore[untyped-decorator, unused-ignore]
        def add(self, command: bytes) -> int:
            self.count += 1
            self.last = command
            return self.count

    obj = Counter(args.listen, [p for p in args.partners.split(",") if p])
    payload = b"x" * PAYLOAD

    class PsoDriver(Driver):
        pass

    driver = PsoDriver()

    def submit(on_done: Callable[[bool], None]) -> None:
        def callback(result: Any, error: Any) -> None:
            on_done(error == 0)

        obj.add(payload, callback=callback)

    driver.submit = submit
    say({"ready": True, "node_id": args.listen, "token": None})

    def status() -> dict[str, Any]:
        return {
            "leading": bool(obj._isLeader()),
            "voters": 1 + len(obj.otherNodes),
            "has_leader": obj._getLeader() is not None and obj.isReady(),
            "applied": obj.raftLastApplied,
        }

    serve(driver, status, obj.destroy)


# --- the parent -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    def __init__(self, name: str, argv: list[str], limit: float, log: Path) -> None:
        self.name = name
        self.log = log
        self.argv = argv
        self.limit = limit
        self.pids: list[int] = []
        self.start()

    def start(self) -> None:
        argv, limit = self.argv, self.limit
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    *argv,
                    "--limit",
                    str(limit),
                    "--parent",
                    str(os.getpid()),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                bufsize=1,
            )
        self.hello: dict[str, Any] = {}
        self.pids.append(self.proc.pid)
        STARTED.append(self.proc)

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(
            target=lambda: result.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            tail = (
                self.log.read_text(errors="replace").splitlines()[-15:] if self.log.exists() else []
            )
            gone = self.proc.poll()
            why = f"exited with {gone}" if gone is not None else f"no answer in {timeout:.0f} s"
            raise RuntimeError(f"{self.name}: {why}; its log ends:\n" + "\n".join(tail))
        return json.loads(result[0])  # type: ignore[no-any-return]

    def ask(self, wait: float, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read(wait)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                pipe.close()  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.ask(15, op="stop")
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close()


@contextlib.contextmanager
def cluster_of(kind: str, root: Path, limit: float, profile: bool) -> Iterator[list[Child]]:
    children: list[Child] = []
    root.mkdir(parents=True, exist_ok=True)
    try:
        ports = [free_port() for _ in range(3)]
        addrs = [f"127.0.0.1:{p}" for p in ports]
        if kind == "ours":
            first = ["ours", "--name", "m1", "--state", str(root / "m1"), "--listen", addrs[0]]
            if profile:
                first.append("--profile")
            children.append(Child("m1", first, limit, root / "m1.log"))
            hello = children[0].read(60)
            children[0].hello = hello
            for i in (1, 2):
                name = f"m{i + 1}"
                argv = ["ours", "--name", name, "--state", str(root / name)]
                argv += ["--listen", addrs[i], "--join", addrs[0], "--token", hello["token"]]
                if profile:
                    argv.append("--profile")
                children.append(Child(name, argv, limit, root / f"{name}.log"))
                children[-1].hello = children[-1].read(60)
        else:
            for i, addr in enumerate(addrs):
                others = ",".join(a for a in addrs if a != addr)
                argv = ["pysyncobj", "--name", f"p{i + 1}", "--listen", addr]
                name = f"p{i + 1}"
                argv += ["--partners", others]
                children.append(Child(name, argv, limit, root / f"{name}.log"))
            for child in children:
                child.hello = child.read(60)
        yield children
    except BaseException:
        # Interrupted or failed: no time for goodbyes.
        for child in children:
            child.kill()
        raise
    finally:
        try:
            for child in children:
                child.stop()
        except BaseException:
            # Interrupted while saying goodbye: the rest are killed, not left.
            for child in children:
                child.kill()
            raise


def wait_for(what: str, cond: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def leader_of(children: list[Child]) -> Child | None:
    for child in children:
        if child.proc.poll() is None and child.ask(10, op="status")["leading"]:
            return child
    return None


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled(children: list[Child]) -> bool:
    """Three voters, a leader, and every member within an entry of the others."""
    if leader_of(children) is None:
        return False
    state = [c.ask(10, op="status") for c in children]
    top = max(s["applied"] for s in state)
    return all(s["voters"] == 3 and s["has_leader"] for s in state) and all(
        top - s["applied"] <= 1 for s in state
    )


def measure(
    kind: str,
    root: Path,
    seconds: float,
    levels: list[int],
    writes: int,
    failovers: int,
    profile: bool,
) -> dict[str, Any]:
    limit = (len(levels) + 3) * (seconds + SLACK) + 120 * (failovers + 1)
    with cluster_of(kind, root, limit, profile) as children:
        wait_for(f"{kind}: three members and a leader", lambda: settled(children), 60)
        leader = leader_of(children)
        assert leader is not None
        follower = next(c for c in children if c is not leader)
        t = seconds + SLACK
        out: dict[str, Any] = {"leader": leader.name}
        # Light load first, while no throughput run has grown the store.
        for c in children:
            c.ask(10, op="syncs")
        out["latency"] = leader.ask(t, op="latency", writes=writes, seconds=seconds)
        # Each member's fdatasync times while the leader wrote one at a time.
        out["latency"]["fsync"] = {c.name: c.ask(10, op="syncs") for c in children}
        out["follower_latency"] = follower.ask(
            t, op="latency", writes=max(1, writes // 4), seconds=seconds / 2
        )
        runs = []
        for clients in levels:
            before = {c.name: cpu_seconds(c.proc.pid) for c in children}
            threads = {c.name: c.ask(10, op="threads") for c in children}
            for c in children:
                c.ask(10, op="syncs")
            for c in children:
                c.ask(10, op="profile", on=profile)
            got = leader.ask(t, op="throughput", seconds=seconds, clients=clients)
            for c in children:
                c.ask(10, op="profile", on=False)
            got["clients"] = clients
            got["member_cpu_s"] = {
                c.name: round(cpu_seconds(c.proc.pid) - before[c.name], 2) for c in children
            }
            got["fsync"] = {c.name: c.ask(10, op="syncs") for c in children}
            got["member_threads_cpu_s"] = {
                c.name: spent(threads[c.name], c.ask(10, op="threads")) for c in children
            }
            runs.append(got)
        out["throughput"] = runs
        if profile and kind == "ours":
            out["profile"] = {
                "leader": leader.ask(t, op="extra"),
                "follower": follower.ask(t, op="extra"),
            }
        out["failovers"] = [failover(children, t) for _ in range(failovers)]
        times = [f["first_commit_s"] for f in out["failovers"]]
        done = [x for x in times if x is not None]
        out["failover_s"] = {
            "runs": len(times),
            "failed": len(times) - len(done),
            "p50": round(percentile(done, 50), 3) if done else None,
            "max": max(done) if done else None,
        }
        out["pids"] = [pid for c in children for pid in c.pids]
        return out


def failover(children: list[Child], wait: float) -> dict[str, Any]:
    """``kill -9`` the leader; time the first write committed through a
    survivor; start the killed member again and wait until all three agree."""
    leader = leader_of(children)
    assert leader is not None
    survivor = next(c for c in children if c is not leader)
    killed_at = time.monotonic()
    leader.kill()
    first = survivor.ask(30 + SLACK, op="first_write", timeout=30)
    elected: float | None = None
    end = time.monotonic() + 10
    while elected is None and time.monotonic() < end:
        if leader_of(children) is not None:
            elected = time.monotonic() - killed_at
        else:
            time.sleep(0.02)
    committed = first["committed_at"]
    result = {
        "killed": leader.name,
        "first_commit_s": round(committed - killed_at, 3) if committed else None,
        "attempts": first["attempts"],
        "elected_by_s": round(elected, 3) if elected is not None else None,
    }
    leader.start()
    leader.hello = leader.read(60)
    wait_for("the killed member back", lambda: settled(children), 60)
    # A write through the restarted member returns once it has applied it:
    # its Raft actor is done restoring what it caught up on (a large store's
    # snapshot takes it a while after its applied index already shows it).
    # Killing the next leader before then would time an election that its
    # vote, still queued behind the restore, holds up.
    back = leader.ask(30 + SLACK, op="first_write", timeout=30)
    if back["committed_at"] is None:
        raise RuntimeError(f"{leader.name}: no write through it commits after its restart")
    return result


def run(
    seconds: float,
    levels: list[int],
    writes: int,
    failovers: int,
    only: str | None,
    profile: bool,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "seconds": seconds,
        "clients": levels,
        "payload_bytes": PAYLOAD,
        "cpus": os.cpu_count(),
    }
    root: Path | None = None
    try:
        root = Path(tempfile.mkdtemp(prefix="raftbench-"))
        if only in (None, "ours"):
            result["ours"] = measure(
                "ours", root / "ours", seconds, levels, writes, failovers, profile
            )
        if only in (None, "pysyncobj"):
            try:
                import pysyncobj  # noqa: F401
            except ImportError:
                result["pysyncobj"] = {"skipped": NO_PYSYNCOBJ}
            else:
                from pysyncobj import SyncObjConf

                result["pysyncobj"] = measure(
                    "pysyncobj", root / "pso", seconds, levels, writes, failovers, False
                )
                # Its children run with SyncObjConf's defaults: the period of
                # its append timer explains its figures (see print_report).
                period = SyncObjConf().appendEntriesPeriod
                result["pysyncobj"]["append_entries_period_s"] = period
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    result["targets"] = targets(result)
    return result


def best(side: dict[str, Any]) -> float:
    return float(max(r["writes_per_s"] for r in side["throughput"]))


def targets(r: dict[str, Any]) -> dict[str, Any]:
    """The targets, as figures and as met or not (reported, never asserted)."""
    ours = r.get("ours")
    peer = r.get("pysyncobj")
    out: dict[str, Any] = {}
    if ours is None:
        return out
    if peer and "throughput" in peer:
        ratios = {
            str(a["clients"]): round(a["writes_per_s"] / max(b["writes_per_s"], 1e-9), 2)
            for a, b in zip(ours["throughput"], peer["throughput"], strict=True)
        }
        out["throughput_ratio_by_clients"] = ratios
        out["throughput_ratio_best"] = round(best(ours) / max(best(peer), 1e-9), 2)
        out["throughput_2x_met_at"] = [int(c) for c, x in ratios.items() if x >= 2.0]
        out["throughput_2x_missed_at"] = [int(c) for c, x in ratios.items() if x < 2.0]
        out["throughput_2x_met_best"] = out["throughput_ratio_best"] >= 2.0
    out["p99_under_10ms_met"] = ours["latency"]["p99_ms"] < 10.0
    f = ours["failover_s"]
    out["failover_under_2s_met"] = f["failed"] == 0 and f["max"] is not None and f["max"] < 2.0
    return out


def whole(v: float) -> str:
    """A rate: whole writes, thousands separated."""
    return f"{v:,.0f}"


def ms(v: float) -> str:
    """A latency in ms: two decimals below 10 ms, one above."""
    if math.isnan(v):
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def secs(v: float) -> str:
    return f"{v:.2f}"


def listed(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def two_x_summary(t: dict[str, Any]) -> str:
    """Where ours commits at least twice PySyncObj's writes/s and where not,
    level by level, then best against best (each side's best level)."""
    ratios: dict[str, float] = t["throughput_ratio_by_clients"]
    cells = {c: f"{c} ({x:.2f}x)" for c, x in ratios.items()}
    met = [cells[c] for c in ratios if int(c) in t["throughput_2x_met_at"]]
    missed = [cells[c] for c in ratios if int(c) not in t["throughput_2x_met_at"]]
    parts = []
    if met:
        parts.append(f"met at {listed(met)} in flight")
    if missed:
        parts.append(f"MISSED at {listed(missed)}" + ("" if met else " in flight"))
    verdict = "met" if t["throughput_2x_met_best"] else "MISSED"
    return (
        f"2x PySyncObj's writes/s: {', '.join(parts)}; "
        f"best against best {t['throughput_ratio_best']:.2f}x: {verdict}"
    )


def pso_note(period: float) -> str:
    """Why PySyncObj's figures come in steps of its append timer."""
    return (
        f"PySyncObj appends every {period * 1000:g} ms (its default timer): with N in flight, "
        f"at most N commit a round ({1 / period:g}N/s); one write waits a round "
        "(two via a follower)."
    )


def print_report(r: dict[str, Any]) -> None:
    cols = [k for k in ("ours", "pysyncobj") if k in r and "skipped" not in r[k]]
    print(
        f"3 members on 127.0.0.1, {r['payload_bytes']}-byte payloads, "
        f"{r['seconds']:g} s a throughput run, {r['cpus']} CPUs"
    )
    head = f"{'':<40}" + "".join(f"{c:>12}" for c in cols)
    print(head)
    print("-" * len(head))

    def row(
        label: str,
        get: Callable[[dict[str, Any]], Any],
        fmt: Callable[[Any], str] = str,
    ) -> None:
        cells = []
        for c in cols:
            try:
                v = get(r[c])
            except (KeyError, TypeError, IndexError, StopIteration):
                v = None
            cells.append(f"{'-' if v is None else fmt(v):>12}")
        print(f"{label:<40}" + "".join(cells))

    def rate(i: int) -> Callable[[dict[str, Any]], Any]:
        return lambda d: d["throughput"][i]["writes_per_s"]

    def cpu_of(i: int) -> Callable[[dict[str, Any]], Any]:
        def cells(d: dict[str, Any]) -> str:
            by = d["throughput"][i]["member_cpu_s"]
            order = sorted(by, key=lambda name: name != d["leader"])
            return "/".join(f"{by[name]:.1f}" for name in order)

        return cells

    def per_sync(i: int) -> Callable[[dict[str, Any]], Any]:
        def cell(d: dict[str, Any]) -> Any:
            run = d["throughput"][i]
            syncs = run["fsync"][d["leader"]].get("syncs")
            return f"{run['writes'] / syncs:.1f}" if syncs else None

        return cell

    def syncs(who: str) -> Callable[[dict[str, Any]], Any]:
        def cell(d: dict[str, Any]) -> Any:
            by = d["latency"]["fsync"]
            name = d["leader"] if who == "leader" else next(n for n in by if n != d["leader"])
            f = by[name]
            return f"{f['p50_ms']:.2f}/{f['p99_ms']:.2f}" if f and f["syncs"] else None

        return cell

    def kills(d: dict[str, Any]) -> str:
        f = d["failover_s"]
        return f"{f['runs']} ({f['failed']})"

    for i, clients in enumerate(r["clients"]):
        row(f"committed writes/s, {clients} in flight", rate(i), whole)
        row("  CPU s of the members (leader first)", cpu_of(i))
        row("  writes per fdatasync of the leader", per_sync(i))
    row("one write at a time, p50 ms (leader)", lambda d: d["latency"]["p50_ms"], ms)
    row("one write at a time, p99 ms (leader)", lambda d: d["latency"]["p99_ms"], ms)
    row("  its fdatasyncs p50/p99 ms, leader", syncs("leader"))
    row("  its fdatasyncs p50/p99 ms, a follower", syncs("follower"))
    row("one write at a time, p50 ms (follower)", lambda d: d["follower_latency"]["p50_ms"], ms)
    row("one write at a time, p99 ms (follower)", lambda d: d["follower_latency"]["p99_ms"], ms)
    row("kill -9 leader -> first commit p50, s", lambda d: d["failover_s"]["p50"], secs)
    row("kill -9 leader -> first commit max, s", lambda d: d["failover_s"]["max"], secs)
    row("  leader kills (without a commit)", kills)
    period = r.get("pysyncobj", {}).get("append_entries_period_s")
    if "pysyncobj" in cols and period:
        print(pso_note(period))
    for c in ("ours", "pysyncobj"):
        if c in r and "skipped" in r[c]:
            print(f"{c}: skipped: {r[c]['skipped']}")
    t = r["targets"]
    print()
    if "throughput_ratio_by_clients" in t:
        print(two_x_summary(t))
    if t:
        print(
            "p99 of one write (leader) under 10 ms: "
            f"{'met' if t['p99_under_10ms_met'] else 'MISSED'}; "
            f"failover under 2 s: {'met' if t['failover_under_2s_met'] else 'MISSED'}"
        )
    ours = r.get("ours", {})
    for run in ours.get("throughput", []):
        print(f"\nours, CPU s by thread, {run['clients']} in flight:")
        for name, threads in run["member_threads_cpu_s"].items():
            lead = " (leader)" if name == ours["leader"] else ""
            shown = ", ".join(f"{k} {v:.2f}" for k, v in threads.items())
            print(f"  {name}{lead}: {shown}")
    prof = ours.get("profile")
    if prof:
        for member, tables in prof.items():
            for name, lines in tables.items():
                if lines:
                    print(f"\n=== the {member}'s {name}, every throughput run ===")
                    print("\n".join(lines))


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("ours", "pysyncobj"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--state", default="")
    parser.add_argument("--join", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--partners", default="")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--limit", type=float, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    # Ctrl-C reaches the whole process group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    self_destruct(args.limit)
    try:
        if args.kind == "ours":
            ours_child(args)
        else:
            pso_child(args)
    except BaseException as exc:
        # The parent gone (a broken pipe) or a failure: say why, then go.
        print(f"{args.name}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(1)
    # Threads a library leaves behind must not keep the process alive.
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput run length")
    parser.add_argument(
        "--clients",
        default="64,1024,4096",
        help="writes in flight: one throughput run for each of these counts",
    )
    parser.add_argument("--writes", type=int, default=500, help="single writes timed")
    parser.add_argument(
        "--failovers", type=int, default=5, help="leader kills (each member restarted after)"
    )
    parser.add_argument("--only", choices=("ours", "pysyncobj"))
    parser.add_argument("--profile", action="store_true", help="cProfile the leader's actors")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        levels = [int(c) for c in args.clients.split(",")]
    except ValueError:
        parser.error(f"--clients takes counts separated by commas, not {args.clients!r}")
    if min(levels) < 1:
        parser.error(
            f"--clients takes counts of writes in flight, each at least 1, not {args.clients!r}"
        )
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        parser.error(f"--seconds must be a positive number of seconds, not {args.seconds:g}")
    if args.writes < 1:
        parser.error(f"--writes must be a number of single writes, at least 1, not {args.writes}")
    if args.failovers < 1:
        parser.error(
            f"--failovers must be a number of leader kills, at least 1, not {args.failovers}"
        )
    # Ctrl-C, SIGTERM and SIGHUP unwind the same way, so every child is
    # stopped and the temporary directory removed before this process ends.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_stop_signal)
    try:
        result = run(args.seconds, levels, args.writes, args.failovers, args.only, args.profile)
        if args.json:
            print(json.dumps(result))
        else:
            print_report(result)
    except Interrupted as stop:
        # The cleanup on the way out has run; whatever it could not stop
        # (interrupted while starting a child) is killed here.
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        name = os.path.basename(__file__)
        print(f"{name}: interrupted: stopped every process it started", file=sys.stderr)
        # As a shell reports a process killed by that signal: 130, 143, 129.
        return 128 + stop.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
