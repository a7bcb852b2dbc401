"""The store actor: the one writer. It hands batches to the proposer and
reports each outcome; reads go straight to the shared MemoryStore."""

from __future__ import annotations

import logging
from typing import Any

import pykka

from pyswarmkit.actors.messages import Propose, Transact
from pyswarmkit.api.errors import Internal, SwarmError
from pyswarmkit.store.memory import MemoryStore
from pyswarmkit.store.proposer import Proposer

log = logging.getLogger(__name__)


class StoreActor(pykka.ThreadingActor):
    def __init__(self, store: MemoryStore, proposer: Proposer) -> None:
        super().__init__()
        self.store = store
        self.proposer = proposer

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Transact):
            try:
                changes = message.build(self.store)
            except SwarmError as err:
                message.on_done(None, err)
                return None
            except Exception as exc:
                log.exception("building a transaction failed")
                message.on_done(None, Internal(f"store write failed: {exc}"))
                return None
            if not changes:
                message.on_done(None, None)
                return None
            message = Propose(changes, message.now, message.on_done)
        if isinstance(message, Propose):
            try:
                self.proposer.propose(message.changes, message.now, message.on_done)
            except Exception as exc:  # a bug must not take the only writer down
                log.exception("proposal failed")
                message.on_done(None, Internal(f"store write failed: {exc}"))
        return None
