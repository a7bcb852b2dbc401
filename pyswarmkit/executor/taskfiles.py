"""The secret and config files of a node's tasks.

The agent resolves a task's references against the secrets and configs its
dispatcher sent (``resolve``, pure) and hands the executor the files. The
executor writes them with ``TaskFiles`` into a directory per task on a tmpfs
(``/dev/shm``, else ``$XDG_RUNTIME_DIR``), never under the node's state dir,
and removes them when the task ends: secret data never reaches a disk.

    <root>/<task id>/secrets/<target>
    <root>/<task id>/configs/<target>

``<root>`` is ``pyswarmkit-<hash of the state dir>``, mode 0700, so two nodes
on one machine keep apart and a restarted node finds its tasks' files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pyswarmkit.api.objects import Config, Secret, Task

log = logging.getLogger(__name__)

FileKind = Literal["secret", "config"]


@dataclass(frozen=True, slots=True)
class TaskFile:
    """One file a task gets: ``target`` as its reference gives it (relative:
    under the executor's directory for its kind), with Docker's owner and mode."""

    kind: FileKind
    name: str
    target: str
    data: bytes
    uid: str = "0"
    gid: str = "0"
    mode: int = 0o444

    def __repr__(self) -> str:
        # Whatever logs a command must not log secret data.
        return f"TaskFile({self.kind} {self.name!r} -> {self.target!r}, {len(self.data)} bytes)"


def resolve(
    task: Task, secrets: Mapping[str, Secret], configs: Mapping[str, Config]
) -> tuple[tuple[TaskFile, ...], list[str]]:
    """The files ``task`` needs, from what the node holds; and a line for
    each reference it does not hold (the task cannot run without it)."""
    c = task.spec.container
    files: list[TaskFile] = []
    missing: list[str] = []
    for s in c.secrets:
        secret = secrets.get(s.secret_id)
        if secret is None:
            missing.append(f"secret not found: {s.secret_name or s.secret_id}")
            continue
        files.append(
            TaskFile("secret", secret.name, s.target, secret.spec.data, s.uid, s.gid, s.mode)
        )
    for r in c.configs:
        config = configs.get(r.config_id)
        if config is None:
            missing.append(f"config not found: {r.config_name or r.config_id}")
            continue
        files.append(
            TaskFile("config", config.name, r.target, config.spec.data, r.uid, r.gid, r.mode)
        )
    return tuple(files), missing


def default_root(state_dir: Path) -> Path:
    """Where a node on ``state_dir`` keeps its tasks' files: on a tmpfs."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    for base in (Path("/dev/shm"), Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"))):
        if base.is_dir() and os.access(base, os.W_OK | os.X_OK):
            return base / f"pyswarmkit-{digest}"
    # No tmpfs found: the files still stay out of the state dir, and the log says where.
    fallback = Path(tempfile.gettempdir()) / f"pyswarmkit-{digest}"
    log.warning("no tmpfs (/dev/shm, $XDG_RUNTIME_DIR) found: task secrets go under %s", fallback)
    return fallback


def relative(target: str) -> str:
    """A target as a path below its kind's directory."""
    return target.strip("/")


class TaskFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def task_dir(self, task_id: str) -> Path:
        return self.root / task_id

    def _make_root(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = self.root.lstat()
        if st.st_uid != os.geteuid() or not self.root.is_dir() or self.root.is_symlink():
            raise OSError(f"{self.root} is not a directory of this user: refusing to use it")
        os.chmod(self.root, 0o700)

    def write(
        self, task_id: str, files: tuple[TaskFile, ...], *, owners: bool, secret_mode: int | None
    ) -> dict[TaskFile, Path]:
        """Write a task's files afresh; returns where each one is. ``owners``:
        give each file its reference's uid and gid (when this process may);
        ``secret_mode``: the mode of every secret file, instead of its
        reference's."""
        self._make_root()
        base = self.task_dir(task_id)
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(mode=0o700)
        where: dict[TaskFile, Path] = {}
        try:
            for f in files:
                where[f] = self._write_one(base, f, owners, secret_mode)
        except (OSError, ValueError, OverflowError) as exc:
            # Nothing of a task that will not run stays behind.
            shutil.rmtree(base, ignore_errors=True)
            raise OSError(f"{f.kind} {f.name!r} at {f.target!r}: {exc}") from exc
        return where

    @staticmethod
    def _write_one(base: Path, f: TaskFile, owners: bool, secret_mode: int | None) -> Path:
        path = base / f"{f.kind}s" / relative(f.target)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = secret_mode if f.kind == "secret" and secret_mode is not None else f.mode
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, f.data)
            if owners and os.geteuid() == 0:
                os.fchown(fd, int(f.uid or 0), int(f.gid or 0))
            os.fchmod(fd, mode & 0o7777)
        finally:
            os.close(fd)
        return path

    def remove(self, task_id: str) -> None:
        shutil.rmtree(self.task_dir(task_id), ignore_errors=True)

    def close(self) -> None:
        """At the node's stop: the root goes too once no task has files there."""
        with contextlib.suppress(OSError):
            self.root.rmdir()

    def prune(self, keep: set[str]) -> None:
        """Remove the files of every task but those in ``keep`` (at start: a
        previous run's tasks that no longer run)."""
        with contextlib.suppress(OSError):
            for entry in os.listdir(self.root):
                if entry not in keep:
                    shutil.rmtree(self.root / entry, ignore_errors=True)
