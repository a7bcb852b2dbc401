"""A disk that really fills up: a small tmpfs mounted on a manager's ``raft``
directory, and a filler file that takes every free byte of it (ENOSPC, as a
full partition or a quota gives). Mounting needs root; without it the chaos
run skips its disk faults and says so."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

FILLER = "filler"


def mount_small(path: Path, size: str = "64m") -> str:
    """Mount a tmpfs of ``size`` on ``path`` (created if missing); "" if
    done, else why not, in one line."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run mount: {exc}"
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        return lines[-1] if lines else f"mount exited {r.returncode}"
    return ""


def unmount(path: Path) -> None:
    """Detach it even if something still has a file open there."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False, timeout=30)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; the filler's path."""
    filler = disk / FILLER
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        # Big writes first, then single bytes for what a big one cannot fit.
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            try:
                while os.write(fd, chunk):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler


def free(disk: Path) -> None:
    (disk / FILLER).unlink(missing_ok=True)
