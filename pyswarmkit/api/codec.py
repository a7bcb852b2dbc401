"""msgpack codec for the swarm's objects.

Every object dataclass travels as one msgpack array: a zero-length ext value
whose code names the class, then its fields in declaration order. Enum fields
travel as plain integers and are restored from the class's type hints. Plain
data (dicts, lists, str, bytes, numbers) travels as itself. One packer pass and
one unpacker pass handle any nesting, which keeps the codec off the profile.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import typing
from collections.abc import Callable
from typing import Any

import msgpack

from pyswarmkit.api import objects as o

# The order is the wire format: append new classes, never reorder.
_CLASSES: tuple[type, ...] = (
    o.Meta,
    o.Annotations,
    o.Resources,
    o.ResourceRequirements,
    o.PortConfig,
    o.Platform,
    o.Placement,
    o.RestartPolicy,
    o.UpdateConfig,
    o.ContainerSpec,
    o.TaskSpec,
    o.ContainerStatus,
    o.TaskStatus,
    o.Task,
    o.ServiceMode,
    o.ServiceSpec,
    o.UpdateStatus,
    o.Service,
    o.NodeSpec,
    o.EngineDescription,
    o.NodeDescription,
    o.NodeStatus,
    o.ManagerStatus,
    o.Node,
    o.OrchestrationConfig,
    o.DispatcherConfig,
    o.CAConfig,
    o.RaftConfig,
    o.ClusterSpec,
    o.JoinTokens,
    o.Cluster,
)

# Codes 0..31 are left for the transport's own types.
_FIRST_CODE = 32


class CodecError(ValueError):
    """Bytes that do not decode to a known message or object."""


class _Marker:
    """Decoded class tag; the list hook replaces the array it heads with the object."""

    __slots__ = ("codec",)

    def __init__(self, codec: _ClassCodec) -> None:
        self.codec = codec


class _ClassCodec:
    __slots__ = ("cls", "code", "enum_fields", "getter", "marker", "nfields", "tag")

    def __init__(self, cls: type, code: int) -> None:
        self.cls = cls
        self.code = code
        fields = dataclasses.fields(cls)
        names = [f.name for f in fields]
        self.nfields = len(names)
        self.tag = msgpack.ExtType(code, b"")
        self.marker = _Marker(self)
        self.getter: Callable[[Any], Any] = (
            operator.attrgetter(*names)
            if len(names) > 1
            else (lambda obj: (getattr(obj, names[0]),))
        )
        hints = typing.get_type_hints(cls, vars(o))
        self.enum_fields: tuple[tuple[int, type[enum.IntEnum]], ...] = tuple(
            (i, hints[name])
            for i, name in enumerate(names)
            if isinstance(hints[name], type) and issubclass(hints[name], enum.IntEnum)
        )


_BY_CLASS: dict[type, _ClassCodec] = {}
_BY_CODE: dict[int, _ClassCodec] = {}
for _i, _cls in enumerate(_CLASSES):
    _c = _ClassCodec(_cls, _FIRST_CODE + _i)
    _BY_CLASS[_cls] = _c
    _BY_CODE[_c.code] = _c


def _default(obj: Any) -> Any:
    c = _BY_CLASS.get(type(obj))
    if c is not None:
        return (c.tag, *c.getter(obj))
    if isinstance(obj, frozenset | set):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    c = _BY_CODE.get(code)
    if c is None or data:
        raise CodecError(f"unknown object code {code}")
    return c.marker


def _stray(values: Any) -> bool:
    return any(type(v) is _Marker for v in values)


def _list_hook(items: tuple[Any, ...]) -> Any:
    if not items or type(items[0]) is not _Marker:
        if _stray(items):
            raise CodecError("malformed message: a class tag inside plain data")
        return items
    c = items[0].codec
    if _stray(items[1:]):
        raise CodecError(f"{c.cls.__name__}: a class tag where a field belongs")
    if len(items) != c.nfields + 1:
        raise CodecError(f"{c.cls.__name__}: expected {c.nfields} fields, got {len(items) - 1}")
    if c.enum_fields:
        values = list(items[1:])
        for i, enum_cls in c.enum_fields:
            values[i] = enum_cls(values[i])
        return c.cls(*values)
    return c.cls(*items[1:])


def _map_hook(items: dict[Any, Any]) -> Any:
    if _stray(items) or _stray(items.values()):
        raise CodecError("malformed message: a class tag inside a map")
    return items


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, default=_default, use_bin_type=True)
    return data


def packb(obj: Any) -> bytes:
    """Encode plain data and swarm objects, nested in any way."""
    return _pack(obj)


def unpackb(data: bytes, max_size: int = 64 * 1024 * 1024) -> Any:
    """Decode what ``packb`` made. Raises CodecError on anything else."""
    if len(data) > max_size:
        raise CodecError(f"message of {len(data)} bytes exceeds the {max_size}-byte limit")
    try:
        obj = msgpack.unpackb(
            data,
            ext_hook=_ext_hook,
            list_hook=_list_hook,
            object_hook=_map_hook,
            use_list=False,
            strict_map_key=False,
            raw=False,
        )
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"malformed message: {exc}") from exc
    if type(obj) is _Marker:
        raise CodecError("malformed message: a bare class tag")
    return obj
