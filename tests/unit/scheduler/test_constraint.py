from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.states import NodeRole
from pyswarmkit.scheduler.constraint import (
    node_matches,
    parse_constraint,
    parse_constraints,
    parse_preferences,
    preference_value,
)
from tests.unit.scheduler.helpers import node

pytestmark = pytest.mark.unit


# --- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    ["", " ", "nodeabc", "node ~ abc", "node.labels.a=b", "node.labels.a<b"],
)
def test_missing_operator(expr: str) -> None:
    with pytest.raises(InvalidArgument, match="constraint expected one operator from ==, !="):
        parse_constraint(expr)


@pytest.mark.parametrize(
    ("expr", "key"),
    [
        ("1node==a2", "1node"),
        ("no de== node1", "no de"),
        ("no*de==node1", "no*de"),
        ("==node1", ""),
        ("no$de==node1", "no$de"),
        ("node.name==foo", "node.name"),  # well formed, but not a key Docker knows
        ("node.labels.==x", "node.labels."),  # a label key needs a name
        ("a!==b", "a!"),
    ],
)
def test_invalid_key(expr: str, key: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(f"key '{key}' is invalid")):
        parse_constraint(expr)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("node.hostname==", ""),
        ("node.hostname== ", ""),
        ("node.labels.a==b==c", "b==c"),
        ("node.labels.a==x&y", "x&y"),
        ("node.labels.a!=<b>", "<b>"),
        ("node.ip==10.0.0.300", "10.0.0.300"),
        ("node.ip==not-an-address", "not-an-address"),
    ],
)
def test_invalid_value(expr: str, value: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(f"value '{value}' is invalid")):
        parse_constraint(expr)


def test_error_names_the_constraint() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_constraints(["node.role==manager", "node.labels.zone=east"])
    assert "'node.labels.zone=east'" in str(err.value)


def test_whitespace_and_case_in_keys() -> None:
    c = parse_constraint("  NODE.Hostname ==  node1 ")
    assert (c.key, c.op, c.value, c.field) == ("NODE.Hostname", "==", "node1", "hostname")
    c = parse_constraint("Node.Labels.Zone != East 1")
    assert (c.field, c.label, c.op, c.value) == ("node_label", "Zone", "!=", "East 1")
    c = parse_constraint("engine.labels.storage==[a-b]+c*(n|b)/")
    assert (c.field, c.label, c.value) == ("engine_label", "storage", "[a-b]+c*(n|b)/")


def test_every_known_key_parses() -> None:
    keys = [
        "node.id",
        "node.hostname",
        "node.role",
        "node.platform.os",
        "node.platform.arch",
        "node.labels.x",
        "engine.labels.x",
    ]
    for key in keys:
        assert parse_constraint(f"{key}==v").key == key
    assert parse_constraint("node.ip==10.1.2.3").network is not None
    assert parse_constraint("node.ip!=10.1.0.0/16").network is not None
    assert parse_constraint("node.ip==2001:db8::/32").network is not None


_KEYS = st.sampled_from(
    ["node.id", "node.hostname", "node.role", "node.platform.os", "node.labels.zone"]
)
_VALUES = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)


@given(key=_KEYS, op=st.sampled_from(["==", "!="]), value=_VALUES)
def test_well_formed_constraints_round_trip(key: str, op: str, value: str) -> None:
    c = parse_constraint(f" {key} {op} {value} ")
    assert (c.key, c.op, c.value) == (key, op, value)
    assert parse_constraint(str(c)) == c


@given(st.text(max_size=40))
def test_parser_only_ever_raises_invalid_argument(expr: str) -> None:
    try:
        c = parse_constraint(expr)
    except InvalidArgument as err:
        assert str(err)
    else:
        assert c.op in expr


# --- matching ------------------------------------------------------------------


def _matches(expr: str, **node_args: object) -> bool:
    return node_matches(parse_constraints([expr]), node("n1", **node_args))  # type: ignore[arg-type]


def test_node_id_and_hostname() -> None:
    assert _matches("node.id==n1")
    assert _matches("node.id==N1")
    assert not _matches("node.id!=n1")
    assert _matches("node.hostname==Box-1", hostname="box-1")
    assert _matches("node.hostname!=box-2", hostname="box-1")


