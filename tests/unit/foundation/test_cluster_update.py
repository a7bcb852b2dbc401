"""cluster.update and what control replies show of the cluster's secrets."""

from __future__ import annotations

from typing import Any

import pytest

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import Cluster
from pyswarmkit.ca import signer
from pyswarmkit.control.handlers import Handlers, Reply, Write
from pyswarmkit.store import Change, MemoryStore

pytestmark = pytest.mark.unit


def swarm() -> MemoryStore:
    store = MemoryStore()
    store.apply([Change("create", signer.bootstrap(Cluster(id="c1"), 1000.0))], 1, 1.0)
    return store


def update(store: MemoryStore, **body: Any) -> Cluster:
    outcome = Handlers().handle(store, "cluster.update", {"ref": "default", **body})
    assert isinstance(outcome, Write)
    changes = outcome.build(store)
    if changes:
        store.apply(changes, store.index + 1, 2.0)
    return store.clusters()[0]


def test_rotating_one_token_keeps_the_other_and_the_settings() -> None:
    store = swarm()
    before = store.clusters()[0]
    after = update(store, rotate=["worker"])
    assert after.join_tokens.worker != before.join_tokens.worker
    assert after.join_tokens.manager == before.join_tokens.manager
    assert after.spec == before.spec
    both = update(store, rotate=["worker", "manager"])
    assert both.join_tokens.worker != after.join_tokens.worker
    assert both.join_tokens.manager != after.join_tokens.manager


def test_settings_change_one_at_a_time() -> None:
    store = swarm()
    c = update(store, cert_expiry=5400.0)
    assert c.spec.ca.node_cert_expiry == 5400.0
    c = update(store, heartbeat_period=1.0)
    assert c.spec.dispatcher.heartbeat_period == 1.0
    assert c.spec.ca.node_cert_expiry == 5400.0
    c = update(store, task_history=2)
    assert c.spec.orchestration.task_history_retention_limit == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"cert_expiry": 60.0}, "--cert-expiry must be between 30m0s and"),
        ({"cert_expiry": 1e16}, "--cert-expiry must be between"),
        ({"cert_expiry": "1h"}, "'cert_expiry' must be a float"),
        ({"heartbeat_period": 0.0}, "--heartbeat-period must be between"),
        ({"task_history": -1}, "--task-history-limit must be between 0 and"),
        ({"rotate": ["admin"]}, "--rotate-join-token takes worker or manager"),
        ({"rotate": "worker"}, "--rotate-join-token takes worker or manager"),
    ],
)
def test_bad_updates_are_refused_with_one_line(body: dict[str, Any], message: str) -> None:
    store = swarm()
    before = store.clusters()[0]
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        update(store, **body)
    assert store.clusters()[0] == before


def test_an_unknown_cluster_is_not_found() -> None:
    with pytest.raises(NotFound):
        Handlers().handle(swarm(), "cluster.update", {"ref": "nope", "rotate": ["worker"]})


def test_replies_never_carry_the_ca_key_or_the_server_secret() -> None:
    store = swarm()
    full = store.clusters()[0]
    assert full.root_ca.key_pem and full.server_key.secret
    for method in ("cluster.inspect", "cluster.list"):
        reply = Handlers().handle(store, method, {"ref": "default"})
        assert isinstance(reply, Reply)
        shown = reply.value.get("cluster") or reply.value["clusters"][0]
        assert shown.root_ca.key_pem == b"" and shown.server_key.secret == b""
        assert shown.root_ca.cert_pem == full.root_ca.cert_pem
        assert shown.join_tokens == full.join_tokens
