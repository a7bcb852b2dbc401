"""The control API with many tasks: a real swarmd (sim executor) and swarmctl.

    python benchmarks/control_list.py [--tasks N] [--timeout S] [--json]

Creates one service of N sim tasks, waits until all run, then times what a
user runs: `swarmctl task ls` (to the first line and to the end), `service
inspect`, and `service ls`; and samples swarmd's resident memory at its peak
and after the service is removed and its tasks are gone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Seconds after the last task is gone at which memory is measured as settled.
SETTLE = 20.0


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} is not installed: pip install -e .")
    return found


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Peak:
    """Samples a process's RSS in the background and keeps the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def ctl(sock: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("swarmctl"), "-s", sock, *args], capture_output=True, text=True, timeout=timeout
    )


def timed_lines(sock: str, *args: str) -> tuple[float, float, int]:
    """Seconds to the first output line and to the end, and lines printed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [tool("swarmctl"), "-s", sock, *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = 0.0
    lines = 0
    for _ in proc.stdout:
        if not lines:
            first = time.perf_counter() - t0
        lines += 1
    proc.wait(600)
    if proc.returncode != 0:
        raise RuntimeError(f"swarmctl {' '.join(args)} failed")
    return first, time.perf_counter() - t0, lines


def wait(cond: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def running(sock: str, name: str) -> str:
    for line in ctl(sock, "service", "ls").stdout.splitlines():
        cols = line.split()
        if len(cols) >= 2 and cols[1] == name:
            return cols[-1]
    return ""


def run(n: int, timeout: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="swk-bench-"))
    sock = str(tmp / "swarm.sock")
    log = open(tmp / "swarmd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            tool("swarmd"),
            "-d",
            str(tmp / "state"),
            "--listen-control-api",
            sock,
            "--executor",
            "sim",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    out: dict[str, Any] = {"tasks": n}
    try:
        wait(lambda: "READY" in ctl(sock, "node", "ls").stdout, 60, "node READY")
        out["rss_idle_mib"] = round(rss_mib(proc.pid), 1)
        peak = Peak(proc.pid)
        ctl(sock, "service", "create", "--name", "many", "--command", "x", "--replicas", str(n))
        out["converge_s"] = round(
            wait(lambda: running(sock, "many") == f"{n}/{n}", timeout, f"{n}/{n}"), 1
        )
        first, total, lines = timed_lines(sock, "task", "ls")
        out["task_ls_first_line_s"] = round(first, 2)
        out["task_ls_s"] = round(total, 2)
        out["task_ls_lines"] = lines
        first, total, lines = timed_lines(sock, "service", "inspect", "many")
        out["service_inspect_first_line_s"] = round(first, 2)
        out["service_inspect_s"] = round(total, 2)
        _, total, _ = timed_lines(sock, "service", "ls")
        out["service_ls_s"] = round(total, 2)
        ctl(sock, "service", "rm", "many")
        wait(lambda: ctl(sock, "task", "ls", "--all").stdout.count("\n") <= 2, timeout, "no task")
        out["rss_peak_mib"] = round(peak.stop(), 1)
        # The workers' side lets go after the store does (the agent removes each
        # task, stop deadlines lapse): sample shortly after and once settled.
        time.sleep(3)
        out["rss_3s_after_removal_mib"] = round(rss_mib(proc.pid), 1)
        time.sleep(SETTLE - 3)
        out["rss_after_removal_mib"] = round(rss_mib(proc.pid), 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=600.0, help="per wait, in seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args.tasks, args.timeout)
    if args.json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
