"""``events.since`` on a live node: the manager's own record of what it
committed, read through the control socket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import wait_until
from nodes import one_node, spec

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.node import SwarmNode
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration


@pytest.fixture
def node() -> Iterator[tuple[SwarmNode, ControlClient]]:
    with one_node() as pair:
        yield pair


def rows(reply: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(reply["fields"], r, strict=True)) for r in reply["events"]]


def test_events_since_follows_a_service_from_create_to_running(
    node: tuple[SwarmNode, ControlClient],
) -> None:
    n, client = node
    start = client.call("events.since")
    assert start["events"] == [] and start["next"] >= 1
    service_id = client.call("service.create", {"spec": spec("web", 5)})["id"]
    seen: list[dict[str, Any]] = []
    index = start["next"]

    def all_running() -> bool:
        nonlocal index
        reply = client.call("events.since", {"index": index, "kinds": ["task", "service"]})
        seen.extend(rows(reply))
        index = reply["next"]
        running = {e["id"] for e in seen if e["kind"] == "task" and e["state"] == "RUNNING"}
        return len(running) == 5

    wait_until(all_running, what="five tasks RUNNING in the events")
    created = [e for e in seen if e["kind"] == "service" and e["op"] == "create"]
    assert [e["id"] for e in created] == [service_id]
    tasks = {t.id: t for t in n.store.tasks()}
    assert set(tasks) == {e["id"] for e in seen if e["kind"] == "task"}
    for tid in tasks:
        mine = [e for e in seen if e["id"] == tid]
        # Created PENDING, then placed on the node, then running; in commit order.
        assert mine[0]["op"] == "create" and mine[0]["state"] == "PENDING"
        assert mine[0]["service_id"] == service_id
        assigned = next(e for e in mine if e["state"] == "ASSIGNED")
        assert assigned["node_id"] == n.node_id
        assert [e["index"] for e in mine] == sorted(e["index"] for e in mine)
        assert [e["time"] for e in mine] == sorted(e["time"] for e in mine)
        assert created[0]["time"] <= mine[0]["time"]
    # Nothing new since: an empty answer at the same index.
    again = client.call("events.since", {"index": index, "kinds": ["service"]})
    assert again["events"] == [] and again["next"] >= index


def test_events_since_refuses_bad_arguments(node: tuple[SwarmNode, ControlClient]) -> None:
    _, client = node
    with pytest.raises(InvalidArgument, match="unknown object kind 'widget'"):
        client.call("events.since", {"index": 0, "kinds": ["widget"]})
    with pytest.raises(InvalidArgument, match="'index' must be a whole number"):
        client.call("events.since", {"index": -1})
    with pytest.raises(InvalidArgument, match="'limit'"):
        client.call("events.since", {"index": 0, "limit": 0})
