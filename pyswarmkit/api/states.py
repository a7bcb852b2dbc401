"""Task and node states, in SwarmKit's order. A task's observed state only moves forward."""

from __future__ import annotations

from enum import IntEnum


class TaskState(IntEnum):
    NEW = 0
    PENDING = 64
    ASSIGNED = 192
    ACCEPTED = 256
    PREPARING = 320
    READY = 384
    STARTING = 448
    RUNNING = 512
    COMPLETE = 576
    SHUTDOWN = 640
    FAILED = 704
    REJECTED = 768
    REMOVE = 800
    ORPHANED = 832

    @property
    def terminal(self) -> bool:
        """Past RUNNING: the task will never run again."""
        return self > TaskState.RUNNING


class NodeState(IntEnum):
    UNKNOWN = 0
    DOWN = 1
    READY = 2
    DISCONNECTED = 3


class NodeAvailability(IntEnum):
    ACTIVE = 0
    PAUSE = 1
    DRAIN = 2


class NodeRole(IntEnum):
    WORKER = 0
    MANAGER = 1


class Membership(IntEnum):
    PENDING = 0
    ACCEPTED = 1


class Reachability(IntEnum):
    UNKNOWN = 0
    UNREACHABLE = 1
    REACHABLE = 2


class RestartCondition(IntEnum):
    NONE = 0
    ON_FAILURE = 1
    ANY = 2


class UpdateState(IntEnum):
    UNKNOWN = 0
    UPDATING = 1
    PAUSED = 2
    COMPLETED = 3
    ROLLBACK_STARTED = 4
    ROLLBACK_PAUSED = 5
    ROLLBACK_COMPLETED = 6
