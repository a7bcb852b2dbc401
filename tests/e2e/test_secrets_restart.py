"""Secrets and configs live in the replicated store: a restarted swarmd has
them all again, services still reference them, and the manager's state dir
holds no secret in clear text."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cluster import Swarm
from helpers import swarmctl, wait_until

pytestmark = pytest.mark.e2e

SECRET = b"s3cret-that-must-not-leak-0123456789"


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_secrets_and_configs_survive_a_restart(swarm: Swarm) -> None:
    swarm.init()
    created = subprocess.run(
        swarmctl(swarm.socket, "secret", "create", "db-pass", "-"),
        input=SECRET,
        capture_output=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    sid = created.stdout.decode().strip()
    conf = swarm.root / "app.conf"
    conf.write_text("workers 4\n")
    cid = swarm.ctl("config", "create", "app.conf", str(conf)).strip()
    swarm.ctl(
        "service",
        "create",
        "--name",
        "web",
        "--command",
        "sleep",
        "--args",
        "1000",
        "--secret",
        "source=db-pass,target=pw,mode=0400",
        "--config",
        "app.conf",
    )

    swarm.stop()
    swarm.start("node-1", "--listen-control-api", swarm.socket, "--listen-remote-api", swarm.addr)
    wait_until(lambda: "node-1" in swarm.ready(), timeout=60, what="node-1 READY again")

    assert swarm.ctl("secret", "ls", "-q").split() == [sid]
    assert swarm.ctl("config", "ls", "-q").split() == [cid]
    assert "workers 4" in swarm.ctl("config", "inspect", "app.conf")
    [svc] = json.loads(swarm.ctl("service", "inspect", "web", "--format", "json"))
    container = svc["spec"]["task"]["container"]
    assert [s["secret_id"] for s in container["secrets"]] == [sid]
    assert [c["config_id"] for c in container["configs"]] == [cid]
    refused = swarm.run("secret", "rm", "db-pass")
    assert "in use by the following service: web" in refused.stderr

    # The Raft log and snapshots are encrypted; the log says nothing of it either.
    swarm.stop()
    assert files_holding(swarm.root, SECRET) == []
