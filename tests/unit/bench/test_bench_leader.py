"""The bench's agents report to the first manager only: once it stops
leading, the bench says so at once instead of waiting out its timeout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyswarmkit import clock
from pyswarmkit.api.errors import Unavailable
from pyswarmkit.bench import run
from pyswarmkit.bench.spec import parse_data

pytestmark = pytest.mark.unit


class _Proc:
    pid = 4242

    def poll(self) -> None:
        return None


def bench(tmp_path: Path) -> run.Bench:
    spec = parse_data(
        {"managers": 3, "election_tick": 30, "agents": {"count": 2}, "service": [{"name": "w"}]},
        "bench.toml",
    )
    b = run.Bench(spec, tmp_path)
    b.managers[0].child = run._Child("manager-1", _Proc(), None)  # type: ignore[arg-type]
    b._led = True
    return b


def test_managers_are_named_and_given_their_own_ports(tmp_path: Path) -> None:
    b = bench(tmp_path)
    assert [m.entry.hostname for m in b.managers] == [
        "bench-manager-1",
        "bench-manager-2",
        "bench-manager-3",
    ]
    ports = {m.listen for m in b.managers} | {m.metrics for m in b.managers}
    assert len(ports) == 6


def test_a_first_manager_that_lost_the_lead_stops_the_bench(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scraped: list[str] = []
    leading = {"swarm_manager_leader": 1.0}

    def scrape(addr: str) -> dict[str, Any]:
        scraped.append(addr)
        return dict(leading)

    monkeypatch.setattr(run, "scrape", scrape)
    now = [1000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    b = bench(tmp_path)
    b._check()
    assert scraped == [b.managers[0].metrics]
    leading["swarm_manager_leader"] = 0.0
    # Asked at most every LEADER_CHECK seconds: a metrics page of a big swarm costs the leader.
    now[0] += run.LEADER_CHECK / 2
    b._check()
    assert len(scraped) == 1
    now[0] += run.LEADER_CHECK
    with pytest.raises(Unavailable, match=r"bench-manager-1 lost the lead .*30 ticks"):
        b._check()


def test_a_first_manager_not_yet_seen_leading_is_not_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While the swarm starts, the first manager may serve metrics before it leads.
    def scrape(addr: str) -> dict[str, Any]:
        return {"swarm_manager_leader": 0.0}

    monkeypatch.setattr(run, "scrape", scrape)
    b = bench(tmp_path)
    b._led = False
    b._check()


def test_a_manager_too_busy_to_answer_is_not_a_lost_lead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def scrape(addr: str) -> dict[str, Any]:
        raise Unavailable("the metrics did not answer")

    monkeypatch.setattr(run, "scrape", scrape)
    bench(tmp_path)._check()
