"""Our Docker executor beside Docker swarm mode, on the same engine in one run.

    python benchmarks/docker_executor.py [--replicas N] [--timeout S] [--json]

Needs an engine with the test images (scripts/docker-engine.sh start; DOCKER_HOST).
For each side: `service create --replicas N --image redis:3.0.5` to N containers
running, then an image update of all N at once (parallelism 0) to N new
containers running on redis:3.0.6, both seen through the Docker SDK (a side is
done when N containers of the service run, for the update none of them an old
one). Docker swarm mode's CLI with --detach=false is also timed to its return
(it waits for its tasks to be stable for a few seconds on top). Ours: a real
`swarmd --executor docker` on 127.0.0.1. The engine is left as found: the
services are removed and swarm mode is left at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

OLD, NEW = "redis:3.0.5", "redis:3.0.6"


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} is not installed")
    return found


def running(client: Any, service: str) -> dict[str, str]:
    found = client.containers.list(
        filters={"label": f"com.docker.swarm.service.name={service}", "status": "running"},
        ignore_removed=True,
    )
    return {c.id: c.attrs["Config"]["Image"] for c in found}


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic()


def converged(client: Any, service: str, n: int, image: str, old: set[str]) -> Callable[[], bool]:
    def check() -> bool:
        now = running(client, service)
        return (
            len(now) == n and all(i.startswith(image) for i in now.values()) and not set(now) & old
        )

    return check


def ours(client: Any, n: int, timeout: float) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-d-"))
    sock = str(tmp / "s.sock")
    log = open(tmp / "swarmd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            tool("swarmd"),
            "-d",
            str(tmp / "n"),
            "--listen-control-api",
            sock,
            "--hostname",
            "bench",
            "--listen-remote-api",
            "127.0.0.1:0",
            "--executor",
            "docker",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ctl(*args: str) -> str:
        out = subprocess.run(
            [tool("swarmctl"), "-s", sock, *args], capture_output=True, text=True, timeout=60
        )
        if out.returncode:
            raise SystemExit(f"swarmctl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    try:
        wait_for(lambda: os.path.exists(sock) and "READY" in ctl("node", "ls"), 60, "swarmd")
        t0 = time.monotonic()
        # --detach: the clock stops when the containers run, not when the CLI's
        # watch has also seen them stay up for the update monitor period.
        ctl(
            "service", "create", "--detach", "--name", "benchours", "--image", OLD,
            "--replicas", str(n),
        )  # fmt: skip
        t1 = wait_for(converged(client, "benchours", n, OLD, set()), timeout, "ours: create")
        first = set(running(client, "benchours"))
        t2 = time.monotonic()
        ctl(
            "service", "update", "benchours", "--detach", "--image", NEW,
            "--update-parallelism", "0",
        )  # fmt: skip
        t3 = wait_for(converged(client, "benchours", n, NEW, first), timeout, "ours: update")
        ctl("service", "rm", "benchours")
        wait_for(
            lambda: (
                not client.containers.list(
                    all=True,
                    filters={"label": "com.docker.swarm.service.name=benchours"},
                    ignore_removed=True,
                )
            ),
            timeout,
            "rm",
        )
        return {"create_s": t1 - t0, "update_s": t3 - t2}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def swarm_mode(client: Any, n: int, timeout: float) -> dict[str, float]:
    docker_cli = shutil.which("docker") or "docker"
    env = dict(os.environ)

    def cli(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [docker_cli, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    joined = client.info()["Swarm"]["LocalNodeState"] == "active"
    if not joined:
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        t0 = time.monotonic()
        p = cli(
            "service",
            "create",
            "--detach=false",
            "--quiet",
            "--name",
            "benchswarm",
            "--replicas",
            str(n),
            OLD,
        )
        t1 = wait_for(converged(client, "benchswarm", n, OLD, set()), timeout, "swarm: create")
        p.wait(timeout)
        t1_cli = time.monotonic()
        first = set(running(client, "benchswarm"))
        t2 = time.monotonic()
        p = cli(
            "service",
            "update",
            "--detach=false",
            "--quiet",
            "--update-parallelism",
            "0",
            "--image",
            NEW,
            "benchswarm",
        )
        t3 = wait_for(converged(client, "benchswarm", n, NEW, first), timeout, "swarm: update")
        p.wait(timeout)
        t3_cli = time.monotonic()
        subprocess.run(
            [docker_cli, "service", "rm", "benchswarm"], env=env, capture_output=True, timeout=60
        )
        wait_for(
            lambda: (
                not client.containers.list(
                    all=True,
                    filters={"label": "com.docker.swarm.service.name=benchswarm"},
                    ignore_removed=True,
                )
            ),
            timeout,
            "rm",
        )
        return {
            "create_s": t1 - t0,
            "create_cli_s": t1_cli - t0,
            "update_s": t3 - t2,
            "update_cli_s": t3_cli - t2,
        }
    finally:
        if not joined:
            client.swarm.leave(force=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args()
    client = docker.from_env(timeout=120)
    for image in (OLD, NEW):
        client.images.get(image)
    result = {
        "replicas": opts.replicas,
        "ours": ours(client, opts.replicas, opts.timeout),
        "swarm_mode": swarm_mode(client, opts.replicas, opts.timeout),
    }
    if opts.json:
        print(json.dumps(result, indent=2))
        return
    o, s = result["ours"], result["swarm_mode"]
    row = "{:<20}{:6.2f} s  {:6.2f} s / {:6.2f} s"
    print(f"{opts.replicas} replicas        ours     Docker swarm mode (to running / CLI return)")
    print(row.format("create to running", o["create_s"], s["create_s"], s["create_cli_s"]))
    print(row.format("image update (p=0)", o["update_s"], s["update_s"], s["update_cli_s"]))


if __name__ == "__main__":
    main()
