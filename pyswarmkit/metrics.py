"""What ``swarmd --listen-metrics`` serves, in Prometheus' text format.

Two kinds of figures. Counts of what the swarm holds (nodes, tasks, services,
the Raft log's indexes, the transport's counters) are read when a scrape asks,
from the node's own copy of the store and its members: nothing is kept up to
date for a scraper that may never come. Durations and events that leave no
trace in the store (how long a write took to commit, a scheduler pass, a
control request's outcome, a silent node) are recorded by the actors as they
happen, through the methods below; prometheus_client's metric objects are
safe to update from any thread.

Every metric is listed, with its meaning, in docs/metrics.md.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from pyswarmkit.api.errors import Unavailable
from pyswarmkit.store.memory import MemoryStore
from pyswarmkit.transport.zmq_bus import split_hostport

log = logging.getLogger(__name__)

# Write commit latency: from a Transact reaching the store actor to its outcome.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
PASS_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
TASK_BUCKETS = (1, 10, 100, 1000, 10_000, 100_000)


class NodeView:
    """Where a scrape reads the node's state; each part may be absent (a
    worker has no store, a node without a transport no bus)."""

    def __init__(
        self,
        store: Callable[[], MemoryStore | None],
        raft: Callable[[], Any],
        transport: Callable[[], dict[str, int] | None],
        leading: Callable[[], bool],
    ) -> None:
        self.store = store
        self.raft = raft
        self.transport = transport
        self.leading = leading


class Metrics:
    def __init__(self, view: NodeView | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.commit_seconds = Histogram(
            "swarm_store_commit_seconds",
            "Time from a store write reaching the store actor to its outcome "
            "(committed through Raft and applied, or refused).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.write_failures = Counter(
            "swarm_store_write_failures",
            "Store writes refused or lost, by error code.",
            ["code"],
            registry=r,
        )
        self.scheduler_pass_seconds = Histogram(
            "swarm_scheduler_pass_seconds",
            "Time one scheduler pass took to decide.",
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.scheduler_pass_tasks = Histogram(
            "swarm_scheduler_pass_tasks",
            "Tasks placed (or marked unplaceable) by one scheduler pass.",
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.dispatcher_sessions = Gauge(
            "swarm_dispatcher_sessions",
            "Agent sessions the dispatcher holds (on the leader).",
            registry=r,
        )
        self.heartbeat_misses = Counter(
            "swarm_dispatcher_heartbeat_misses",
            "Sessions closed because their node stopped sending heartbeats.",
            registry=r,
        )
        self.control_requests = Counter(
            "swarm_control_requests",
            "Control API requests answered, by method and result code (ok or an error code).",
            ["method", "code"],
            registry=r,
        )
        if view is not None:
            r.register(_StateCollector(view))

    # --- what actors record --------------------------------------------------

    def committed(self, seconds: float, code: str | None) -> None:
        self.commit_seconds.observe(seconds)
        if code is not None:
            self.write_failures.labels(code).inc()

    def scheduler_pass(self, seconds: float, tasks: int) -> None:
        self.scheduler_pass_seconds.observe(seconds)
        self.scheduler_pass_tasks.observe(tasks)

    def control_request(self, method: str, code: str) -> None:
        self.control_requests.labels(method, code).inc()


class _StateCollector(Collector):
    """Counts read from the node at scrape time."""

    def __init__(self, view: NodeView) -> None:
        self.view = view

    def describe(self) -> list[Metric]:
        # Families vary with the node's role: described on each collect.
        return []

    def collect(self) -> Iterator[Metric]:
        view = self.view
        yield GaugeMetricFamily(
            "swarm_manager_leader", "1 on the manager that leads, else 0.", int(view.leading())
        )
        store = view.store()
        if store is not None:
            yield from _store_families(store)
        raft = view.raft()
        if raft is not None:
            yield from _raft_families(raft)
        stats = view.transport()
        if stats is not None:
            yield from _transport_families(stats)


def _store_families(store: MemoryStore) -> Iterator[Metric]:
    nodes = GaugeMetricFamily(
        "swarm_nodes",
        "Nodes by state, availability and role.",
        labels=["state", "availability", "role"],
    )
    tally: Tally[tuple[str, str, str]] = Tally(
        (n.status.state.name.lower(), n.spec.availability.name.lower(), n.role.name.lower())
        for n in store.nodes()
    )
    for key, count in sorted(tally.items()):
        nodes.add_metric(list(key), count)
    yield nodes
    tasks = GaugeMetricFamily(
        "swarm_tasks", "Tasks by current and desired state.", labels=["state", "desired_state"]
    )
    per_state: Tally[tuple[str, str]] = Tally(
        (t.status.state.name.lower(), t.desired_state.name.lower()) for t in store.tasks()
    )
    for task_key, n in sorted(per_state.items()):
        tasks.add_metric(list(task_key), n)
    yield tasks
    services = GaugeMetricFamily("swarm_services", "Services by mode.", labels=["mode"])
    modes: Tally[str] = Tally(s.spec.mode.kind for s in store.services())
    for mode, count in sorted(modes.items()):
        services.add_metric([mode], count)
    yield services
    yield GaugeMetricFamily("swarm_store_index", "The store's last applied index.", store.index)


def _raft_families(raft: Any) -> Iterator[Metric]:
    core = raft.core
    yield GaugeMetricFamily("swarm_raft_term", "The Raft member's current term.", core.term)
    yield GaugeMetricFamily(
        "swarm_raft_last_index",
        "The index of the last entry in this member's log.",
        core.log.last_index,
    )
    yield GaugeMetricFamily(
        "swarm_raft_commit_index",
        "The highest entry this member knows committed.",
        core.log.committed,
    )
    yield GaugeMetricFamily(
        "swarm_raft_applied_index",
        "The highest entry applied to this member's store.",
        core.applied_index,
    )
    yield GaugeMetricFamily(
        "swarm_raft_members", "Raft members (voters and learners).", len(raft.members())
    )


def _transport_families(stats: dict[str, int]) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "swarm_transport_events",
        "What the node-to-node transport did, by kind (see docs/metrics.md).",
        labels=["event"],
    )
    for event, count in sorted(stats.items()):
        if event != "pending_requests":
            family.add_metric([event], count)
    yield family
    yield GaugeMetricFamily(
        "swarm_transport_pending_requests",
        "Requests sent to other nodes and not yet answered.",
        stats.get("pending_requests", 0),
    )


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not worth a log line


class MetricsServer:
    """The HTTP endpoint: ``GET /metrics`` on HOST:PORT (prometheus_client's
    WSGI app and threading server, on a thread of its own); any other path
    is not found."""

    def __init__(self, hostport: str, metrics: Metrics) -> None:
        host, port = split_hostport(hostport)
        metrics_app = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") not in ("/metrics", "/metrics/"):
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"not found: the metrics are at /metrics\n"]
            return metrics_app(environ, start_response)

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            self._server = make_server(host, port, app, Server, handler_class=_Quiet)
        except OSError as exc:
            why = exc.strerror or exc
            raise Unavailable(f"cannot serve metrics on {hostport}: {why}") from None
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()
        log.info("metrics served on http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
