"""Raft consensus: a pure core, a durable log, and a seeded fault simulator.

The raft member actor needs only what is exported here; see docs/raft.md.
The simulator lives in `pyswarmkit.raft.sim` (run it with
`python -m pyswarmkit.raft.sim`).
"""

from .core import Config, ProposalDropped, RaftNode, Ready, Role
from .durable import DurableStorage, RecoveryReport, SnapshotCorruptError
from .fs import FileSystem, MemFS, OsFS
from .messages import (
    CC_ADD_LEARNER,
    CC_ADD_VOTER,
    CC_REMOVE,
    ENTRY_CONF_CHANGE,
    ENTRY_NORMAL,
    ConfChange,
    ConfState,
    Entry,
    HardState,
    Message,
    Snapshot,
    decode_messages,
    from_wire,
    to_wire,
)
from .storage import LoadedState, MemoryStorage, Storage
from .wal import TornTail, WalCorruptError

__all__ = [
    "CC_ADD_LEARNER",
    "CC_ADD_VOTER",
    "CC_REMOVE",
    "ENTRY_CONF_CHANGE",
    "ENTRY_NORMAL",
    "ConfChange",
    "ConfState",
    "Config",
    "DurableStorage",
    "Entry",
    "FileSystem",
    "HardState",
    "LoadedState",
    "MemFS",
    "MemoryStorage",
    "Message",
    "OsFS",
    "ProposalDropped",
    "RaftNode",
    "Ready",
    "RecoveryReport",
    "Role",
    "Snapshot",
    "SnapshotCorruptError",
    "Storage",
    "TornTail",
    "WalCorruptError",
    "decode_messages",
    "from_wire",
    "to_wire",
]
