"""Per-message authorization: the key -> node table and the rules for each
kind of sender."""

from __future__ import annotations

import os
import typing

import pytest
from zmq.utils import z85

from pyswarmkit.api import protocol
from pyswarmkit.api.errors import PermissionDenied
from pyswarmkit.api.objects import Node, NodeCertificate
from pyswarmkit.api.states import NodeRole
from pyswarmkit.ca.authz import (
    WITHOUT_CERTIFICATE,
    WORKER_MAY_CALL,
    AuthTable,
    Peer,
    anonymous_id,
    authorize,
)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
KEY = bytes(range(32))
WORKER = Peer("w1", NodeRole.WORKER, NOW + 3600)
MANAGER = Peer("m1", NodeRole.MANAGER, NOW + 3600)


def _node(node_id: str, key: bytes, role: NodeRole = NodeRole.WORKER) -> Node:
    return Node(
        id=node_id,
        certificate=NodeCertificate(curve_key=key, role=role, not_after=NOW + 60, pem=b"x"),
    )


def test_method_tables_as_audited() -> None:
    assert frozenset({("ca", "join")}) == WITHOUT_CERTIFICATE
    assert (
        frozenset(
            {
                ("dispatcher", "register"),
                ("dispatcher", "heartbeat"),
                ("dispatcher", "update_task_status"),
                ("dispatcher", "assignments_request"),
                ("dispatcher", "leave"),
                ("ca", "renew_certificate"),
                ("logbroker", "log_data"),
            }
        )
        == WORKER_MAY_CALL
    )


def test_tables_name_real_message_kinds() -> None:
    kinds = {member.kind for member in typing.get_args(protocol.Body)}
    for _, kind in WITHOUT_CERTIFICATE | WORKER_MAY_CALL:
        assert kind in kinds


def test_anonymous_id() -> None:
    assert anonymous_id(KEY) == "curve:" + z85.encode(KEY).decode()
    assert len(anonymous_id(KEY)) == len("curve:") + 40


def test_table_maps_keys_from_certificates() -> None:
    k1, k2, k3 = os.urandom(32), os.urandom(32), os.urandom(32)
    table = AuthTable(
        [_node("a", k1), _node("b", k2, NodeRole.MANAGER), Node(id="c"), _node("d", b"")]
    )
    assert table.lookup(k1) == Peer("a", NodeRole.WORKER, NOW + 60)
    assert table.lookup(k2) == Peer("b", NodeRole.MANAGER, NOW + 60)
    assert table.lookup(k3) is None
    assert table.lookup(b"") is None
    assert len(table) == 2


def test_rebuild_replaces_the_whole_mapping_by_swapping() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    table = AuthTable([_node("a", k1)])
    before = table._peers
    table.rebuild([_node("b", k2)])
    # The old mapping was never touched: a reader holding it saw no half state.
    assert before == {k1: Peer("a", NodeRole.WORKER, NOW + 60)}
    assert table._peers is not before
    assert table.lookup(k1) is None  # a removed node's key is forgotten
    assert table.lookup(k2) is not None


def test_a_key_two_nodes_claim_speaks_for_neither() -> None:
    k = os.urandom(32)
    table = AuthTable([_node("a", k), _node("b", k, NodeRole.MANAGER)])
    assert table.lookup(k) is None


def test_unknown_key_may_only_join() -> None:
    assert authorize(None, KEY, "ca", "join", "", NOW) == anonymous_id(KEY)
    short = z85.encode(KEY)[:8].decode()
    for actor, kind in [("dispatcher", "register"), ("ca", "renew_certificate"), ("x", "join")]:
        with pytest.raises(PermissionDenied) as caught:
            authorize(None, KEY, actor, kind, "", NOW)
        assert str(caught.value) == (
            f"unknown node key {short}: only join is allowed without a certificate"
        )


