"""One node's actors by name. Several nodes may share a process, so each node
has its own registry rather than pykka's process-wide one."""

from __future__ import annotations

import threading
from typing import Any

import pykka


class Registry:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            self._refs[name] = ref

    def get(self, name: str) -> pykka.ActorRef[Any] | None:
        with self._lock:
            return self._refs.get(name)

    def remove(self, name: str) -> pykka.ActorRef[Any] | None:
        with self._lock:
            return self._refs.pop(name, None)

    def tell(self, name: str, message: object) -> bool:
        ref = self.get(name)
        if ref is None:
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True

    def names(self) -> list[str]:
        with self._lock:
            return list(self._refs)
