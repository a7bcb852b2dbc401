"""Running the filters over nodes, and explaining why none passed.

A node fails at the first filter it does not pass. The explanation counts the
failures per filter, most frequent first (ties in filter order), joined with
``; `` — as Docker shows it: ``no suitable node (scheduling constraints not
satisfied on 3 nodes; 1 node not available for new tasks)``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarmkit.scheduler.filters import FILTERS, Filter, Requirements
from pyswarmkit.scheduler.nodeinfo import NodeInfo

NO_SUITABLE_NODE = "no suitable node"


class Pipeline:
    """The filters that apply to one group's requirements."""

    __slots__ = ("filters", "req")

    def __init__(self, req: Requirements) -> None:
        self.req = req
        self.filters: tuple[Filter, ...] = tuple(f for f in FILTERS if f.applies(req))

    def first_failure(self, info: NodeInfo) -> Filter | None:
        """The first filter the node fails, or None if it passes them all."""
        req = self.req
        for f in self.filters:
            if not f.check(req, info):
                return f
        return None

    def passes(self, info: NodeInfo) -> bool:
        return self.first_failure(info) is None

    def failures(self, infos: Iterable[NodeInfo]) -> dict[Filter, int]:
        counts: dict[Filter, int] = {}
        for info in infos:
            f = self.first_failure(info)
            if f is not None:
                counts[f] = counts.get(f, 0) + 1
        return counts

    def explain(self, infos: Iterable[NodeInfo]) -> str:
        """Why the nodes fail, e.g. ``insufficient resources on 2 nodes``; "" if none fails."""
        return explain_failures(self.failures(infos))


def explain_failures(counts: dict[Filter, int]) -> str:
    order = {f: i for i, f in enumerate(FILTERS)}
    ranked = sorted(counts.items(), key=lambda item: (-item[1], order.get(item[0], len(order))))
    return "; ".join(f.explain(n) for f, n in ranked if n > 0)


def no_suitable_node(explanation: str) -> str:
    """The message of a task no node can take."""
    return f"{NO_SUITABLE_NODE} ({explanation})" if explanation else NO_SUITABLE_NODE
