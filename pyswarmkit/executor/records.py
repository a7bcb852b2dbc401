"""What a previous run of a node left running, and whether a recorded process
is still the one it recorded. Pure: the view of /proc is an argument.

Each task the process executor starts records ``<pid> <start time>`` (start
time in clock ticks since boot, /proc/<pid>/stat field 22). A pid alone could
have been reused by an unrelated process since; the pair cannot, so nothing
here ever names a process whose start time differs from the record's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Record:
    pid: int
    started: int


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One process as /proc shows it: start time and state letter (R, S, Z...)."""

    started: int
    state: str


ProcView = Callable[[int], "ProcInfo | None"]


@dataclass(frozen=True, slots=True)
class Recovery:
    """Recorded tasks split in two: those whose process still runs (to adopt)
    and those whose process is gone (to report ended)."""

    adopt: dict[str, Record]
    gone: list[str]


def parse_record(text: str) -> Record | None:
    """``<pid> <start time>``; None for anything else (a record cut short by a
    crash, or a task that never started)."""
    try:
        pid_text, started_text = text.split()
        pid, started = int(pid_text), int(started_text)
    except ValueError:
        return None
    return Record(pid, started) if pid > 1 and started >= 0 else None


def parse_stat(stat: str) -> ProcInfo:
    """/proc/<pid>/stat; the command name may hold spaces or parentheses, so
    fields are counted after the last ')'."""
    fields = stat.rsplit(")", 1)[1].split()
    return ProcInfo(started=int(fields[19]), state=fields[0])


def is_running(record: Record, view: ProcView) -> bool:
    """Whether the recorded process still runs: same pid, same start time, not
    a zombie (a dead child its new parent has not reaped yet)."""
    info = view(record.pid)
    return info is not None and info.started == record.started and info.state != "Z"


def may_signal_group(record: Record, view: ProcView) -> bool:
    """Whether signalling the recorded process group can only reach the task's
    processes. Yes while the leader is the recorded one, and when no process
    has the pid at all (members may outlive their leader; Linux does not reuse
    a pid while a group of that id has members). No when another process now
    has the pid: then the old group is empty, and that process may lead a group
    of its own."""
    info = view(record.pid)
    return info is None or info.started == record.started


def sort_records(records: Iterable[tuple[str, Record | None]], view: ProcView) -> Recovery:
    """Which recorded tasks to adopt and which are gone."""
    adopt: dict[str, Record] = {}
    gone: list[str] = []
    for task_id, record in records:
        if record is not None and is_running(record, view):
            adopt[task_id] = record
        else:
            gone.append(task_id)
    return Recovery(adopt, sorted(gone))
