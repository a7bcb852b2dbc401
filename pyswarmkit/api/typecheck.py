"""Checking an object built in this process before it is sent.

Objects that arrive from elsewhere are checked as they are decoded (see
``codec.decode``); the CLI and topology files build theirs from user input, and
``check`` gives them the same scrutiny, naming the field that is wrong.
"""

from __future__ import annotations

from typing import TypeVar

from pyswarmkit.api import codec
from pyswarmkit.api.errors import InvalidArgument

T = TypeVar("T")


def check(obj: T, path: str = "") -> T:
    """``obj`` as a reader would decode it; InvalidArgument names the first bad field."""
    try:
        return codec.check(obj, path)
    except codec.CodecError as exc:
        raise InvalidArgument(str(exc)) from None