def test_role() -> None:
    assert _matches("node.role==worker")
    assert _matches("node.role==MANAGER", role=NodeRole.MANAGER)
    assert not _matches("node.role==manager")
    assert _matches("node.role!=manager")


def test_platform_keys() -> None:
    assert _matches("node.platform.os==Linux")
    assert _matches("node.platform.arch==amd64")
    assert not _matches("node.platform.arch==arm64")
    assert _matches("node.platform.os!=windows")


def test_labels_values_ignore_case_names_do_not() -> None:
    assert _matches("node.labels.zone==EAST", labels={"zone": "east"})
    assert not _matches("node.labels.Zone==east", labels={"zone": "east"})
    assert _matches("engine.labels.disk==SSD", engine_labels={"disk": "ssd"})
    assert not _matches("engine.labels.disk==ssd", labels={"disk": "ssd"})
    assert not _matches("node.labels.disk==ssd", engine_labels={"disk": "ssd"})


def test_missing_label_compares_as_empty() -> None:
    assert not _matches("node.labels.zone==east")
    assert _matches("node.labels.zone!=east")
    assert not _matches("engine.labels.zone==east")
    assert _matches("engine.labels.zone!=east")


def test_node_ip_address_and_cidr() -> None:
    assert _matches("node.ip==10.0.0.5", addr="10.0.0.5")
    assert not _matches("node.ip==10.0.0.6", addr="10.0.0.5")
    assert _matches("node.ip!=10.0.0.6", addr="10.0.0.5")
    assert _matches("node.ip==10.0.0.0/24", addr="10.0.0.5")
    assert _matches("node.ip==10.0.0.7/24", addr="10.0.0.5")
    assert not _matches("node.ip==10.0.1.0/24", addr="10.0.0.5")
    assert _matches("node.ip!=10.0.1.0/24", addr="10.0.0.5")
    assert _matches("node.ip==2001:db8::/32", addr="2001:db8::2")
    assert not _matches("node.ip==2001:db8::/32", addr="10.0.0.5")
    assert _matches("node.ip==10.0.0.5", addr="10.0.0.5:4242")


def test_node_without_address() -> None:
    assert not _matches("node.ip==10.0.0.5")
    assert _matches("node.ip!=10.0.0.5")


def test_constraints_are_anded() -> None:
    cs = parse_constraints(["node.labels.zone==east", "node.role==worker"])
    assert node_matches(cs, node("a", labels={"zone": "east"}))
    assert not node_matches(cs, node("b", labels={"zone": "east"}, role=NodeRole.MANAGER))
    assert not node_matches(cs, node("c", labels={"zone": "west"}))
    assert node_matches([], node("d"))


# --- preferences ---------------------------------------------------------------


def test_parse_preferences() -> None:
    assert parse_preferences(["spread=node.labels.zone", "SPREAD = engine.labels.rack"]) == (
        "node.labels.zone",
        "engine.labels.rack",
    )
    # The stored form (a bare label path) is accepted as well.
    assert parse_preferences(["node.labels.zone"]) == ("node.labels.zone",)


@pytest.mark.parametrize(
    ("pref", "message"),
    [
        ("binpack=node.labels.zone", "unsupported placement preference 'binpack'"),
        ("spread=node.hostname", "cannot spread over 'node.hostname'"),
        ("spread=node.labels.", "cannot spread over 'node.labels.'"),
        ("spread=", "cannot spread over ''"),
        ("zone", "must be of the form spread=node.labels.<name>"),
        ("", "must be of the form"),
    ],
)
def test_preference_errors(pref: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_preferences([pref])


def test_preference_value() -> None:
    n = node("a", labels={"zone": "east"}, engine_labels={"rack": "r1"})
    assert preference_value("node.labels.zone", n) == "east"
    assert preference_value("spread=node.labels.zone", n) == "east"
    assert preference_value("engine.labels.rack", n) == "r1"
    assert preference_value("node.labels.missing", n) == ""
    assert preference_value("node.hostname", n) is None
