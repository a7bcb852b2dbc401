"""The CA's decisions: bootstrapping a cluster's CA, admitting joins,
renewing certificates, and what a control reply may show."""

from __future__ import annotations

import pytest

from pyswarmkit.api.errors import PermissionDenied
from pyswarmkit.api.objects import (
    CAConfig,
    Cluster,
    ClusterSpec,
    CurveKeyPair,
    JoinTokens,
    Node,
    NodeDescription,
    replace,
)
from pyswarmkit.api.protocol import CertificateIssued, JoinRequest
from pyswarmkit.api.states import NodeRole, NodeState
from pyswarmkit.ca.certs import (
    DEFAULT_CERT_EXPIRY,
    MIN_CERT_EXPIRY,
    curve_public,
    new_curve_keypair,
    verify,
)
from pyswarmkit.ca.signer import (
    INVALID_TOKEN,
    NO_MANAGERS,
    bootstrap,
    issue_node,
    join,
    redacted,
    renew,
)
from pyswarmkit.ca.tokens import new_token, parse_token, rotate

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
DESC = NodeDescription(hostname="node-2")


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return bootstrap(Cluster(id="cluster-1"), NOW)


def _join(
    cluster: Cluster, token: str, key: bytes, existing: Node | None = None, **kw: bool
) -> tuple[Node | None, object]:
    return join(
        cluster, existing, key, JoinRequest(token, DESC), "new-id", "mgr", "10.0.0.2", NOW, **kw
    )


def test_bootstrap_fills_everything(cluster: Cluster) -> None:
    assert cluster.root_ca.cert_pem and cluster.root_ca.key_pem
    assert curve_public(cluster.server_key.secret) == cluster.server_key.public
    tokens = cluster.join_tokens
    assert tokens.worker != tokens.manager
    for token in (tokens.worker, tokens.manager):
        assert parse_token(token).server_key == cluster.server_key.public


def test_bootstrap_is_idempotent(cluster: Cluster) -> None:
    assert bootstrap(cluster, NOW + 100) is cluster


def test_bootstrap_fills_only_what_is_missing(cluster: Cluster) -> None:
    no_worker = replace(cluster, join_tokens=replace(cluster.join_tokens, worker=""))
    filled = bootstrap(no_worker, NOW)
    assert filled.join_tokens.manager == cluster.join_tokens.manager
    assert filled.join_tokens.worker
    assert (filled.root_ca, filled.server_key) == (cluster.root_ca, cluster.server_key)
    no_root = bootstrap(replace(cluster, root_ca=replace(cluster.root_ca, cert_pem=b"")), NOW)
    assert no_root.root_ca != cluster.root_ca
    assert (no_root.server_key, no_root.join_tokens) == (cluster.server_key, cluster.join_tokens)


def test_new_server_key_voids_old_tokens(cluster: Cluster) -> None:
    rekeyed = bootstrap(replace(cluster, server_key=CurveKeyPair()), NOW)
    assert rekeyed.server_key.public != cluster.server_key.public
    assert rekeyed.join_tokens.worker != cluster.join_tokens.worker
    assert parse_token(rekeyed.join_tokens.worker).server_key == rekeyed.server_key.public


def test_issue_node_uses_the_cluster_expiry(cluster: Cluster) -> None:
    key = new_curve_keypair().public
    cert = issue_node(cluster, "n1", key, NodeRole.WORKER, NOW)
    assert cert.not_after == NOW + DEFAULT_CERT_EXPIRY
    assert (cert.curve_key, cert.role) == (key, NodeRole.WORKER)
    short = replace(cluster, spec=ClusterSpec(ca=CAConfig(node_cert_expiry=3600.0)))
    assert issue_node(short, "n1", key, NodeRole.WORKER, NOW).not_after == NOW + 3600
    tiny = replace(cluster, spec=ClusterSpec(ca=CAConfig(node_cert_expiry=1.0)))
    assert issue_node(tiny, "n1", key, NodeRole.WORKER, NOW).not_after == NOW + MIN_CERT_EXPIRY


def test_worker_token_admits_a_worker(cluster: Cluster) -> None:
    key = new_curve_keypair().public
    node, accepted = join(
        cluster,
        None,
        key,
        JoinRequest(cluster.join_tokens.worker, DESC),
        "new-id",
        "mgr",
        "10.0.0.2",
        NOW,
    )
    assert node is not None
    assert (node.id, node.role, node.spec.desired_role) == ("new-id", NodeRole.WORKER, 0)
    assert node.description == DESC
    assert (node.status.state, node.status.addr) == (NodeState.UNKNOWN, "10.0.0.2")
    assert node.certificate is not None and node.certificate.curve_key == key
    assert (accepted.node_id, accepted.manager_id) == ("new-id", "mgr")
    assert accepted.certificate == node.certificate.pem
    assert accepted.root_ca == cluster.root_ca.cert_pem
    info = verify(accepted.certificate, accepted.root_ca, NOW)
    assert (info.node_id, info.role, info.cluster_id) == ("new-id", NodeRole.WORKER, "cluster-1")


