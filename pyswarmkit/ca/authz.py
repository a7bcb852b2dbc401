"""Who may send what: per-message authorization on the wire.

A node's identity on the wire is its CurveZMQ public key. The managers'
certificates (``Node.certificate`` in the store) map each key to a node ID
and a role; the transport asks ``authorize`` about every message it
receives, with the sender's key and the envelope's addressing. The rules:

- an unknown key may only ask the CA to join (its ``source`` is empty, and it
  gets the id ``curve:<z85 of its key>`` so the answer finds its way back);
- a worker may call the dispatcher's session methods and renew its
  certificate, nothing else;
- a manager may call anything;
- a sender's ``source`` must be the node its key belongs to;
- a key whose certificate expired, or whose node was removed, is refused
  (a removed node's own key is told so in these words: ``REMOVED``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from zmq.utils import z85

from pyswarmkit.api.errors import PermissionDenied
from pyswarmkit.api.objects import Node
from pyswarmkit.api.states import NodeRole
from pyswarmkit.ca.certs import iso
from pyswarmkit.store.memory import Event
from pyswarmkit.transport.bus import anonymous_id, key_of_anonymous

__all__ = ["AuthTable", "Peer", "anonymous_id", "authorize", "key_of_anonymous"]


# What a removed node is told when it speaks with its key; its swarmd stops on it.
REMOVED = "this node was removed from the swarm"

# (destination actor, message kind) pairs. Managers are not listed: they may
# send anything.
# Removed nodes' keys remembered to tell them so.
MAX_REMOVED_KEYS = 1024

WITHOUT_CERTIFICATE: frozenset[tuple[str, str]] = frozenset({("ca", "join")})
WORKER_MAY_CALL: frozenset[tuple[str, str]] = frozenset(
    {
        ("dispatcher", "register"),
        ("dispatcher", "heartbeat"),
        ("dispatcher", "update_task_status"),
        ("dispatcher", "assignments_request"),
        ("dispatcher", "leave"),
        ("ca", "renew_certificate"),
        # A task's log, asked for by the leader's log broker.
        ("logbroker", "log_data"),
    }
)


@dataclass(frozen=True)
class Peer:
    node_id: str
    role: NodeRole
    not_after: float
    # The key of before the node's last renewal (accepted until it uses the new one).
    previous: bool = False


def _short(key: bytes) -> str:
    # Enough of a key to tell two apart in a log line.
    try:
        return z85.encode(key)[:8].decode("ascii")
    except ValueError:
        return key[:6].hex()


def _said(source: str) -> str:
    # A peer's claim, shown bounded and quoted: it is whatever the peer sent.
    return repr(source[:64] + ("..." if len(source) > 64 else ""))


class AuthTable:
    """Curve key -> Peer, from the certificates in the store.

    ``lookup`` runs on the transport's I/O thread while ``rebuild`` runs
    wherever the store is watched: a rebuild makes a whole new dict and then
    swaps one attribute, so a lookup sees the old mapping or the new one,
    never half of each (assigning an attribute is atomic in CPython)."""

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        # The nodes holding certificates, by ID: what the table is built from.
        self._certified: dict[str, Node] = {}
        # Keys of nodes removed from the swarm (oldest forgotten first), so
        # that their next message is told why it is refused.
        self.removed_keys: OrderedDict[bytes, str] = OrderedDict()
        self._peers: dict[bytes, Peer] = {}
        # Nodes that still have the key of before their last renewal accepted.
        self.renewing: frozenset[str] = frozenset()
        self.rebuild(nodes)

    def lookup(self, key: bytes) -> Peer | None:
        return self._peers.get(key)

    def follow(self, events: Iterable[Event]) -> None:
        """Keep in step with the store's node events: a removed node's key,
        or a renewed node's retired key, is refused from the next lookup."""
        touched = False
        for ev in events:
            if ev.kind != "node" or not isinstance(ev.obj, Node):
                continue
            node = ev.obj
            if ev.op == "delete" and node.certificate is not None:
                self._remember_removed(node.id, node.certificate.curve_key)
                self._remember_removed(node.id, node.certificate.previous_key)
            if ev.op == "delete" or node.certificate is None:
                touched |= self._certified.pop(node.id, None) is not None
            else:
                old = self._certified.get(node.id)
                if old is None or old.certificate != node.certificate:
                    self._certified[node.id] = node
                    touched = True
        if touched:
            self._build()

    def _remember_removed(self, node_id: str, key: bytes) -> None:
        if not key:
            return
        self.removed_keys[key] = node_id
        self.removed_keys.move_to_end(key)
        while len(self.removed_keys) > MAX_REMOVED_KEYS:
            self.removed_keys.popitem(last=False)

    def rebuild(self, nodes: Iterable[Node]) -> None:
        self._certified = {n.id: n for n in nodes if n.certificate is not None}
        self._build()

    def _build(self) -> None:
        nodes = self._certified.values()
        peers: dict[bytes, Peer] = {}
        shared: set[bytes] = set()
        renewing: set[str] = set()
        for node in nodes:
            cert = node.certificate
            if cert is None or not cert.curve_key:
                continue
            keys = [(cert.curve_key, Peer(node.id, cert.role, cert.not_after))]
            if cert.previous_key:
                old = Peer(node.id, cert.role, cert.previous_not_after, previous=True)
                keys.append((cert.previous_key, old))
            if cert.previous_key:
                renewing.add(node.id)
            for key, peer in keys:
                if key in peers:
                    shared.add(key)
                peers[key] = peer
        # A key two nodes claim speaks for neither: the CA never issues one
        # twice, so this is damage, and guessing would hand one node's rights
        # to the other.
        for key in shared:
            del peers[key]
        self._peers = peers
        self.renewing = frozenset(renewing)

    def __len__(self) -> int:
        return len(self._peers)

    def authorize(self, key: bytes, dest_actor: str, kind: str, source: str, now: float) -> str:
        """``authorize`` with the sender looked up here: what a transport's
        hook calls for each message, with the envelope's fields and wall time."""
        peer = self.lookup(key)
        removed = peer is None and key in self.removed_keys
        return authorize(peer, key, dest_actor, kind, source, now, removed)


def authorize(
    peer: Peer | None,
    key: bytes,
    dest_actor: str,
    kind: str,
    source: str,
    now: float,
    removed: bool = False,
) -> str:
    """The sender's id if it may send ``kind`` to ``dest_actor``; otherwise
    PermissionDenied with one line saying why. ``removed``: the key belonged
    to a node that was removed from the swarm."""
    if (dest_actor, kind) in WITHOUT_CERTIFICATE and source == "":
        # Joining needs no certificate (the token is the proof); a node whose
        # join answer was lost retries with the key it already holds.
        return anonymous_id(key)
    if peer is None and removed:
        raise PermissionDenied(REMOVED)
    if peer is None:
        if source:
            raise PermissionDenied(
                f"unknown node key {_short(key)} claims to be node {_said(source)}"
            )
        raise PermissionDenied(
            f"unknown node key {_short(key)}: only join is allowed without a certificate"
        )
    if now >= peer.not_after:
        raise PermissionDenied(
            f"certificate of node {peer.node_id} expired at {iso(peer.not_after)}: join again"
        )
    if source != peer.node_id:
        raise PermissionDenied(f"node {peer.node_id} claims to be {_said(source)}")
    if peer.role == NodeRole.MANAGER:
        return peer.node_id
    if (dest_actor, kind) in WORKER_MAY_CALL:
        return peer.node_id
    raise PermissionDenied(f"node {peer.node_id} is a worker and may not call {dest_actor}.{kind}")
