"""What a bench reads from the leader: its metrics page, its node rows (who
was READY, who was ever DOWN) and the heartbeat miss rate."""

from __future__ import annotations

from typing import Any

import pytest

from pyswarmkit.bench.report import NodeWatch, miss_rate, parse_metrics
from pyswarmkit.control.events import FIELDS

pytestmark = pytest.mark.unit


def node_row(index: int, op: str, node_id: str, state: str) -> list[Any]:
    values = {"index": index, "time": 0.0, "op": op, "kind": "node", "id": node_id}
    values["state"] = state
    return [values.get(name, "") for name in FIELDS]


def test_parse_metrics_reads_plain_samples_and_skips_the_rest() -> None:
    page = "\n".join(
        [
            "# HELP swarm_raft_commit_index The highest entry this member knows committed.",
            "# TYPE swarm_raft_commit_index gauge",
            "swarm_raft_commit_index 1234.0",
            "swarm_dispatcher_heartbeat_misses_total 3.0",
            'swarm_nodes{availability="active",role="worker",state="ready"} 5.0',
            "swarm_broken not-a-number",
            "",
        ]
    )
    assert parse_metrics(page) == {
        "swarm_raft_commit_index": 1234.0,
        "swarm_dispatcher_heartbeat_misses_total": 3.0,
    }


def test_node_watch_counts_ready_agents_and_every_node_ever_down() -> None:
    watch = NodeWatch(others=frozenset({"m1"}))
    watch.feed(
        [
            node_row(1, "create", "a", "UNKNOWN"),
            node_row(2, "update", "a", "READY"),
            node_row(2, "update", "b", "READY"),
            node_row(3, "update", "m1", "READY"),
        ]
    )
    # The manager is not one of the agents.
    assert (watch.ready, watch.down) == (2, set())
    watch.feed([node_row(4, "update", "b", "DOWN"), node_row(5, "update", "m1", "DOWN")])
    assert watch.ready == 1
    # Back READY later, b was still marked DOWN once: it counts.
    watch.feed([node_row(6, "update", "b", "READY"), node_row(7, "delete", "a", "READY")])
    assert (watch.ready, watch.down) == (2, {"b", "m1"})
    # Task rows are not nodes.
    task = node_row(8, "update", "t", "DOWN")
    task[FIELDS.index("kind")] = "task"
    watch.feed([task])
    assert watch.down == {"b", "m1"}


def test_miss_rate_is_misses_per_heartbeat_due() -> None:
    # 1,000 agents beating every 20 s for 100 s owe 5,000 heartbeats.
    assert miss_rate(5, 1000, 100.0, 20.0) == pytest.approx(0.001)
    assert miss_rate(0, 1000, 100.0, 20.0) == 0.0
    assert miss_rate(3, 1000, 0.0, 20.0) == 0.0
