"""MessagePack for the swarm's objects, through msgspec.

Two ways in and out:

- ``encode(obj)`` / ``decode(data, cls)``: typed. The reader names the class it
  expects, and decoding checks every field's type as it goes (the types in
  api/objects.py carry the limits), so there is no separate checking pass. This
  is the hot path: Raft entries, snapshots, and messages between nodes.
- ``packb(value)`` / ``unpackb(data)``: plain data (maps, lists, strings,
  numbers) with objects anywhere inside, for requests whose shape varies (the
  control API). Each object travels as an ext value whose code names its class
  and whose payload is its typed encoding, so it is decoded and checked by the
  same typed decoder.

A decoding failure is a ``CodecError`` whose message names the field, e.g.
``field task.container.command[1] must be str, not int``.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, TypeVar

import msgspec

from pyswarmkit.api import objects as o

T = TypeVar("T")

# The order is the wire format: append new classes, never reorder.
_CLASSES: tuple[type[o.Object], ...] = (
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
    o.RaftMember,
    o.NodeCertificate,
    o.RootCA,
    o.CurveKeyPair,
    o.Mount,
    o.HealthConfig,
    o.SecretReference,
    o.ConfigReference,
    o.SecretSpec,
    o.Secret,
    o.ConfigSpec,
    o.Config,
)

# Codes 0..31 are left for the transport's own types.
_FIRST_CODE = 32
_CODE_OF: dict[type, int] = {cls: _FIRST_CODE + i for i, cls in enumerate(_CLASSES)}
_CLASS_OF: dict[int, type[o.Object]] = {code: cls for cls, code in _CODE_OF.items()}

DEFAULT_MAX_SIZE = 64 * 1024 * 1024

_encoder = msgspec.msgpack.Encoder()


class CodecError(ValueError):
    """Bytes that do not decode to a known message or object."""


# --- typed ---------------------------------------------------------------


def encode(value: Any) -> bytes:
    """Encode an object, or plain data holding objects whose class the reader knows."""
    try:
        return _encoder.encode(value)
    except (TypeError, OverflowError, UnicodeEncodeError) as exc:
        raise TypeError(f"cannot encode {type(value).__name__}: {exc}") from None


_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def decoder(cls: Any) -> msgspec.msgpack.Decoder[Any]:
    """The checking decoder for ``cls`` (any type msgspec understands), made once."""
    found = _decoders.get(cls)
    if found is None:
        found = _decoders[cls] = msgspec.msgpack.Decoder(cls)
    return found


def decode(data: bytes | memoryview, cls: type[T], max_size: int = DEFAULT_MAX_SIZE) -> T:
    """Decode what ``encode`` made of a ``cls``; CodecError names the bad field."""
    if len(data) > max_size:
        raise CodecError(f"message of {len(data)} bytes exceeds the {max_size}-byte limit")
    try:
        value: T = decoder(cls).decode(data)
    except msgspec.ValidationError as exc:
        raise CodecError(explain(str(exc), cls, _name_of(cls))) from None
    except msgspec.DecodeError as exc:
        raise CodecError(f"malformed message: {exc}") from None
    except RecursionError:
        # Trailing fields a newer writer appended are skipped unread, but
        # skipping recurses into them: a deep nest there exhausts the stack.
        raise CodecError("malformed message: values nested too deeply") from None
    return value


def _name_of(cls: Any) -> str:
    return getattr(cls, "__name__", "") or "value"


# --- plain data with objects inside ------------------------------------------


def _wrap(value: Any) -> Any:
    t = type(value)
    code = _CODE_OF.get(t)
    if code is not None:
        return msgspec.msgpack.Ext(code, _encoder.encode(value))
    if t is dict:
        return {k: _wrap(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [_wrap(v) for v in value]
    if t is set or t is frozenset:
        return sorted(_wrap(v) for v in value)
    return value


def packb(value: Any) -> bytes:
    """Encode plain data and swarm objects, nested in any way."""
    try:
        return _encoder.encode(_wrap(value))
    except (TypeError, OverflowError, UnicodeEncodeError) as exc:
        raise TypeError(f"cannot encode {type(value).__name__}: {exc}") from None


def _ext_hook(code: int, data: memoryview) -> Any:
    cls = _CLASS_OF.get(code)
    if cls is None:
        raise CodecError(f"unknown object code {code}")
    try:
        return decoder(cls).decode(data)
    except msgspec.ValidationError as exc:
        raise CodecError(explain(str(exc), cls, _name_of(cls))) from None
    except RecursionError:
        raise CodecError("malformed message: values nested too deeply") from None


def unpackb(data: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Decode what ``packb`` made. Raises CodecError on anything else."""
    if len(data) > max_size:
        raise CodecError(f"message of {len(data)} bytes exceeds the {max_size}-byte limit")
    try:
        return msgspec.msgpack.decode(data, ext_hook=_ext_hook)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"malformed message: {exc}") from None


