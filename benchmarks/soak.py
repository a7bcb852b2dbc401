"""A soak of service churn on a three-manager swarm, sampling each swarmd's RSS.

Three managers (each also a worker, process executor) on 127.0.0.1; every
``--period`` seconds one service is created (3 replicas of ``sleep``), the one
before it is updated (a new env var: every task replaced) and the one before
that removed, so the swarm keeps turning over tasks, task directories, Raft
entries and snapshots (the snapshot interval is lowered so the log is
compacted many times). Every ``--sample`` seconds it records each node's RSS,
the task directories left on disk, and the tasks the store holds. At the end
it stops the swarm, writes a CSV and a plot (matplotlib, from the ``bench``
extra), and says whether each node's RSS stayed within 10 % after the warm-up.

    python benchmarks/soak.py --duration 3600 --plot docs/soak-rss.png

Stops by itself after ``--duration``; Ctrl-C stops it early (the swarm too).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NODES = ("node-1", "node-2", "node-3")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Soak:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {n: free_port() for n in NODES}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def sock(self, name: str = "node-1") -> str:
        return str(self.root / name / "swarm.sock")

    def ctl(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(
            [str(BIN / "swarmctl"), "-s", self.sock(), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"swarmctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self, name: str, *extra: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the node's for its life
        self.procs[name] = subprocess.Popen(
            [
                str(BIN / "swarmd"),
                "-d",
                str(self.root / name),
                "--hostname",
                name,
                "--listen-control-api",
                self.sock(name),
                "--listen-remote-api",
                f"127.0.0.1:{self.ports[name]}",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait(self, what: str, cond: object, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():  # type: ignore[operator]
                    return
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}")

    def ready(self) -> int:
        return sum(" READY " in f" {line} " for line in self.ctl("node", "ls").splitlines()[1:])

    def up(self) -> None:
        self.start("node-1")
        self.wait("node-1 READY", lambda: self.ready() == 1)
        out = self.ctl("cluster", "inspect", "default")
        m = re.search(r"^    Manager: (\S+)$", out, re.M)
        if m is None:
            raise RuntimeError("no manager token in cluster inspect")
        self.ctl("cluster", "update", "default", "--snapshot-interval", "500")
        for count, name in enumerate(NODES[1:], start=2):
            self.start(
                name, "--join-addr", f"127.0.0.1:{self.ports['node-1']}", "--join-token", m.group(1)
            )
            self.wait(f"{name} READY", lambda n=count: self.ready() == n)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def task_dirs(root: Path) -> int:
    return sum(len(os.listdir(d)) for d in root.glob("node-*/worker/tasks") if d.is_dir())


def churn(soak: Soak, step: int) -> None:
    name = f"svc{step}"
    soak.ctl(
        "service",
        "create",
        "--detach",
        "--name",
        name,
        "--replicas",
        "3",
        "--command",
        "sleep",
        "--args",
        "1000",
    )
    if step >= 1:
        soak.ctl("service", "update", "--detach", f"svc{step - 1}", "--env", f"STEP={step}")
    if step >= 2:
        soak.ctl("service", "rm", f"svc{step - 2}")


def plot(rows: list[dict[str, float]], warmup: float, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return
    minutes = [r["t"] / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in NODES:
        ax.plot(minutes, [r[name] for r in rows], marker=".", label=f"{name} (manager + worker)")
    ax.axvline(warmup / 60, color="grey", linestyle="--", linewidth=1, label="end of warm-up")
    ax.set_xlabel("minutes of service churn")
    ax.set_ylabel("swarmd RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Soak: create, update and remove a 3-replica service every few seconds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=3600, help="seconds of churn")
    ap.add_argument("--period", type=float, default=3.0, help="seconds between churn steps")
    ap.add_argument("--sample", type=float, default=60.0, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=600.0, help="seconds before flatness counts")
    ap.add_argument("--csv", type=Path, default=None, help="write the samples here")
    ap.add_argument("--plot", type=Path, default=None, help="write the plot (PNG) here")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="soak-"))
    soak = Soak(root)
    rows: list[dict[str, float]] = []
    steps = 0
    failures = 0
    try:
        soak.up()
        start = time.monotonic()
        next_sample = start
        next_step = start
        while True:
            now = time.monotonic()
            if now - start >= args.duration:
                break
            if now >= next_sample:
                tasks = soak.ctl("task", "ls", "-q", check=False).split()
                row = {
                    "t": now - start,
                    "steps": steps,
                    "task_dirs": task_dirs(root),
                    "tasks": len(tasks),
                }
                for name, proc in soak.procs.items():
                    row[name] = rss_mib(proc.pid)
                rows.append(row)
                print(
                    f"{row['t'] / 60:6.1f} min  steps {steps:5d}  "
                    + "  ".join(f"{n} {row[n]:6.1f} MiB" for n in NODES)
                    + f"  task dirs {row['task_dirs']}  tasks {row['tasks']}",
                    flush=True,
                )
                next_sample += args.sample
            if now >= next_step:
                try:
                    churn(soak, steps)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failures += 1
                    print(f"churn step {steps} failed: {exc}", file=sys.stderr)
                steps += 1
                next_step += args.period
            time.sleep(max(0.0, min(next_sample, next_step) - time.monotonic()))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        soak.stop()
        dead = [n for n, p in soak.procs.items() if p.returncode not in (0, -signal.SIGTERM)]
        if dead:
            print(f"nodes that did not stop cleanly: {dead}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)

    if args.csv is not None and rows:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(f"churn steps: {steps} ({failures} failed)")
    after = [r for r in rows if r["t"] >= args.warmup]
    flat = True
    for name in NODES:
        values = [r[name] for r in after]
        if len(values) < 2:
            print(f"{name}: too few samples after the warm-up")
            flat = False
            continue
        lo, hi = min(values), max(values)
        spread = (hi - lo) / lo * 100
        print(f"{name}: RSS after warm-up {lo:.1f}..{hi:.1f} MiB (spread {spread:.1f} %)")
        flat = flat and spread <= 10.0
    if args.plot is not None and rows:
        plot(rows, args.warmup, args.plot)
    print("flat within 10 %" if flat else "NOT flat within 10 %")
    return 0 if flat and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
