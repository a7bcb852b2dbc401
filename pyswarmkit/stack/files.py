"""Reading a compose file from disk into a deploy plan (the impure edge of
the stack package: the parsing and converting it calls are pure)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pyswarmkit.stack import compose, convert, nodes

# Far more than any compose file; a larger one is a mistake (or a /dev/zero).
MAX_COMPOSE_BYTES = 4 * 1024 * 1024


def read_limited(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def load(path: str, stack: str, environ: Mapping[str, str] | None = None) -> convert.Plan:
    """The plan for deploying ``path`` as ``stack``; ComposeError (one line
    naming the file position) for anything wrong, before anything is sent."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            import sys

            raw = sys.stdin.buffer.read(MAX_COMPOSE_BYTES + 1)
        else:
            raw = read_limited(path, MAX_COMPOSE_BYTES + 1)
    except OSError as exc:
        raise nodes.ComposeError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(raw) > MAX_COMPOSE_BYTES:
        raise nodes.ComposeError(f"{name}: larger than {MAX_COMPOSE_BYTES // 1024 // 1024} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise nodes.ComposeError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    root = nodes.parse(text, name)
    data = compose.read(root, os.environ if environ is None else environ)
    # Absolute, so that a bind mount's relative source names one place.
    base = os.path.dirname(os.path.abspath(path)) if path != "-" else ""
    return convert.convert(data, stack, base, read_limited)
