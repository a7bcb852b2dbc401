"""Waiting on conditions with deadlines (never fixed sleeps), and process lookups."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    cond: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:g} s waiting for {what or cond} (last: {last!r})"
    )


def children_of(ppid: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every live process whose parent is ``ppid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        # The command name may hold spaces or parentheses: split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        state, parent = fields[0], int(fields[1])
        if parent == ppid and state != "Z":
            found.append((int(entry), argv))
    return found


def node_pids(up_pid: int) -> dict[str, int]:
    """Hostname -> pid of the node processes ``swarmd up`` (pid ``up_pid``) started."""
    found = {}
    for pid, argv in children_of(up_pid):
        if "--hostname" in argv:
            found[argv[argv.index("--hostname") + 1]] = pid
    return found


def tool(name: str) -> str:
    """A console script of this install: beside the running interpreter, else on PATH."""
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    assert found, f"{name} is not installed: pip install -e ."
    return found


def swarmctl(sock: str, *args: str) -> list[str]:
    """The argv of a swarmctl command against ``sock``. `service create`,
    `service update` and `node drain` wait for the change to take effect
    unless told otherwise; tests that are not about that watching return at
    once, as if they had passed --detach."""
    argv = [tool("swarmctl"), "-s", sock, *args]
    watching = args[:2] in (("service", "create"), ("service", "update"), ("node", "drain"))
    if watching and not {"-d", "--detach", "--no-detach"} & set(args):
        argv.insert(5, "--detach")
    return argv


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