def test_manager_token_needs_replicated_managers(cluster: Cluster) -> None:
    key = new_curve_keypair().public
    with pytest.raises(PermissionDenied) as caught:
        _join(cluster, cluster.join_tokens.manager, key)
    assert str(caught.value) == NO_MANAGERS
    node, _ = _join(cluster, cluster.join_tokens.manager, key, allow_managers=True)
    assert node is not None and node.role == NodeRole.MANAGER
    assert node.certificate is not None and node.certificate.role == NodeRole.MANAGER


def test_bad_tokens_all_refused_alike(cluster: Cluster) -> None:
    other = bootstrap(Cluster(id="other"), NOW)
    rotated = rotate(cluster.join_tokens, "worker", cluster.server_key.public)
    cases = [
        "garbage",
        "",
        other.join_tokens.worker,  # another swarm's, valid shape
        new_token(cluster.server_key.public),  # right key, unknown secret
    ]
    for token in cases:
        with pytest.raises(PermissionDenied) as caught:
            _join(cluster, token, new_curve_keypair().public)
        assert str(caught.value) == INVALID_TOKEN == "invalid join token"
    # The worker token after rotation:
    with pytest.raises(PermissionDenied, match=r"^invalid join token$"):
        _join(replace(cluster, join_tokens=rotated), cluster.join_tokens.worker, b"\x01" * 32)


def test_retried_join_gets_the_same_certificate(cluster: Cluster) -> None:
    key = new_curve_keypair().public
    node, first = _join(cluster, cluster.join_tokens.worker, key)
    assert node is not None
    again, second = _join(cluster, cluster.join_tokens.worker, key, existing=node)
    assert again is None
    assert second == first


def test_retried_join_after_expiry_gets_a_new_certificate(cluster: Cluster) -> None:
    key = new_curve_keypair().public
    node, first = _join(cluster, cluster.join_tokens.worker, key)
    assert node is not None and node.certificate is not None
    later = node.certificate.not_after
    updated, answer = join(
        cluster,
        node,
        key,
        JoinRequest(cluster.join_tokens.worker, DESC),
        "unused",
        "mgr",
        "a",
        later,
    )
    assert updated is not None and updated.id == node.id
    assert updated.certificate is not None and updated.certificate.not_after > later
    assert answer.node_id == node.id and answer.certificate != first.certificate


def test_renew_issues_for_the_new_key(cluster: Cluster) -> None:
    old, new = new_curve_keypair().public, new_curve_keypair().public
    node, _ = _join(cluster, cluster.join_tokens.worker, old)
    assert node is not None
    node = replace(node, role=NodeRole.MANAGER)  # promoted since it joined
    renewed, issued = renew(cluster, node, new, None, NOW + 10)
    assert renewed.certificate is not None
    assert renewed.certificate.curve_key == new
    assert renewed.certificate.role == NodeRole.MANAGER
    assert isinstance(issued, CertificateIssued)
    assert issued.certificate == renewed.certificate.pem
    assert issued.root_ca == cluster.root_ca.cert_pem
    info = verify(issued.certificate, issued.root_ca, NOW + 10)
    assert (info.node_id, info.curve_key, info.role) == (node.id, new, NodeRole.MANAGER)
    # Renewing with the key it already holds is harmless.
    renew(cluster, renewed, new, renewed, NOW + 20)


def test_renew_refuses_another_nodes_key(cluster: Cluster) -> None:
    a, _ = _join(cluster, cluster.join_tokens.worker, new_curve_keypair().public)
    b, _ = join(
        cluster,
        None,
        new_curve_keypair().public,
        JoinRequest(cluster.join_tokens.worker, DESC),
        "b-id",
        "mgr",
        "x",
        NOW,
    )
    assert a is not None and b is not None and b.certificate is not None
    with pytest.raises(PermissionDenied, match="another node holds"):
        renew(cluster, a, b.certificate.curve_key, b, NOW)


def test_redacted_hides_the_secrets(cluster: Cluster) -> None:
    shown = redacted(cluster)
    assert shown.root_ca.key_pem == b"" and shown.server_key.secret == b""
    assert shown.root_ca.cert_pem == cluster.root_ca.cert_pem
    assert shown.server_key.public == cluster.server_key.public
    assert shown.join_tokens == cluster.join_tokens
    assert redacted(Cluster(id="x")).join_tokens == JoinTokens()
