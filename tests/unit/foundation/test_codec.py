"""The msgpack codec: every swarm object round-trips, enums stay enums, bad bytes fail cleanly."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import inspect
import types
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api import objects
from pyswarmkit.api.codec import CodecError, packb, unpackb
from pyswarmkit.api.objects import Node, Service, Task, TaskStatus
from pyswarmkit.api.states import TaskState

pytestmark = pytest.mark.unit

SETTINGS = settings(max_examples=100, deadline=None)
FEWER = settings(max_examples=50, deadline=None)

TEXT = st.text(max_size=6)
INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False)

OBJECT_CLASSES: list[type] = [
    cls
    for _, cls in inspect.getmembers(objects, inspect.isclass)
    if dataclasses.is_dataclass(cls) and cls.__module__ == objects.__name__
]


def _for_hint(hint: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
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
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
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


def instances(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls, vars(objects))
    return st.builds(cls, **{f.name: _for_hint(hints[f.name]) for f in dataclasses.fields(cls)})


def _enum_types(value: Any) -> list[tuple[str, type]]:
    """(path, exact type) of every enum-typed field, walking nested objects."""
    found: list[tuple[str, type]] = []

    def walk(obj: Any, path: str) -> None:
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
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
    back = unpackb(packb(obj))
    assert type(back) is cls
    assert back == obj
    assert _enum_types(back) == _enum_types(obj)


@FEWER
@given(task=instances(Task), service=instances(Service), node=instances(Node))
def test_objects_nested_in_plain_data_round_trip(task: Task, service: Service, node: Node) -> None:
    message = {"tasks": (task, task), "by_id": {task.id: service}, "deep": ({"n": (node,)},)}
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
    value = {"a": 1, "b": -2.5, "c": "text", "d": b"\x00\xff", "e": None, "f": True, 3: (1, 2)}
    assert unpackb(packb(value)) == value


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
        msgpack.ExtType(32, b"x"),  # a known code that carries data
    ],
    ids=["transport-range", "past-the-end", "with-payload"],
)
def test_an_unknown_ext_code_raises_codec_error(ext: msgpack.ExtType) -> None:
    data = msgpack.packb([ext, "id"], use_bin_type=True)
    with pytest.raises(CodecError):
        unpackb(data)


def test_an_object_with_the_wrong_number_of_fields_raises_codec_error() -> None:
    good = msgpack.unpackb(packb(Task(id="t")), raw=False, strict_map_key=False)
    tag = good[0]
    with pytest.raises(CodecError, match="Task"):
        unpackb(msgpack.packb([tag, *good[1:-1]], use_bin_type=True))
    with pytest.raises(CodecError, match="Task"):
        unpackb(msgpack.packb([tag, *good[1:], "extra"], use_bin_type=True))


def test_an_enum_value_out_of_range_raises_codec_error() -> None:
    fields = msgpack.unpackb(packb(TaskStatus()), raw=False)
    fields[2] = 12345  # the state field
    with pytest.raises(CodecError):
        unpackb(msgpack.packb(fields, use_bin_type=True))


def test_a_bare_class_tag_raises_codec_error() -> None:
    tag = msgpack.unpackb(packb(TaskStatus()), raw=False)[0]
    with pytest.raises(CodecError):
        unpackb(msgpack.packb(tag))


@pytest.mark.parametrize("where", ["array-item", "map-value"])
def test_a_nested_class_tag_raises_codec_error(where: str) -> None:
    tag = msgpack.unpackb(packb(TaskStatus()), raw=False)[0]
    value: Any = [1, tag] if where == "array-item" else {"a": tag}
    with pytest.raises(CodecError):
        unpackb(msgpack.packb(value))


def test_an_oversized_message_raises_codec_error_before_decoding() -> None:
    data = packb("x" * 100)
    assert unpackb(data, max_size=len(data)) == "x" * 100
    with pytest.raises(CodecError, match="exceeds"):
        unpackb(data, max_size=len(data) - 1)


def test_the_default_size_limit_is_64_mib() -> None:
    with pytest.raises(CodecError, match="exceeds"):
        unpackb(b"\xc0" * (64 * 1024 * 1024 + 1))
