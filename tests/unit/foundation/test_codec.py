"""The codec: every swarm object round-trips, typed decoding checks every field,
formats grow at the end, bad bytes fail cleanly as CodecError."""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import types
import typing
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api import objects
from pyswarmkit.api.codec import CodecError, check, decode, encode, packb, unpackb
from pyswarmkit.api.objects import (
    FLOAT_LIMIT,
    INT64_MAX,
    INT64_MIN,
    ContainerSpec,
    Node,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
)
from pyswarmkit.api.states import TaskState

pytestmark = pytest.mark.unit

SETTINGS = settings(max_examples=100, deadline=None)
FEWER = settings(max_examples=50, deadline=None)

TEXT = st.text(max_size=6)
NO_NUL = st.text(
    alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=6
)
INTS = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
FLOATS = st.floats(min_value=-FLOAT_LIMIT, max_value=FLOAT_LIMIT)

OBJECT_CLASSES: list[type] = [
    cls
    for _, cls in inspect.getmembers(objects, inspect.isclass)
    if issubclass(cls, objects.Object)
    and cls is not objects.Object
    and cls.__module__ == objects.__name__
]


def _for_hint(hint: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        if args[0] is str:
            return NO_NUL
        return _for_hint(args[0])
    if hint is str:
        return TEXT
    if hint is bool:
        return st.booleans()
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if hint is int:
        return INTS
    if hint is float:
        return FLOATS
    if hint is bytes:
        return st.binary(max_size=40)
    if isinstance(hint, type) and issubclass(hint, objects.Object):
        # Nested objects are often left at their defaults, which keeps examples small.
        return st.one_of(st.builds(hint), instances(hint))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_for_hint(a) for a in args])
    if hint is type(None):
        return st.none()
    if origin is dict:
        return st.dictionaries(_for_hint(args[0]), _for_hint(args[1]), max_size=2)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(_for_hint(args[0]), max_size=2).map(tuple)
    raise AssertionError(f"no strategy for {hint!r}")


@functools.cache
def instances(cls: type) -> st.SearchStrategy[Any]:
    # Built once per class: a strategy built afresh for every example fills
    # hypothesis's strategy cache, whose upkeep then dominates a long test run.
    hints = typing.get_type_hints(cls, vars(objects), include_extras=True)
    return st.builds(cls, **{f.name: _for_hint(hints[f.name]) for f in msgspec.structs.fields(cls)})


def _enum_types(value: Any) -> list[tuple[str, type]]:
    """(path, exact type) of every enum-typed field, walking nested objects."""
    found: list[tuple[str, type]] = []

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, objects.Object):
            for f in msgspec.structs.fields(obj):
                walk(getattr(obj, f.name), f"{path}.{f.name}")
        elif isinstance(obj, enum.Enum):
            found.append((path, type(obj)))
        elif isinstance(obj, tuple):
            for i, item in enumerate(obj):
                walk(item, f"{path}[{i}]")

    walk(value, "")
    return found


def test_the_object_module_has_the_four_store_kinds() -> None:
    names = {cls.__name__ for cls in OBJECT_CLASSES}
    assert {"Node", "Service", "Task", "Cluster", "TaskSpec", "ServiceSpec"} <= names


