"""The CA's decisions, as pure functions of the cluster and the request.

The leader's CA actor calls these and commits what they return; nothing
here touches the store, a socket or a clock.
"""

from __future__ import annotations

from pyswarmkit.api.errors import PermissionDenied
from pyswarmkit.api.objects import (
    Cluster,
    Node,
    NodeCertificate,
    NodeSpec,
    NodeStatus,
    replace,
)
from pyswarmkit.api.protocol import CertificateIssued, JoinAccepted, JoinRequest
from pyswarmkit.api.states import NodeRole, NodeState
from pyswarmkit.ca.certs import (
    MIN_CERT_EXPIRY,
    issue,
    new_curve_keypair,
    new_root_ca,
    node_certificate,
    verify,
)
from pyswarmkit.ca.tokens import new_join_tokens, new_token, role_for_token

INVALID_TOKEN = "invalid join token"
NO_MANAGERS = (
    "joining as a manager needs replicated managers, which this swarm does not run yet: "
    "join with the worker token"
)


def bootstrap(cluster: Cluster, now: float) -> Cluster:
    """The cluster with its root CA, managers' server key and join tokens
    created where missing; the very same object when nothing is missing."""
    changes: dict[str, object] = {}
    if not cluster.root_ca.cert_pem or not cluster.root_ca.key_pem:
        changes["root_ca"] = new_root_ca(now)
    server_key = cluster.server_key
    if not server_key.public or not server_key.secret:
        server_key = new_curve_keypair()
        changes["server_key"] = server_key
        # Tokens pin the server key: with a new key the old tokens are void.
        changes["join_tokens"] = new_join_tokens(server_key.public)
    else:
        tokens = cluster.join_tokens
        if not tokens.worker or not tokens.manager:
            changes["join_tokens"] = replace(
                tokens,
                worker=tokens.worker or new_token(server_key.public),
                manager=tokens.manager or new_token(server_key.public),
            )
    return replace(cluster, **changes) if changes else cluster


def issue_node(
    cluster: Cluster, node_id: str, curve_key: bytes, role: NodeRole, now: float
) -> NodeCertificate:
    """A certificate for ``curve_key`` as ``node_id``, valid for the cluster's
    certificate expiry (never less than the minimum)."""
    validity = max(float(cluster.spec.ca.node_cert_expiry), MIN_CERT_EXPIRY)
    pem = issue(cluster.root_ca, curve_key, node_id, role, cluster.id, now, validity)
    return node_certificate(pem, verify(pem, cluster.root_ca.cert_pem, now))


def join(
    cluster: Cluster,
    existing: Node | None,
    key: bytes,
    req: JoinRequest,
    new_node_id: str,
    manager_id: str,
    addr: str,
    now: float,
    allow_managers: bool = False,
) -> tuple[Node | None, JoinAccepted]:
    """Admit a node presenting ``req.token`` with the Curve key ``key``: the
    node to write (None when nothing changes) and the answer to send.

    ``existing`` is the node already holding ``key``: its join was admitted
    but the answer lost, so it gets its certificate again."""
    role = role_for_token(req.token, cluster.join_tokens)
    if role is None:
        # The same words whatever was wrong, and never the token itself.
        raise PermissionDenied(INVALID_TOKEN)
    if role == NodeRole.MANAGER and not allow_managers:
        raise PermissionDenied(NO_MANAGERS)
    if existing is not None:
        cert = existing.certificate
        if cert is not None and cert.curve_key == key and now < cert.not_after:
            return None, _accepted(cluster, existing.role, existing.id, cert.pem, manager_id)
        cert = issue_node(cluster, existing.id, key, existing.role, now)
        node = replace(existing, certificate=cert)
        return node, _accepted(cluster, existing.role, existing.id, cert.pem, manager_id)
    cert = issue_node(cluster, new_node_id, key, role, now)
    node = Node(
        id=new_node_id,
        spec=NodeSpec(desired_role=role),
        role=role,
        description=req.description,
        status=NodeStatus(state=NodeState.UNKNOWN, addr=addr),
        certificate=cert,
    )
    return node, _accepted(cluster, node.role, new_node_id, cert.pem, manager_id)


def _accepted(
    cluster: Cluster, role: NodeRole, node_id: str, cert_pem: bytes, manager_id: str
) -> JoinAccepted:
    # A manager serves other nodes with the swarm's server key; a worker never holds it.
    secret = cluster.server_key.secret if role == NodeRole.MANAGER else b""
    return JoinAccepted(node_id, cert_pem, cluster.root_ca.cert_pem, manager_id, secret)


def renew(
    cluster: Cluster, node: Node, new_key: bytes, key_owner: Node | None, now: float
) -> tuple[Node, CertificateIssued]:
    """A fresh certificate for ``node``'s new key, with its current role.
    ``key_owner`` is the node already holding ``new_key``, if any."""
    if key_owner is not None and key_owner.id != node.id:
        raise PermissionDenied(
            f"node {node.id} asked to renew with a key another node holds: "
            "renew with a fresh keypair"
        )
    cert = issue_node(cluster, node.id, new_key, node.role, now)
    old = node.certificate
    if old is not None:
        # Until the node speaks with the new key, the key it holds may still be
        # the one it last used (the answer can be lost): that one stays
        # accepted, though not beyond its own certificate's end. A node that
        # never used its current key still holds the one before.
        if old.previous_key:
            held, held_until = old.previous_key, old.previous_not_after
        else:
            held, held_until = old.curve_key, old.not_after
        if held != new_key:
            cert = replace(cert, previous_key=held, previous_not_after=held_until)
    return (
        replace(node, certificate=cert),
        CertificateIssued(
            certificate=cert.pem,
            root_ca=cluster.root_ca.cert_pem,
            server_secret=cluster.server_key.secret if node.role == NodeRole.MANAGER else b"",
        ),
    )


def forget_previous_key(node: Node) -> Node | None:
    """``node`` without the key of before its last renewal, once it has spoken
    with the new one; None if there is nothing to forget."""
    cert = node.certificate
    if cert is None or not cert.previous_key:
        return None
    return replace(node, certificate=replace(cert, previous_key=b"", previous_not_after=0.0))


def redacted(cluster: Cluster) -> Cluster:
    """The cluster as a control reply may show it: no CA key, no server secret,
    no unlock key."""
    return replace(
        cluster,
        root_ca=replace(cluster.root_ca, key_pem=b""),
        server_key=replace(cluster.server_key, secret=b""),
        unlock_key=b"",
    )
