"""A secret reaches the one worker whose task uses it, as a file only the task's
user may read, on a tmpfs; it is gone once the task ends, and no file under
any node's state dir (or any node's log) holds it in clear text. A config
reaches the task with its data."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cluster import Swarm
from helpers import swarmctl, wait_until

from pyswarmkit.executor.taskfiles import default_root

pytestmark = pytest.mark.e2e

SECRET = b"pa55-word-that-must-never-touch-a-disk-7d1c"
SCRIPT = (
    'stat -c "mode=%a" "$SWARM_SECRETS_DIR/pw"; '
    'sha256sum "$SWARM_SECRETS_DIR/pw"; '
    'cat "$SWARM_CONFIGS_DIR/etc/app.conf"; '
    "exec sleep 1000"
)


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_secret_reaches_only_its_task_and_leaves_no_trace(swarm: Swarm) -> None:
    swarm.init()
    swarm.ctl("cluster", "update", "default", "--heartbeat-period", "1s")
    token, _ = swarm.tokens()
    swarm.join_workers(token, "node-2")
    created = subprocess.run(
        swarmctl(swarm.socket, "secret", "create", "db-pass", "-"),
        input=SECRET,
        capture_output=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    conf = swarm.root / "app.conf"
    conf.write_text("workers 4\n")
    swarm.ctl("config", "create", "app-conf", str(conf))
    conf.unlink()
    swarm.ctl(
        "service",
        "create",
        "--name",
        "web",
        "--constraint",
        "node.role==worker",
        "--secret",
        "source=db-pass,target=pw",
        "--config",
        "source=app-conf,target=/etc/app.conf",
        "--command",
        "sh",
        *("--args", "-c", "--args", SCRIPT),
    )

    def logs() -> str:
        return swarm.run("service", "logs", "--raw", "web").stdout

    wait_until(lambda: "workers 4" in logs(), timeout=60, what="the task's output")
    out = logs()
    assert "mode=400" in out
    assert hashlib.sha256(SECRET).hexdigest() in out

    # On the worker's tmpfs, readable by the task's user alone; not on the manager.
    worker_files = default_root(swarm.root / "node-2")
    [secret_file] = list(worker_files.glob("*/secrets/pw"))
    st = secret_file.stat()
    assert stat.S_IMODE(st.st_mode) == 0o400 and st.st_uid == os.geteuid()
    assert secret_file.read_bytes() == SECRET
    assert not default_root(swarm.root / "node-1").exists()

    swarm.ctl("service", "rm", "web")
    wait_until(
        lambda: not list(worker_files.glob("*/secrets/pw")), timeout=30, what="secret file gone"
    )
    swarm.stop()
    # No state dir, output file or node log holds the secret in clear text.
    assert files_holding(swarm.root, SECRET) == []


def test_a_node_stopped_under_tasks_with_secrets_leaves_nothing_on_the_tmpfs(swarmd) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(
        swarmctl(swarmd.socket, "secret", "create", "pw", "-"),
        input=b"s3cret",
        check=True,
        capture_output=True,
        timeout=60,
    )
    swarmd.ctl(
        "service", "create", "-d", "--name", "web", "--replicas", "2", "--secret", "pw",
        "--command", "sleep", "--args", "1000",
    )  # fmt: skip
    root = default_root(swarmd.state_dir)
    wait_until(lambda: len(list(root.glob("*/secrets/pw"))) == 2, timeout=60, what="two files")
    swarmd.proc.terminate()
    assert swarmd.proc.wait(60) == 0
    assert not root.exists(), sorted(root.rglob("*"))