@pytest.mark.parametrize("cls", OBJECT_CLASSES, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_every_object_round_trips(cls: type, data: st.DataObject) -> None:
    obj = data.draw(instances(cls))
    for back in (unpackb(packb(obj)), decode(encode(obj), cls)):
        assert type(back) is cls
        assert back == obj
        assert _enum_types(back) == _enum_types(obj)


@FEWER
@given(task=instances(Task), service=instances(Service), node=instances(Node))
def test_objects_nested_in_plain_data_round_trip(task: Task, service: Service, node: Node) -> None:
    message = {"tasks": [task, task], "by_id": {task.id: service}, "deep": [{"n": [node]}]}
    assert unpackb(packb(message)) == message


@SETTINGS
@given(task=instances(Task))
def test_enum_fields_come_back_as_their_enum_types(task: Task) -> None:
    back = unpackb(packb({"t": [task]}))["t"][0]
    assert type(back.status.state) is TaskState
    assert type(back.desired_state) is TaskState
    assert back.status.state.name == task.status.state.name


def test_lists_come_back_as_sequences_with_the_same_items() -> None:
    status = TaskStatus(state=TaskState.RUNNING)
    back = unpackb(packb({"updates": [["t1", status], ["t2", status]]}))
    assert [list(u) for u in back["updates"]] == [["t1", status], ["t2", status]]


def test_plain_values_travel_as_themselves() -> None:
    value = {"a": 1, "b": -2.5, "c": "text", "d": b"\x00\xff", "e": None, "f": True, 3: [1, 2]}
    assert unpackb(packb(value)) == value
    # Tuples travel as arrays and come back as lists, as with any MessagePack reader.
    assert unpackb(packb((1, "a"))) == [1, "a"]


def test_an_unknown_python_type_is_refused_on_encode() -> None:
    class Unknown:
        pass

    with pytest.raises(TypeError):
        packb({"x": Unknown()})


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_garbage_bytes_decode_or_raise_codec_error_only(data: bytes) -> None:
    # Many byte strings are valid msgpack; the rest must fail as CodecError, nothing else.
    with contextlib.suppress(CodecError):
        unpackb(data)


@FEWER
@given(task=instances(Task))
def test_every_truncation_of_a_message_raises_codec_error(task: Task) -> None:
    data = packb({"task": task})
    for end in range(len(data)):
        with pytest.raises(CodecError):
            unpackb(data[:end])


def test_trailing_bytes_after_a_message_raise_codec_error() -> None:
    with pytest.raises(CodecError):
        unpackb(packb(Task(id="t")) + b"\x00")


@pytest.mark.parametrize(
    "ext",
    [
        msgpack.ExtType(5, b""),  # below the object codes
        msgpack.ExtType(120, b""),  # past the last known class
        msgpack.ExtType(32, b"x"),  # a known code whose payload is not its object
    ],
    ids=["transport-range", "past-the-end", "bad-payload"],
)
def test_an_unknown_or_broken_ext_value_raises_codec_error(ext: msgpack.ExtType) -> None:
    data = msgpack.packb([ext, "id"], use_bin_type=True)
    with pytest.raises(CodecError):
        unpackb(data)


# --- the format rule: fields are appended with defaults, never reordered ----


class _OlderStatus(msgspec.Struct, array_like=True):
    """TaskStatus as a reader one release older would know it: one field fewer."""

    timestamp: float = 0.0
    state: TaskState = TaskState.NEW
    message: str = ""
    err: str = ""


class _NewerStatus(msgspec.Struct, array_like=True):
    """TaskStatus as a newer peer might send it: one field more, at the end."""

    timestamp: float = 0.0
    state: TaskState = TaskState.NEW
    message: str = ""
    err: str = ""
    container: objects.ContainerStatus = objects.ContainerStatus()
    retries: int = 0


def test_a_missing_trailing_field_is_filled_with_its_default() -> None:
    old = _OlderStatus(1.5, TaskState.RUNNING, "started", "")
    back = decode(msgspec.msgpack.encode(old), TaskStatus)
    assert back == TaskStatus(1.5, TaskState.RUNNING, "started", "", objects.ContainerStatus())


def test_an_unknown_trailing_field_from_a_newer_peer_is_ignored() -> None:
    new = _NewerStatus(2.0, TaskState.FAILED, "failed", "boom", objects.ContainerStatus(7, 1), 3)
    back = decode(msgspec.msgpack.encode(new), TaskStatus)
    container = objects.ContainerStatus(7, 1)
    assert back == TaskStatus(2.0, TaskState.FAILED, "failed", "boom", container)
    # The same holds for objects inside plain data.
    assert unpackb(packb({"s": back})) == {"s": back}


def test_a_task_written_before_a_field_was_appended_still_reads() -> None:
    fields = msgpack.unpackb(encode(Task(id="t", slot=3)), raw=False)
    assert decode(msgpack.packb(fields[:-1], use_bin_type=True), Task) == Task(id="t", slot=3)
    assert decode(msgpack.packb([*fields, "later"], use_bin_type=True), Task) == Task(
        id="t", slot=3
    )


def test_a_required_field_missing_raises_codec_error() -> None:
    with pytest.raises(CodecError, match="field Task lacks required fields"):
        decode(msgpack.packb([], use_bin_type=True), Task)


# --- typed decoding checks every field --------------------------------------


def test_an_enum_value_out_of_range_raises_codec_error() -> None:
    fields = msgpack.unpackb(encode(TaskStatus()), raw=False)
    fields[1] = 12345  # the state field
    with pytest.raises(CodecError, match=r"field TaskStatus.state must be one of new, pending"):
        decode(msgpack.packb(fields, use_bin_type=True), TaskStatus)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ServiceSpec(mode=ServiceMode(replicas="3")), "spec.mode.replicas must be int, not str"),  # type: ignore[arg-type]
        (ServiceSpec(mode=ServiceMode(replicas=True)), "spec.mode.replicas must be int, not bool"),
        (ServiceSpec(mode=ServiceMode(replicas=2**63)), "spec.mode.replicas must fit in 64 bits"),
        (ServiceSpec(mode=ServiceMode(kind="weird")), "spec.mode.kind must be one of"),  # type: ignore[arg-type]
        (
            ServiceSpec(task=TaskSpec(container=ContainerSpec(command=("a", 5)))),  # type: ignore[arg-type]
            "spec.task.container.command[1] must be str, not int",
        ),
        (
            ServiceSpec(task=TaskSpec(container=ContainerSpec(stop_grace_period=float("nan")))),
            "spec.task.container.stop_grace_period must be a finite number",
        ),
        (
            ServiceSpec(task=TaskSpec(container=ContainerSpec(stop_grace_period=float("inf")))),
            "stop_grace_period must be a finite number",
        ),
        (ServiceSpec(task="x"), "spec.task must be TaskSpec, not str"),  # type: ignore[arg-type]
    ],
)
def test_decoding_refuses_a_wrong_field_and_names_it(spec: ServiceSpec, message: str) -> None:
    with pytest.raises(CodecError) as info:
        check(spec, "spec")
    assert message in str(info.value)
    # What a peer sends is refused the same way where it is decoded.
    with pytest.raises(CodecError) as info:
        unpackb(packb({"spec": spec}))
    assert message.split(" ", 1)[1] in str(info.value)


def test_check_returns_the_object_as_a_reader_gets_it() -> None:
    spec = ServiceSpec(mode=ServiceMode(replicas=3))
    assert check(spec) == spec
    assert check(ContainerSpec(stop_grace_period=10)).stop_grace_period == 10.0


def test_an_oversized_message_raises_codec_error_before_decoding() -> None:
    data = packb("x" * 100)
    assert unpackb(data, max_size=len(data)) == "x" * 100
    with pytest.raises(CodecError, match="exceeds"):
        unpackb(data, max_size=len(data) - 1)


def test_the_default_size_limit_is_64_mib() -> None:
    with pytest.raises(CodecError, match="exceeds"):
        unpackb(b"\xc0" * (64 * 1024 * 1024 + 1))
