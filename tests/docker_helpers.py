"""Helpers of the Docker executor's tests: the test engine and a one-node swarm on it."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import swarmctl, tool, wait_until

IMAGES = ("busybox:latest", "redis:3.0.5", "redis:3.0.6", "redis:3.0.7")
HOW = "start one with scripts/docker-engine.sh start and export the DOCKER_HOST it prints"


def engine_or_reason() -> tuple[object | None, str]:
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return None, f"no Docker engine (DOCKER_HOST is not set): {HOW}"
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound

        client = docker.DockerClient(base_url=host, timeout=30)
        client.ping()
    except Exception as exc:
        return None, f"no Docker engine at {host} ({type(exc).__name__}: {exc}): {HOW}"
    try:
        for image in IMAGES:
            client.images.get(image)
    except (ImageNotFound, DockerException):
        client.close()
        return None, f"the engine at {host} lacks the test images: {HOW}"
    return client, ""


def task_containers(client: Any, service: str, running_only: bool = False) -> list[Any]:
    """The containers of a service's tasks on the engine, as the SDK sees them."""
    found = client.containers.list(
        all=not running_only,
        filters={"label": f"com.docker.swarm.service.name={service}"},
        ignore_removed=True,
    )
    return list(found)


@dataclass
class DockerSwarmd:
    """A one-node swarm whose tasks are containers on the test engine."""

    proc: subprocess.Popen[bytes]
    socket: str
    state_dir: Path
    log_path: Path
    node_id: str = ""

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            swarmctl(self.socket, *args),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"swarmctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def sh(self, line: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.ctl(*shlex.split(line), check=check)

    def replicas(self, name: str) -> str:
        for line in self.ctl("service", "ls").stdout.splitlines():
            cols = line.split()
            if len(cols) >= 2 and cols[1] == name:
                return cols[-1]
        return ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_swarmd(tmp: Path, engine_addr: str, *extra: str) -> DockerSwarmd:
    state = tmp / "node-1"
    sock = str(tmp / "s.sock")
    log_path = tmp / "swarmd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                tool("swarmd"),
                "-d",
                str(state),
                "--listen-control-api",
                sock,
                "--hostname",
                "node-1",
                "--listen-remote-api",
                "127.0.0.1:0",
                "--executor",
                "docker",
                "--engine-addr",
                engine_addr,
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    node = DockerSwarmd(proc, sock, state, log_path)
    wait_until(
        lambda: proc.poll() is not None or node.ctl("node", "ls", check=False).returncode == 0,
        timeout=30,
        what="swarmd",
    )
    assert proc.poll() is None, f"swarmd exited: {node.log()[-2000:]}"
    wait_until(lambda: "READY" in node.ctl("node", "ls").stdout, what="node READY")
    node.node_id = node.ctl("node", "ls", "-q").stdout.split()[0]
    return node


def remove_containers_of(engine: Any, node: DockerSwarmd) -> None:
    """Every container this node's tasks left on the shared engine (and none
    of another test's, which may run at the same time)."""
    label = f"com.docker.swarm.node.id={node.node_id}"
    for c in engine.containers.list(all=True, filters={"label": label}):
        with contextlib.suppress(Exception):
            c.remove(force=True)


def stop_swarmd(node: DockerSwarmd) -> None:
    if node.proc.poll() is None:
        node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(30)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(10)