def check(value: T, path: str = "") -> T:
    """``value`` as a reader would get it: every field checked against its type
    (ints for ints, no NaN, no NUL in command text...). Raises CodecError naming
    the first bad field. For objects built in this process (the CLI, topology
    files) before they are sent; what arrives from elsewhere is checked by
    ``decode`` already."""
    cls = type(value)
    try:
        return decoder(cls).decode(_encoder.encode(value))  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise CodecError(explain(str(exc), cls, path or _name_of(cls))) from None
    except OverflowError:
        raise CodecError(f"{path or _name_of(cls)}: a number does not fit in 64 bits") from None
    except TypeError as exc:
        raise CodecError(f"{path or _name_of(cls)}: cannot encode it: {exc}") from None


# --- readable errors -------------------------------------------------------

_STEP = re.compile(r"\[(\d+|\.\.\.)\]|\.(\w+)")
_EXPECTED = re.compile(r"Expected `([^`]+)`(?:, got `([^`]+)`)?(.*)")


def explain(message: str, root: Any, root_name: str) -> str:
    """Turn msgspec's ``Expected `int`, got `str` - at `$[2][1]``` into
    ``field spec.mode.replicas must be int, not str``, walking the classes'
    fields to name each step of the path."""
    what, _, where = message.partition(" - at `")
    is_key = where.startswith("key` in `")
    where = where.removeprefix("key` in `").rstrip("`") or "$"
    path, tp = _walk(root, root_name, where)
    if is_key:
        args = typing.get_args(tp)
        path, tp = path + " key", _unwrap(args[0]) if args else Any
    return f"field {path} {_must(what, tp)}"


def _walk(tp: Any, path: str, where: str) -> tuple[str, Any]:
    for index, attr in _STEP.findall(where[1:]):
        tp = _unwrap(tp)
        if attr:
            path, tp = f"{path}.{attr}", Any
        elif index == "...":
            args = typing.get_args(tp)
            path, tp = f"{path} value", (args[1] if len(args) == 2 else Any)
        elif isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            fields = msgspec.structs.fields(tp)
            i = int(index)
            if i < len(fields):
                path, tp = f"{path}.{fields[i].name}", fields[i].type
            else:
                path, tp = f"{path}[{i}]", Any
        else:
            args = typing.get_args(tp)
            path, tp = f"{path}[{index}]", (args[0] if args else Any)
    return path, _unwrap(tp)


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return _unwrap(options[0])
    return tp


def _must(what: str, tp: Any) -> str:
    if what.startswith("Invalid enum value"):
        allowed = _allowed(tp)
        value = what.removeprefix("Invalid enum value ").strip()
        return f"must be one of {allowed}, not {value}" if allowed else what
    m = _EXPECTED.match(what)
    if not m:
        return what
    expected, got, rest = m.group(1), m.group(2), m.group(3)
    if "at least length" in rest:
        return "lacks required fields"
    if "matching regex" in rest:
        return "must not contain a NUL character"
    if got is None and ("<=" in rest or ">=" in rest):
        if expected == "float":
            return "must be a finite number of sensible size"
        if expected == "int":
            return "must fit in 64 bits"
    name = _type_name(tp) or expected
    return f"must be {name}, not {got}" if got else f"must be {name} {rest.strip()}".rstrip()


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return ""


def _allowed(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return ", ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and hasattr(tp, "__members__"):
        return ", ".join(name.lower() for name in tp.__members__)
    return ""