def test_unknown_key_may_not_claim_a_node() -> None:
    with pytest.raises(PermissionDenied, match=r"unknown node key .* claims to be node 'm1'"):
        authorize(None, KEY, "ca", "join", "m1", NOW)
    with pytest.raises(PermissionDenied, match=r"claims to be node 'x{64}\.\.\.'$"):
        authorize(None, KEY, "dispatcher", "register", "x" * 1000, NOW)


@pytest.mark.parametrize(("actor", "kind"), sorted(WORKER_MAY_CALL))
def test_worker_may_call_its_methods(actor: str, kind: str) -> None:
    assert authorize(WORKER, KEY, actor, kind, "w1", NOW) == "w1"


@pytest.mark.parametrize(
    ("actor", "kind"),
    [
        ("store", "create_service"),
        ("raft", "append_entries"),
        ("dispatcher", "assignments"),
        # A worker sends log lines, but may not ask for others' or forward requests.
        ("logbroker", "log_control"),
        ("logsender", "log_subscribe"),
    ],
)
def test_worker_may_not_call_anything_else(actor: str, kind: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        authorize(WORKER, KEY, actor, kind, "w1", NOW)
    assert str(caught.value) == f"node w1 is a worker and may not call {actor}.{kind}"


def test_manager_may_call_anything() -> None:
    for actor, kind in [("store", "create_service"), ("raft", "x"), ("dispatcher", "register")]:
        assert authorize(MANAGER, KEY, actor, kind, "m1", NOW) == "m1"


def test_source_must_be_the_keys_node() -> None:
    for peer in (WORKER, MANAGER):
        with pytest.raises(PermissionDenied, match=f"^node {peer.node_id} claims to be 'other'$"):
            authorize(peer, KEY, "dispatcher", "heartbeat", "other", NOW)
        with pytest.raises(PermissionDenied, match="claims to be ''"):
            authorize(peer, KEY, "dispatcher", "heartbeat", "", NOW)


def test_expired_certificate_is_refused() -> None:
    assert authorize(WORKER, KEY, "dispatcher", "heartbeat", "w1", WORKER.not_after - 1) == "w1"
    for peer in (WORKER, MANAGER):
        with pytest.raises(PermissionDenied) as caught:
            authorize(peer, KEY, "ca", "renew_certificate", peer.node_id, peer.not_after)
        assert str(caught.value) == (
            f"certificate of node {peer.node_id} expired at 2027-01-15T09:00:00Z: join again"
        )


def test_known_or_expired_key_may_still_join() -> None:
    # A node whose join answer was lost retries with the key it now holds.
    assert authorize(WORKER, KEY, "ca", "join", "", NOW) == anonymous_id(KEY)
    assert authorize(WORKER, KEY, "ca", "join", "", NOW + 1e6) == anonymous_id(KEY)


def test_removed_node_is_refused_on_its_next_message() -> None:
    k = os.urandom(32)
    table = AuthTable([_node("w1", k)])
    peer = table.lookup(k)
    assert authorize(peer, k, "dispatcher", "heartbeat", "w1", NOW) == "w1"
    table.rebuild([])
    with pytest.raises(PermissionDenied, match="unknown node key"):
        authorize(table.lookup(k), k, "dispatcher", "heartbeat", "w1", NOW)


def test_table_authorize_looks_the_sender_up() -> None:
    k = os.urandom(32)
    table = AuthTable([_node("w1", k)])
    assert table.authorize(k, "dispatcher", "heartbeat", "w1", NOW) == "w1"
    with pytest.raises(PermissionDenied, match=r"worker and may not call store\.remove_node"):
        table.authorize(k, "store", "remove_node", "w1", NOW)
    with pytest.raises(PermissionDenied, match="unknown node key"):
        table.authorize(os.urandom(32), "dispatcher", "heartbeat", "w1", NOW)
    assert table.authorize(KEY, "ca", "join", "", NOW) == anonymous_id(KEY)
