"""How `swarmctl events` reads its flags and prints the rows it is sent."""

from __future__ import annotations

import calendar
import json

import pytest

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.control.eventlines import json_line, line, parse_filters, parse_since, stamp

T0 = calendar.timegm((2026, 11, 29, 10, 0, 1, 0, 0, 0)) + 0.25


def test_filters_name_kinds_and_nothing_else() -> None:
    assert parse_filters([]) is None
    assert parse_filters(["type=service", "type=task"]) == {"service", "task"}
    for bad in ("service", "kind=service", "type=servce"):
        with pytest.raises(InvalidArgument, match="--filter"):
            parse_filters([bad])


def test_since_is_a_duration_back_or_a_utc_time() -> None:
    assert parse_since("10m", now=T0) == T0 - 600
    assert parse_since("2026-11-29T10:00:01Z", now=0.0) == T0 - 0.25
    assert parse_since("2026-11-29T10:00:01.25Z", now=0.0) == T0
    for bad in ("yesterday", "2026-13-29T10:00:01Z", "2026-11-29T10:00:01.x5Z", "-5m"):
        with pytest.raises(InvalidArgument, match="--since"):
            parse_since(bad, now=T0)


def test_a_row_becomes_one_line_with_names() -> None:
    names = {"s1": "web", "n1": "node-1"}
    task = [7, T0, "update", "task", "t1", "RUNNING", "RUNNING", "n1", "s1"]
    assert line(task, names) == (
        "2026-11-29T10:00:01.250Z task update t1 state=running desired=running "
        "service=web node=node-1"
    )
    service = [8, T0, "create", "service", "s1", "", "", "", ""]
    assert line(service, names) == "2026-11-29T10:00:01.250Z service create web"
    gone = [9, T0, "delete", "service", "s2", "", "", "", ""]
    assert line(gone, names).endswith("service delete s2")
    doc = json.loads(json_line(task, names))
    assert doc["time"] == "2026-11-29T10:00:01.250Z"
    assert (doc["kind"], doc["op"], doc["service"], doc["node"]) == (
        "task",
        "update",
        "web",
        "node-1",
    )
    assert doc["index"] == 7


def test_stamps_round_to_the_millisecond() -> None:
    assert stamp(T0 - 0.25 + 0.9996) == "2026-11-29T10:00:02.000Z"
