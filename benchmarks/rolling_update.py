"""How long a rolling update takes on one real swarmd with the process executor.

Starts ``swarmd`` in a temporary state dir (its remote API on a free port of
127.0.0.1), creates ``--replicas`` tasks running ``--command``, waits until
they all run, then updates the service's arguments with ``--parallelism`` and
``--delay`` and reports:

- ``replaced_s``: from the update request to every slot running a new task;
- ``completed_s``: to the update status ``completed`` (that plus the monitor
  window, 5 s by default, in which a new task that fails still counts).

``--command sleep`` exits on SIGTERM; ``--command trap`` is
``sh -c 'trap "" TERM; sleep N'``, which ignores it, so each old task is
stopped only by SIGKILL once its stop grace period (10 s) is over.

Everything started is stopped at the end (SIGTERM to swarmd, which stops its
tasks; SIGKILL after 30 s) and the state dir removed; ``--timeout`` bounds
every wait.

Usage:
    python benchmarks/rolling_update.py [--replicas N] [--parallelism P]
        [--delay 0s] [--command sleep|trap] [--timeout S] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyswarmkit.api.objects import Service, Task
from pyswarmkit.api.states import TaskState, UpdateState
from pyswarmkit.orchestrator.update import failed_by_itself
from pyswarmkit.transport.control import ControlClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def ctl(sock: str, *args: str) -> str:
    swarmctl = shutil.which("swarmctl") or str(Path(sys.executable).parent / "swarmctl")
    out = subprocess.run(
        [swarmctl, "-s", sock, *args], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout


def call(sock: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    client = ControlClient(sock)
    try:
        return client.call(method, body)
    finally:
        client.close()


def running(sock: str, args: str) -> int:
    tasks: list[Task] = call(sock, "task.list", {"service": "bench"})["tasks"]
    return sum(
        1
        for t in tasks
        if t.status.state == TaskState.RUNNING
        and t.desired_state == TaskState.RUNNING
        and t.spec.container.args[-1:] == (args,)
    )


def measure(opts: argparse.Namespace, sock: str) -> dict[str, Any]:
    if opts.command == "trap":
        command = ["--command", "sh", "--args", "-c", "--args", 'trap "" TERM; sleep 100000']
        new_args = 'trap "" TERM; sleep 100001'
        old_args = 'trap "" TERM; sleep 100000'
    else:
        # Long enough that no task ends by itself during a long update.
        command = ["--command", "sleep", "--args", "100000"]
        new_args, old_args = "100001", "100000"
    ctl(
        sock,
        *("service", "create", "--detach", "--name", "bench"),
        *("--replicas", str(opts.replicas), *command),
    )
    wait(lambda: running(sock, old_args) == opts.replicas, opts.timeout, "the tasks to run")
    update = [
        *(["--args", "-c"] if opts.command == "trap" else []),
        "--args",
        new_args,
        "--update-parallelism",
        str(opts.parallelism),
        "--update-delay",
        opts.delay,
    ]
    start = time.monotonic()
    ctl(sock, "service", "update", "--detach", "bench", *update)
    wait(lambda: running(sock, new_args) == opts.replicas, opts.timeout, "the new tasks to run")
    replaced = time.monotonic() - start

    def completed() -> bool:
        svc: Service = call(sock, "service.inspect", {"ref": "bench"})["service"]
        return svc.update_status is not None and svc.update_status.state == UpdateState.COMPLETED

    wait(completed, opts.timeout, "the update to complete")
    done = time.monotonic() - start
    history: list[Task] = call(sock, "task.list", {"service": "bench", "all": True})["tasks"]
    svc: Service = call(sock, "service.inspect", {"ref": "bench"})["service"]
    new = [t for t in history if t.spec.container.args[-1:] == (new_args,)]
    made = sorted(t.meta.created_at for t in new)
    gaps = sorted(b - a for a, b in itertools.pairwise(made)) or [0.0]
    last_up = max(t.status.timestamp for t in new)
    assert svc.update_status is not None
    return {
        "replicas": opts.replicas,
        "parallelism": opts.parallelism,
        "delay": opts.delay,
        "command": opts.command,
        "replaced_s": round(replaced, 2),
        "completed_s": round(done, 2),
        # Tasks that ended by themselves meanwhile (none, for a clean update).
        "failed_tasks": sum(1 for t in history if failed_by_itself(t)),
        "new_tasks": len(new),
        # Between one slot's replacement and the next (the pace of the update).
        "gap_min_s": round(gaps[0], 2),
        "gap_median_s": round(gaps[len(gaps) // 2], 2),
        "gap_max_s": round(gaps[-1], 2),
        "last_running_to_completed_s": round(svc.update_status.completed_at - last_up, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--parallelism", type=int, default=0)
    parser.add_argument("--delay", default="0s")
    parser.add_argument("--command", choices=["sleep", "trap"], default="sleep")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Bound on each wait (s).")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="swk-bench-"))
    sock = str(tmp / "st" / "swarm.sock")
    swarmd = shutil.which("swarmd") or str(Path(sys.executable).parent / "swarmd")
    log = open(tmp / "swarmd.log", "wb")  # noqa: SIM115
    argv = [swarmd, "-d", str(tmp / "st"), "--hostname", "bench", "--log-level", "warning"]
    argv += ["--listen-remote-api", f"127.0.0.1:{free_port()}"]
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait(lambda: Path(sock).exists(), 60, "swarmd's socket")
        wait(lambda: "READY" in ctl(sock, "node", "ls"), 60, "the node")
        result = measure(opts, sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if opts.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<12} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
