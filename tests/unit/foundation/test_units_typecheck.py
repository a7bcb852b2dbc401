"""Parsing what users type (sizes, CPUs, durations, ports, labels) and checking
the types of decoded request objects."""

from __future__ import annotations

from typing import Any

import pytest

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import (
    Annotations,
    ContainerSpec,
    Node,
    NodeSpec,
    Resources,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
    replace,
)
from pyswarmkit.api.states import NodeAvailability
from pyswarmkit.api.typecheck import check
from pyswarmkit.control import units
from pyswarmkit.control.validate import validate_service_spec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 << 20),
        ("1g", 1 << 30),
        ("1GiB", 1 << 30),
        ("1048576", 1 << 20),
        ("1.5k", 1536),
        ("100T", 100 << 40),
    ],
)
def test_memory_sizes(text: str, expected: int) -> None:
    assert units.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "", "-1G", "1X", "G"])
def test_bad_memory_sizes(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid memory"):
        units.parse_memory(text)


def test_cpus() -> None:
    assert units.parse_cpus("0.5") == 500_000_000
    assert units.parse_cpus("2") == 2_000_000_000
    with pytest.raises(InvalidArgument, match="must not be negative"):
        units.parse_cpus("-1")
    with pytest.raises(InvalidArgument, match="use a number"):
        units.parse_cpus("two")
    with pytest.raises(InvalidArgument):
        units.parse_cpus("nan")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("2", 2.0),
        ("0s", 0.0),
        ("1.5s", 1.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "10", "s", "1m 30s", "-5s", "5x", ""])
def test_bad_durations(text: str) -> None:
    if text == "10":
        assert units.parse_duration(text) == 10.0  # a bare number is seconds
        return
    with pytest.raises(InvalidArgument):
        units.parse_duration(text, "--restart-delay")


def test_ports() -> None:
    p = units.parse_port("8080:80")
    assert (p.published_port, p.target_port, p.protocol, p.publish_mode) == (
        8080,
        80,
        "tcp",
        "host",
    )
    assert units.parse_port("53:53/udp").protocol == "udp"
    for bad in ("80", "0:80", "70000:80", "a:b", "80:80/icmp"):
        with pytest.raises(InvalidArgument, match="invalid port"):
            units.parse_port(bad)


def test_labels_and_generic_resources() -> None:
    assert units.parse_label("zone=a") == ("zone", "a")
    assert units.parse_label("flag") == ("flag", "")
    assert units.parse_label("k=v=w") == ("k", "v=w")
    with pytest.raises(InvalidArgument):
        units.parse_label("=v")
    assert units.parse_generic("gpu=2,fpga=1,gpu=1") == {"gpu": 3, "fpga": 1}
    assert units.parse_generic("") == {}
    with pytest.raises(InvalidArgument, match="NAME=COUNT"):
        units.parse_generic("gpu=two")


def test_typecheck_accepts_what_the_classes_declare() -> None:
    check(ServiceSpec())
    check(Node(id="n", spec=NodeSpec(availability=NodeAvailability.DRAIN)))
    check(Resources(nano_cpus=1, memory_bytes=2, generic={"gpu": 1}))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ServiceSpec(mode=ServiceMode(replicas="3")), "spec.mode.replicas must be int"),  # type: ignore[arg-type]
        (ServiceSpec(mode=ServiceMode(replicas=True)), "spec.mode.replicas must be int"),
        (ServiceSpec(mode=ServiceMode(kind="weird")), "spec.mode.kind must be one of"),  # type: ignore[arg-type]
        (
            ServiceSpec(task=TaskSpec(container=ContainerSpec(command=("a", 5)))),  # type: ignore[arg-type]
            "spec.task.container.command[1] must be str",
        ),
        (
            ServiceSpec(task=TaskSpec(container=ContainerSpec(labels={"k": 1}))),  # type: ignore[dict-item]
            "spec.task.container.labels value must be str, not int",
        ),
        (ServiceSpec(task="x"), "spec.task must be TaskSpec"),  # type: ignore[arg-type]
    ],
)
def test_typecheck_names_the_wrong_field(spec: ServiceSpec, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check(spec, "spec")
    assert message in str(info.value)


def test_typecheck_takes_ints_for_floats_and_enums_by_their_values() -> None:
    assert check(ContainerSpec(stop_grace_period=10)).stop_grace_period == 10.0
    # On the wire an enum is its number: a known one reads as the enum, another is refused.
    assert check(replace(NodeSpec(), availability=2)).availability is NodeAvailability.DRAIN
    with pytest.raises(InvalidArgument, match="availability must be one of active, pause, drain"):
        check(replace(NodeSpec(), availability=7), "spec")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "finite number"),
        (float("inf"), "finite number"),
        (1e300, "finite number"),
    ],
)
def test_typecheck_refuses_non_finite_durations(value: float, message: str) -> None:
    spec = ServiceSpec(task=TaskSpec(container=ContainerSpec(stop_grace_period=value)))
    with pytest.raises(InvalidArgument, match=message):
        check(spec, "spec")


@pytest.mark.parametrize("where", ["command", "args", "env", "dir", "user", "image", "labels"])
def test_a_spec_is_refused_with_nul_in_what_reaches_the_os(where: str) -> None:
    values: dict[str, Any] = {"command": ("sleep",), "args": ("10",)}
    if where == "labels":
        values["labels"] = {"k": "v\0"}
    elif where in ("command", "args", "env"):
        values[where] = ("A=\0",)
    else:
        values[where] = "x\0y"
    spec = ServiceSpec(
        annotations=Annotations(name="web"), task=TaskSpec(container=ContainerSpec(**values))
    )
    with pytest.raises(InvalidArgument, match=f"container.{where} must not contain a NUL"):
        validate_service_spec(spec)


def test_typecheck_refuses_huge_integers() -> None:
    huge = ServiceSpec(mode=ServiceMode(replicas=2**64))
    with pytest.raises(InvalidArgument, match="fit in 64 bits"):
        check(huge, "spec")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0, 0.001, 1e9, True, "5"])
def test_a_heartbeat_period_nodes_cannot_keep_is_refused(value: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"--heartbeat-period must be between 0.1 and 3600"):
        units.check_heartbeat_period(value, "--heartbeat-period")


def test_a_workable_heartbeat_period_is_taken() -> None:
    assert units.check_heartbeat_period(5) == 5.0
    assert units.check_heartbeat_period(0.1) == 0.1
