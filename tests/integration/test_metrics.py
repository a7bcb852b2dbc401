"""`swarmd --listen-metrics`: Prometheus text a scraper can parse, with the
swarm's counts read from the store and what the actors recorded."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from helpers import wait_until
from nodes import one_node, running, spec
from prometheus_client.parser import text_string_to_metric_families

from pyswarmkit.api.errors import NotFound, Unavailable
from pyswarmkit.metrics import Metrics, MetricsServer

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers.get_content_type() == "text/plain"
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_scrape_shows_the_swarm_and_what_it_did() -> None:
    with one_node(listen_metrics="127.0.0.1:0") as (node, client):
        server = node._metrics_server
        assert server is not None
        client.call("service.create", {"spec": spec("web", 2)})
        with pytest.raises(NotFound):
            client.call("service.inspect", {"ref": "nothing-by-that-name"})
        wait_until(lambda: running(node, "web") == 2, what="2 running")
        raft = node.raft
        assert raft is not None

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return scrape(server.port)

        wait_until(
            lambda: (
                scraped().get(("swarm_tasks", (("desired_state", "running"), ("state", "running"))))
                == 2
            ),
            what="2 running tasks in the metrics",
        )
        m = scraped()
        assert m[("swarm_manager_leader", ())] == 1
        assert m[("swarm_services", (("mode", "replicated"),))] == 1
        node_key = (("availability", "active"), ("role", "manager"), ("state", "ready"))
        assert m[("swarm_nodes", node_key)] == 1
        assert (
            m[("swarm_control_requests_total", (("code", "ok"), ("method", "service.create")))] == 1
        )
        missing = (("code", "not_found"), ("method", "service.inspect"))
        assert m[("swarm_control_requests_total", missing)] == 1
        assert m[("swarm_store_commit_seconds_count", ())] >= 3
        assert m[("swarm_scheduler_pass_tasks_sum", ())] >= 2
        assert m[("swarm_dispatcher_sessions", ())] == 1
        assert m[("swarm_raft_applied_index", ())] <= m[("swarm_raft_commit_index", ())]
        assert m[("swarm_raft_members", ())] == 1
        assert m[("swarm_store_index", ())] > 0
        # Only /metrics is served.
        with pytest.raises(urllib.error.HTTPError) as missing_page:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=10)
        assert missing_page.value.code == 404
    # Stopped with the node: nothing listens there any more.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=2)


def test_a_port_in_use_is_one_clear_error() -> None:
    first = MetricsServer("127.0.0.1:0", Metrics())
    try:
        with pytest.raises(
            Unavailable, match=r"cannot serve metrics on 127\.0\.0\.1:\d+: .*in use"
        ):
            MetricsServer(f"127.0.0.1:{first.port}", Metrics())
    finally:
        first.stop()
