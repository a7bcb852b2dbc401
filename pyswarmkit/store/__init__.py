from pyswarmkit.store.memory import Change, Event, EventBatch, MemoryStore, Tx
from pyswarmkit.store.proposer import LocalProposer, Proposer

__all__ = ["Change", "Event", "EventBatch", "LocalProposer", "MemoryStore", "Proposer", "Tx"]
