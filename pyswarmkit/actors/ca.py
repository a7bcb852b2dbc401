"""The CA signer: answers joins and certificate renewals on the leader.

Each answer is decided by the pure functions of ``ca/signer.py`` inside a
store transaction, so two joins with the same key, or a renewal racing a
join, see each other's writes; the reply goes out only once the node (and its
certificate) is committed, so a node never holds a certificate the store does
not know.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pyswarmkit import clock
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Deliver, Transact
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import FailedPrecondition, NotFound, PermissionDenied, SwarmError
from pyswarmkit.api.ids import new_id
from pyswarmkit.api.objects import Cluster, Node
from pyswarmkit.api.protocol import Body, Error, JoinRequest, RenewCertificate
from pyswarmkit.ca import signer
from pyswarmkit.ca.authz import key_of_anonymous
from pyswarmkit.ca.tokens import role_for_token
from pyswarmkit.store.memory import Change, EventBatch, MemoryStore
from pyswarmkit.transport.bus import Bus, Envelope
from pyswarmkit.transport.frames import LogLimiter, held_note

log = logging.getLogger(__name__)

# A joiner waits for its answer about this long before it asks again.
REPLY_TTL = 30.0


def _cluster(store: MemoryStore) -> Cluster:
    clusters = store.clusters()
    if not clusters:
        raise FailedPrecondition("the swarm has no cluster object yet: try again")
    return clusters[0]


def node_with_key(store: MemoryStore, key: bytes) -> Node | None:
    for node in store.nodes():
        if node.certificate is not None and node.certificate.curve_key == key:
            return node
    return None


class CAActor(GuardedActor):
    name = "ca"

    def __init__(self, registry: Registry, store: MemoryStore, bus: Bus) -> None:
        super().__init__()
        self.registry = registry
        self.store = store
        self.bus = bus
        # Refused joins are logged at most once per address per 10 s.
        self._limiter = LogLimiter()
        # Joins being written, by the joiner's key, with the duplicates of
        # each that arrived meanwhile (a resent or duplicated request): those
        # get the same answer, not a second node. Written on the store's thread.
        self._joining: dict[bytes, list[Envelope]] = {}
        self._joining_lock = threading.Lock()

    def handle(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            body = message.envelope.body
            if isinstance(body, JoinRequest):
                self._join(message, body)
            elif isinstance(body, RenewCertificate):
                self._renew(message, body)
            else:
                log.warning(
                    "ignored %s from %s: not a CA request",
                    message.envelope.kind,
                    message.envelope.source,
                )
        return None

    def _join(self, msg: Deliver, req: JoinRequest) -> None:
        env, addr = msg.envelope, msg.addr
        key = key_of_anonymous(env.source)
        if key is None:
            # A node that holds a certificate already is one: it has nothing to join.
            self._reply(env, Error.of(FailedPrecondition("this node is already part of the swarm")))
            return
        me = self.registry.node_id
        wall = clock.wall()
        clusters = self.store.clusters()
        if clusters and role_for_token(req.token, clusters[0].join_tokens) is None:
            # Refused before any write: nobody can make the store work by
            # sending joins without a token.
            self._refused(env, addr, PermissionDenied(signer.INVALID_TOKEN))
            return
        with self._joining_lock:
            duplicates = self._joining.get(key)
            if duplicates is not None:
                duplicates.append(env)
                return
            self._joining[key] = []
        answer: list[Body] = []
        joined: list[Node] = []

        def build(store: MemoryStore) -> list[Change]:
            existing = node_with_key(store, key)
            node, accepted = signer.join(
                _cluster(store), existing, key, req, new_id(), me, addr, wall, allow_managers=True
            )
            answer.append(accepted)
            if node is None:
                return []
            joined.append(node)
            # A node whose certificate expired joins again under its own ID.
            if store.get_node(node.id) is not None:
                return [Change("update", node)]
            return [Change("create", node)]

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            with self._joining_lock:
                asked = [env, *self._joining.pop(key, [])]
            if err is not None:
                for e in asked:
                    if isinstance(err, PermissionDenied):
                        self._refused(e, addr, err)
                    else:
                        self._reply(e, Error.of(err, "join"))
                if not isinstance(err, PermissionDenied):
                    log.warning("a join from %s failed: %s", addr, err)
                return
            for node in joined:
                log.info(
                    "node %s (%s) joined from %s as a %s",
                    node.id,
                    node.description.hostname,
                    addr,
                    node.role.name.lower(),
                )
            for e in asked:
                self._reply(e, answer[0])

        self._transact(build, wall, done)

    def _renew(self, msg: Deliver, req: RenewCertificate) -> None:
        env = msg.envelope
        wall = clock.wall()
        answer: list[Body] = []

        def build(store: MemoryStore) -> list[Change]:
            node = store.get_node(env.source)
            if node is None:
                raise NotFound(f"node {env.source} is not part of the swarm")
            renewed, issued = signer.renew(
                _cluster(store), node, req.curve_key, node_with_key(store, req.curve_key), wall
            )
            answer.append(issued)
            return [Change("update", renewed)]

        def done(batch: EventBatch | None, err: SwarmError | None) -> None:
            if err is not None:
                log.warning("could not renew the certificate of node %s: %s", env.source, err)
                self._reply(env, Error.of(err, "renew_certificate"))
                return
            log.info("renewed the certificate of node %s", env.source)
            self._reply(env, answer[0])

        self._transact(build, wall, done)

    def _refused(self, env: Envelope, addr: str, err: SwarmError) -> None:
        held = self._limiter.allow(("join", addr), clock.monotonic())
        if held is not None:
            log.warning("refused a join from %s: %s%s", addr, err, held_note(held))
        self._reply(env, Error.of(err, "join"))

    def _transact(self, build: Any, wall: float, done: Any) -> None:
        if not self.registry.tell("store", Transact(build, wall, done)):
            done(None, FailedPrecondition("the store is restarting: try again"))

    def _reply(self, env: Envelope, body: Body) -> None:
        out = Envelope(
            self.registry.node_id,
            env.source,
            "ca",
            body,
            reply_to=env.id,
            deadline=clock.monotonic() + REPLY_TTL,
        )
        self.bus.send(out)
