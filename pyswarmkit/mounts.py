"""``--mount`` as Docker writes it: ``type=bind|volume,source=...,target=...,readonly``."""

from __future__ import annotations

import signal

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import Mount

_KEYS = {"type", "source", "src", "target", "destination", "dst", "readonly", "ro"}


def parse_mount(text: str) -> Mount:
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.strip().partition("=")
        key = key.lower()
        if key not in _KEYS:
            raise InvalidArgument(
                f"--mount {text!r}: unknown field {key!r} (use type, source, target, readonly)"
            )
        fields[key] = value if eq else "true"
    kind = fields.get("type", "volume")
    if kind not in ("bind", "volume"):
        raise InvalidArgument(f"--mount {text!r}: type must be bind or volume, not {kind!r}")
    source = fields.get("source", fields.get("src", ""))
    target = fields.get("target", fields.get("destination", fields.get("dst", "")))
    if not target.startswith("/"):
        raise InvalidArgument(f"--mount {text!r}: target must be an absolute path")
    if kind == "bind" and not source.startswith("/"):
        raise InvalidArgument(f"--mount {text!r}: a bind mount's source must be an absolute path")
    ro = fields.get("readonly", fields.get("ro", "false")).lower()
    if ro not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"--mount {text!r}: readonly must be true or false")
    return Mount(
        type="bind" if kind == "bind" else "volume",
        source=source,
        target=target,
        readonly=ro in ("true", "1"),
    )


def parse_stop_signal(text: str) -> str:
    """A signal name (SIGTERM, TERM) or number, as the engine takes it."""
    name = text.strip().upper()
    if name.isdigit():
        if int(name) not in {s.value for s in signal.Signals}:
            raise InvalidArgument(f"--stop-signal: no signal {text!r}")
        return name
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in signal.Signals.__members__:
        raise InvalidArgument(f"--stop-signal: no signal {text!r}")
    return name
