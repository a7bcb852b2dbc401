"""What ``swarmctl events`` prints for the rows ``events.since`` answers:
one line per change, or one JSON object per line.

    2026-11-29T10:00:01.123Z service update web
    2026-11-29T10:00:01.130Z task create 4l0x... state=NEW desired=RUNNING service=web

Pure: the caller supplies the names it knows for ids (services, nodes), and
the rows; nothing here reads the clock or the socket.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Mapping
from typing import Any

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.control.events import FIELDS
from pyswarmkit.control.units import parse_duration
from pyswarmkit.store.memory import KINDS

_AT = {name: i for i, name in enumerate(FIELDS)}


def parse_filters(filters: list[str]) -> frozenset[str] | None:
    """``--filter type=KIND`` (repeatable, Docker's form): the kinds to show,
    None for all."""
    kinds: set[str] = set()
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or key.strip() != "type":
            raise InvalidArgument(f"--filter {item!r}: the filter is type=KIND, e.g. type=service")
        kind = value.strip()
        if kind not in KINDS:
            raise InvalidArgument(f"--filter {item!r}: the type is one of {', '.join(KINDS)}")
        kinds.add(kind)
    return frozenset(kinds) or None


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration before ``now`` (``10m``) or an RFC 3339 UTC time
    (``2026-11-29T10:00:00Z``); the wall time to show events from."""
    if text.endswith("Z") and "T" in text:
        body = text[:-1]
        frac = 0.0
        if "." in body:
            body, _, digits = body.partition(".")
            if not digits.isdigit():
                raise InvalidArgument(f"--since {text!r}: not a time like 2026-11-29T10:00:00Z")
            frac = float("0." + digits)
        try:
            parsed = time.strptime(body, "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise InvalidArgument(
                f"--since {text!r}: not a time like 2026-11-29T10:00:00Z"
            ) from None
        return calendar.timegm(parsed) + frac
    try:
        return now - parse_duration(text, "--since")
    except InvalidArgument as err:
        if "at most" in str(err):
            raise  # a duration, only too long: that is what the error says
        raise InvalidArgument(
            f"--since {text!r}: give a duration (10m, 1h30m) or a UTC time like "
            "2026-11-29T10:00:00Z"
        ) from None


def stamp(wall: float) -> str:
    """RFC 3339 in UTC, to the millisecond."""
    whole = int(wall)
    millis = round((wall - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def event(row: list[Any], names: Mapping[str, str]) -> dict[str, Any]:
    """One row as a map of its fields, with ``name`` for the object (or its
    id when the name is not known) and the time as text."""
    out = {name: row[i] for name, i in _AT.items()}
    out["time"] = stamp(float(row[_AT["time"]]))
    obj_id = str(row[_AT["id"]])
    out["name"] = names.get(obj_id, obj_id)
    if row[_AT["kind"]] == "task":
        out["service"] = names.get(str(row[_AT["service_id"]]), row[_AT["service_id"]])
        out["node"] = names.get(str(row[_AT["node_id"]]), row[_AT["node_id"]])
    return out


def line(row: list[Any], names: Mapping[str, str]) -> str:
    ev = event(row, names)
    parts = [ev["time"], ev["kind"], ev["op"], ev["name"]]
    if ev["kind"] == "task":
        parts.append(f"state={ev['state'].lower()} desired={ev['desired_state'].lower()}")
        if ev["service"]:
            parts.append(f"service={ev['service']}")
        if ev["node"]:
            parts.append(f"node={ev['node']}")
    elif ev["kind"] == "node" and ev["state"]:
        parts.append(f"state={ev['state'].lower()}")
    return " ".join(str(p) for p in parts)


def json_line(row: list[Any], names: Mapping[str, str]) -> str:
    return json.dumps(event(row, names), separators=(",", ":"))
