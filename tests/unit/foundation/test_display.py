"""How swarmctl prints: tables, human times, Go durations, manager status."""

from __future__ import annotations

import pytest

from pyswarmkit.api.objects import ContainerStatus, ManagerStatus, Node, Task, TaskStatus
from pyswarmkit.api.states import NodeRole, Reachability, TaskState
from pyswarmkit.display import (
    PagedTable,
    ago,
    duration,
    exit_code,
    human_duration,
    last_state,
    manager_status,
    size,
    table,
    task_name,
)

pytestmark = pytest.mark.unit

HOUR = 3600
DAY = 24 * HOUR


def test_table_aligns_columns_under_a_dashed_rule() -> None:
    out = table(["ID", "NAME", "REPLICAS"], [["abc", "web", "3/3"], ["d", "a-long-name", "0/1"]])
    assert out.splitlines() == [
        "ID   NAME         REPLICAS",
        "--   ----         --------",
        "abc  web          3/3",
        "d    a-long-name  0/1",
    ]


def test_table_lines_carry_no_trailing_spaces() -> None:
    out = table(["A", "B"], [["x", ""], ["longer", "y"]])
    assert all(line == line.rstrip() for line in out.splitlines())
    assert out.splitlines()[2] == "x"


def test_table_with_no_rows_is_the_header_and_rule() -> None:
    assert table(["ID", "NAME"], []) == "ID  NAME\n--  ----"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.999, "Less than a second"),
        (1, "1 second"),
        (1.9, "1 second"),
        (2, "2 seconds"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (HOUR - 1, "59 minutes"),
        (HOUR, "About an hour"),
        (1.5 * HOUR - 1, "About an hour"),
        (1.5 * HOUR, "2 hours"),
        (47 * HOUR, "47 hours"),
        (48 * HOUR, "2 days"),
        (13 * DAY, "13 days"),
        (14 * DAY, "2 weeks"),
        (59 * DAY, "8 weeks"),
        (60 * DAY, "2 months"),
        (729 * DAY, "24 months"),
        (730 * DAY, "2 years"),
        (3650 * DAY, "10 years"),
    ],
)
def test_human_duration_wording(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_duration_rounds_half_hours_up_as_docker() -> None:
    assert human_duration(2.5 * HOUR) == "3 hours"


def test_ago() -> None:
    assert ago(100.0, 130.0) == "30 seconds ago"
    assert ago(100.0, 90.0) == "Less than a second ago"
    assert ago(0.0, 130.0) == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (90 * DAY, "2160h0m0s"),
        (5, "5s"),
        (0, "0s"),
        (60, "1m0s"),
        (90, "1m30s"),
        (HOUR, "1h0m0s"),
        (HOUR + 61, "1h1m1s"),
        (1.5, "1.5s"),
    ],
)
def test_duration_in_go_spelling(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(90.5, "1m30.5s"), (0.5, "500ms")])
def test_fractional_durations_in_go_spelling(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def _manager(leader: bool, reach: Reachability) -> Node:
    status = ManagerStatus(leader=leader, reachability=reach)
    return Node(id="n", role=NodeRole.MANAGER, manager_status=status)


def test_manager_status() -> None:
    assert manager_status(_manager(True, Reachability.REACHABLE)) == "REACHABLE *"
    assert manager_status(_manager(False, Reachability.REACHABLE)) == "REACHABLE"
    assert manager_status(_manager(False, Reachability.UNREACHABLE)) == "UNREACHABLE"
    assert manager_status(_manager(False, Reachability.UNKNOWN)) == "UNKNOWN"
    assert manager_status(Node(id="w")) == ""
    assert manager_status(Node(id="m", role=NodeRole.MANAGER)) == ""


def test_task_name_and_last_state() -> None:
    t = Task(
        id="t",
        service_name="web",
        slot=2,
        status=TaskStatus(timestamp=100.0, state=TaskState.RUNNING),
    )
    assert task_name(t) == "web.2"
    assert task_name(Task(id="t", service_name="web")) == "web"
    assert last_state(t, 400.0) == "RUNNING 5 minutes ago"
    assert last_state(Task(id="t"), 400.0) == "NEW"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (512 * 1024**2, "512MiB"),
        (1536 * 1024**2, "1.5GiB"),
        (3 * 1024**4, "3TiB"),
    ],
)
def test_size_in_binary_units(n: int, text: str) -> None:
    assert size(n) == text


def test_paged_table_prints_headers_once_and_keeps_first_page_widths() -> None:
    table = PagedTable(["ID", "Name"])
    assert table.page([["a1", "web"], ["a2", "database"]]) == [
        "ID  Name",
        "--  ----",
        "a1  web",
        "a2  database",
    ]
    assert table.page([["a3", "x"]]) == ["a3  x"]
    # A wider cell later pushes its own row only.
    assert table.page([["a-long-id", "y"]]) == ["a-long-id  y"]
    assert PagedTable(["ID", "Name"]).page([]) == ["ID  Name", "--  ----"]


def test_exit_code_only_when_a_process_exited() -> None:
    never_started = Task(id="t", status=TaskStatus(state=TaskState.REJECTED, err="no command"))
    assert exit_code(never_started) == ""
    exited = Task(
        id="t",
        status=TaskStatus(state=TaskState.FAILED, container=ContainerStatus(pid=42, exit_code=7)),
    )
    assert exit_code(exited) == "7"
    clean = Task(
        id="t",
        status=TaskStatus(state=TaskState.COMPLETE, container=ContainerStatus(pid=42, exit_code=0)),
    )
    assert exit_code(clean) == "0"
    still_running = Task(
        id="t", status=TaskStatus(state=TaskState.RUNNING, container=ContainerStatus(pid=42))
    )
    assert exit_code(still_running) == ""


def test_json_output_has_every_field_with_states_by_name() -> None:
    import json

    from pyswarmkit.api.objects import ManagerStatus, Node, NodeCertificate
    from pyswarmkit.api.states import NodeRole, Reachability
    from pyswarmkit.display import as_json

    node = Node(
        id="n1",
        role=NodeRole.MANAGER,
        manager_status=ManagerStatus(7, "10.0.0.1:4242", True, Reachability.REACHABLE),
        certificate=NodeCertificate(curve_key=b"\x01\x02", pem=b"-----BEGIN CERTIFICATE-----\n"),
    )
    [doc] = json.loads(as_json([node]))
    assert doc["id"] == "n1" and doc["role"] == "manager"
    assert doc["manager_status"] == {
        "raft_id": 7,
        "addr": "10.0.0.1:4242",
        "leader": True,
        "reachability": "reachable",
    }
    assert doc["certificate"]["curve_key"] == "0102"
    assert doc["certificate"]["pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert set(doc) == set(Node.__struct_fields__)
