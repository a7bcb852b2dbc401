"""Checking that a decoded object's fields have the types its class declares.

The codec rebuilds objects from whatever a peer sent; before a request's object
is used, ``check`` makes sure, for instance, that ``replicas`` is an int and not
the string "3", and names the field when it is not.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any

from pyswarmkit.api import objects
from pyswarmkit.api.errors import InvalidArgument

_HINTS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _hints(cls: type) -> tuple[tuple[str, Any], ...]:
    found = _HINTS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls, vars(objects))
        found = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
        _HINTS[cls] = found
    return found


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check(obj: Any, path: str = "") -> None:
    """Raise InvalidArgument naming the first field whose value has the wrong type."""
    for name, tp in _hints(type(obj)):
        _check_value(getattr(obj, name), tp, f"{path}.{name}" if path else name)


def _check_value(value: Any, tp: Any, path: str) -> None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return
        for option in options:
            if option is not type(None) and _fits(value, option):
                _check_value(value, option, path)
                return
        _wrong(path, tp, value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            allowed = ", ".join(repr(a) for a in typing.get_args(tp))
            raise InvalidArgument(f"field {path} must be one of {allowed}, not {value!r}")
        return
    if origin is tuple:
        if not isinstance(value, tuple):
            _wrong(path, tp, value)
        item_tp = typing.get_args(tp)[0]
        for i, item in enumerate(value):
            _check_value(item, item_tp, f"{path}[{i}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            _wrong(path, tp, value)
        key_tp, value_tp = typing.get_args(tp)
        for k, v in value.items():
            _check_value(k, key_tp, f"{path} key")
            _check_value(v, value_tp, f"{path}[{k!r}]")
        return
    if not _fits(value, tp):
        _wrong(path, tp, value)
    if dataclasses.is_dataclass(tp):
        check(value, path)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _fits(value: Any, tp: Any) -> bool:
    if typing.get_origin(tp) is not None:
        return True  # checked in depth by the caller
    if tp is float:
        # NaN and infinity compare false with everything: as a delay or a
        # deadline they would mean "at once" or "never".
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and abs(value) <= 1e15
        )
    if tp is int:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and INT64_MIN <= value <= INT64_MAX
        )
    if tp is str:
        # No NUL: it cannot go into a command line, a path or an environment.
        return isinstance(value, str) and "\0" not in value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return isinstance(value, tp)
    return isinstance(value, tp)


def _wrong(path: str, tp: Any, value: Any) -> typing.NoReturn:
    if isinstance(value, bool):
        pass
    elif tp is float and isinstance(value, int | float):
        raise InvalidArgument(
            f"field {path} must be a finite number of sensible size, not {value!r}"
        )
    elif tp is int and isinstance(value, int):
        raise InvalidArgument(f"field {path} must fit in 64 bits, not {value!r}")
    elif tp is str and isinstance(value, str):
        raise InvalidArgument(f"field {path} must not contain a NUL character")
    raise InvalidArgument(
        f"field {path} must be {_describe(tp)}, not {type(value).__name__} {value!r}"
    )
