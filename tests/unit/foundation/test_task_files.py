"""Secrets and configs on a worker: the agent hands each task its files (or
refuses a task whose secret it was not sent), and the executor writes them
to a per-task directory with the modes the task needs, and removes them."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from pyswarmkit.agent.core import Agent
from pyswarmkit.api.objects import (
    Annotations,
    Config,
    ConfigReference,
    ConfigSpec,
    ContainerSpec,
    NodeDescription,
    Secret,
    SecretReference,
    SecretSpec,
    Task,
    TaskSpec,
    TaskStatus,
)
from pyswarmkit.api.protocol import Assignments, Registered
from pyswarmkit.api.states import TaskState
from pyswarmkit.executor.docker import file_mounts
from pyswarmkit.executor.taskfiles import TaskFile, TaskFiles, default_root, resolve

pytestmark = pytest.mark.unit

SECRET = Secret(id="sec1", spec=SecretSpec(Annotations(name="db-pass"), b"hunter2"))
CONFIG = Config(id="cfg1", spec=ConfigSpec(Annotations(name="app-conf"), b"port=80\n"))


def _task(tid: str = "t1") -> Task:
    c = ContainerSpec(
        command=("true",),
        secrets=(SecretReference(secret_id="sec1", secret_name="db-pass", target="db-pass"),),
        configs=(ConfigReference(config_id="cfg1", config_name="app-conf", target="/etc/app"),),
    )
    return Task(
        id=tid,
        node_id="n1",
        spec=TaskSpec(container=c),
        desired_state=TaskState.RUNNING,
        status=TaskStatus(state=TaskState.ASSIGNED),
    )


def _connected() -> Agent:
    a = Agent(NodeDescription(hostname="w"), random.Random(0))
    a.tick(0.0)
    a.registered(Registered(a.token, "s1", 5.0), 0.0, 0.0)
    return a


def test_a_task_gets_the_files_sent_with_its_set() -> None:
    a = _connected()
    fx = a.receive(Assignments("s1", True, 0, 1, (_task(),), (), (SECRET,), (CONFIG,)), 1.0, 1.0)
    [prepare] = [c for c in fx.commands if c.op == "prepare"]
    assert sorted((f.kind, f.target, f.data) for f in prepare.files) == [
        ("config", "/etc/app", b"port=80\n"),
        ("secret", "db-pass", b"hunter2"),
    ]
    # Dropped with the set after which no task needs it.
    a.receive(Assignments("s1", False, 1, 2, (), ("t1",), (), (), ("sec1",), ("cfg1",)), 2, 2)
    assert a.secrets == {} and a.configs == {}


def test_a_task_whose_secret_was_not_sent_is_rejected_naming_it() -> None:
    a = _connected()
    fx = a.receive(Assignments("s1", True, 0, 1, (_task(),), (), (), (CONFIG,)), 1.0, 1.0)
    assert not [c for c in fx.commands if c.op == "prepare"]
    status = a.pending["t1"]
    assert status.state == TaskState.REJECTED
    assert status.err == "secret not found: db-pass"


def test_a_full_set_replaces_what_the_node_held() -> None:
    a = _connected()
    a.receive(Assignments("s1", True, 0, 1, (_task(),), (), (SECRET,), (CONFIG,)), 1.0, 1.0)
    a.receive(Assignments("s1", True, 0, 2, (), (), (), ()), 2.0, 2.0)
    assert a.secrets == {} and a.configs == {}


def test_resolve_names_every_missing_reference() -> None:
    files, missing = resolve(_task(), {}, {})
    assert files == ()
    assert missing == ["secret not found: db-pass", "config not found: app-conf"]


def _files() -> tuple[TaskFile, ...]:
    files, missing = resolve(_task(), {"sec1": SECRET}, {"cfg1": CONFIG})
    assert not missing
    return files


def test_files_are_written_with_the_modes_asked_and_removed(tmp_path: Path) -> None:
    tf = TaskFiles(tmp_path / "root")
    where = tf.write("t1", _files(), owners=False, secret_mode=0o400)
    by_kind = {f.kind: p for f, p in where.items()}
    secret, config = by_kind["secret"], by_kind["config"]
    assert secret == tmp_path / "root" / "t1" / "secrets" / "db-pass"
    assert config == tmp_path / "root" / "t1" / "configs" / "etc" / "app"
    assert secret.read_bytes() == b"hunter2"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o400
    assert stat.S_IMODE(config.stat().st_mode) == 0o444
    assert secret.stat().st_uid == os.geteuid()
    assert stat.S_IMODE((tmp_path / "root").stat().st_mode) == 0o700
    # Written again (a retried prepare): the same files, not a failure.
    tf.write("t1", _files(), owners=False, secret_mode=0o400)
    tf.remove("t1")
    assert not (tmp_path / "root" / "t1").exists()


def test_prune_keeps_only_the_tasks_named(tmp_path: Path) -> None:
    tf = TaskFiles(tmp_path / "root")
    tf.write("t1", _files(), owners=False, secret_mode=None)
    tf.write("t2", _files(), owners=False, secret_mode=None)
    tf.prune({"t2"})
    assert sorted(os.listdir(tmp_path / "root")) == ["t2"]


def test_a_root_of_another_user_or_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="refusing"):
        TaskFiles(tmp_path / "root").write("t1", _files(), owners=False, secret_mode=None)


def test_files_stay_off_the_state_dir(tmp_path: Path) -> None:
    root = default_root(tmp_path / "state")
    assert tmp_path not in root.parents
    assert root.parent == Path("/dev/shm") or not Path("/dev/shm").is_dir()
    assert default_root(tmp_path / "state") == root != default_root(tmp_path / "other")


def test_docker_mounts_put_secrets_under_run_secrets_and_configs_at_their_target(
    tmp_path: Path,
) -> None:
    where = TaskFiles(tmp_path).write("t1", _files(), owners=False, secret_mode=None)
    mounts = {m["Target"]: m for m in file_mounts(where)}
    assert sorted(mounts) == ["/etc/app", "/run/secrets/db-pass"]
    assert all(m["ReadOnly"] and m["Type"] == "bind" for m in mounts.values())
    assert mounts["/run/secrets/db-pass"]["Source"].endswith("/t1/secrets/db-pass")


def test_a_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    tf = TaskFiles(tmp_path / "root")
    clash = (
        TaskFile("secret", "a", "x", b"one"),
        TaskFile("secret", "b", "/x", b"two"),
    )
    with pytest.raises(OSError, match="secret 'b' at '/x'"):
        tf.write("t1", clash, owners=False, secret_mode=0o400)
    assert not (tmp_path / "root" / "t1").exists()
    tf.close()
    assert not (tmp_path / "root").exists()
