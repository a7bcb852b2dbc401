"""A burst of task output through ``swarmctl service logs``, on one real
swarmd with the process executor.

Starts ``swarmd`` in a temporary state dir (remote API on a free port of
127.0.0.1), creates one task that writes ``--lines`` lines at once and then
sleeps, waits until they are all in its output file, and reports:

- ``dump_s``, ``lines_per_s``: ``service logs`` printing them all (to a pipe
  read as fast as it comes);
- ``slow_s``: the same through a client that reads its pipe slowly (about
  ``--slow-rate`` lines a second for the first seconds, then fast), which the
  window makes the node read slowly too;
- ``rss_idle_mb``, ``rss_peak_mb``, ``rss_slow_peak_mb``: swarmd's resident
  memory before, and at its highest during each (sampled every 20 ms), so what
  the manager holds for a client is seen not to grow with the log.

Everything started is stopped at the end and the state dir removed;
``--timeout`` bounds every wait.

Usage:
    python benchmarks/logs.py [--lines N] [--slow-rate R] [--timeout S] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Peak:
    """The highest RSS of a process while running, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(2)
        return self.peak


def dump(
    sock: str, timeout: float, slow_rate: float = 0.0, slow_for: float = 0.0
) -> tuple[int, float]:
    """Lines ``service logs`` printed, and how long it took."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [tool("swarmctl"), "-s", sock, "service", "logs", "burst", "--raw"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    count = 0
    try:
        for _ in iter(proc.stdout.readline, b""):
            count += 1
            elapsed = time.monotonic() - start
            if slow_rate and elapsed < slow_for:
                # Behind schedule: wait (a slow terminal, a slow pipe).
                ahead = count / slow_rate - elapsed
                if ahead > 0:
                    time.sleep(ahead)
            if elapsed > timeout:
                raise TimeoutError(f"service logs took over {timeout:g} s")
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return count, time.monotonic() - start


def run(lines: int, slow_rate: float, timeout: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="swk-logs-"))
    sock = str(tmp / "s.sock")
    out = open(tmp / "swarmd.log", "wb")  # noqa: SIM115 - closed below
    swarmd = subprocess.Popen(
        [
            *(tool("swarmd"), "-d", str(tmp / "node"), "--hostname", "node-1"),
            *("--listen-control-api", sock),
            *("--listen-remote-api", f"127.0.0.1:{free_port()}"),
            *("--log-level", "warning"),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        ctl = [tool("swarmctl"), "-s", sock]
        while subprocess.run([*ctl, "node", "ls"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("swarmd did not start")
            time.sleep(0.2)
        script = f"i=0; while [ $i -lt {lines} ]; do echo line $i; i=$((i+1)); done; sleep 1000"
        subprocess.run(
            [
                *(*ctl, "service", "create", "--detach", "--name", "burst"),
                *("--command", "sh", "--args", "-c", "--args", script),
            ],
            check=True,
            capture_output=True,
        )
        outputs = tmp / "node" / "worker" / "tasks"

        def written() -> int:
            return sum(p.stat().st_size for p in outputs.glob("*/stdout.log*"))

        # Written once the output stops growing (a rotation may have cut a few lines).
        last = -1
        while written() != last or last == 0:
            last = written()
            if time.monotonic() > deadline:
                raise TimeoutError("the task did not write its lines")
            time.sleep(1.5)
        kept = sum(
            p.read_bytes().count(b"\n") for p in outputs.glob("*/stdout.log*") if p.is_file()
        )
        idle = rss_mb(swarmd.pid)
        peak = Peak(swarmd.pid)
        got, dump_s = dump(sock, timeout)
        rss_peak = peak.stop()
        slow_peak = Peak(swarmd.pid)
        got_slow, slow_s = dump(sock, timeout, slow_rate, slow_for=3.0)
        rss_slow = slow_peak.stop()
        if got != kept or got_slow != kept:
            raise AssertionError(f"printed {got} and {got_slow} lines of {kept}")
        return {
            "lines": lines,
            "kept": kept,
            "dump_s": round(dump_s, 2),
            "lines_per_s": round(lines / dump_s),
            "slow_s": round(slow_s, 2),
            "rss_idle_mb": round(idle, 1),
            "rss_peak_mb": round(rss_peak, 1),
            "rss_slow_peak_mb": round(rss_slow, 1),
        }
    finally:
        swarmd.send_signal(signal.SIGTERM)
        try:
            swarmd.wait(30)
        except subprocess.TimeoutExpired:
            swarmd.kill()
            swarmd.wait()
        out.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=100_000)
    p.add_argument("--slow-rate", type=float, default=2000.0, help="lines/s of the slow client")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = run(a.lines, a.slow_rate, a.timeout)
    if a.json:
        print(json.dumps(r))
        return
    print(f"{r['lines']:,} lines written, {r['kept']:,} kept, through service logs")
    print(f"  dump:   {r['dump_s']} s ({r['lines_per_s']:,} lines/s)")
    print(f"  slow client ({a.slow_rate:g} lines/s for 3 s, then fast): {r['slow_s']} s")
    print(
        f"  swarmd RSS: idle {r['rss_idle_mb']} MB, peak {r['rss_peak_mb']} MB, "
        f"peak with the slow client {r['rss_slow_peak_mb']} MB"
    )


if __name__ == "__main__":
    main()
