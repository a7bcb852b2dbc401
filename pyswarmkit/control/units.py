"""Parsing the quantities users type: CPUs, memory sizes, ports, labels."""

from __future__ import annotations

import math
import re

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import PortConfig

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_BARE_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
MAX_DURATION = 10 * 365 * 24 * 3600.0
_DURATION_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PORT = re.compile(r"^(\d+):(\d+)(?:/(tcp|udp|sctp))?$")


# Sizes and counts travel as signed 64-bit integers.
INT64_MAX = 2**63 - 1
MAX_CPUS = 1_000_000


def parse_cpus(text: str, what: str = "CPUs") -> int:
    """'1.5' CPUs -> nano CPUs."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: use a number such as 0.5 or 2") from None
    if not math.isfinite(value):
        raise InvalidArgument(f"invalid {what} {text!r}: use a number such as 0.5 or 2")
    if value < 0:
        raise InvalidArgument(f"invalid {what} {text!r}: must not be negative")
    if value > MAX_CPUS:
        raise InvalidArgument(f"invalid {what} {text!r}: at most {MAX_CPUS:,} CPUs")
    return round(value * 1_000_000_000)


def parse_memory(text: str, what: str = "memory") -> int:
    """'512M', '1g', '1GiB', '1048576' -> bytes (binary units, as Docker's)."""
    m = _MEMORY.match(text)
    if not m:
        raise InvalidArgument(f"invalid {what} {text!r}: use a size such as 512M, 1G or 1073741824")
    size = int(float(m.group(1)) * _SCALE[m.group(2).lower()])
    if size > INT64_MAX:
        raise InvalidArgument(f"invalid {what} {text!r}: larger than 8 EiB")
    return size


def parse_port(text: str) -> PortConfig:
    """'8080:80' or '8080:80/udp': a host-mode published port."""
    m = _PORT.match(text.strip())
    if not m:
        raise InvalidArgument(f"invalid port {text!r}: use PUBLISHED:TARGET[/tcp|udp]")
    published, target = int(m.group(1)), int(m.group(2))
    for port in (published, target):
        if not 1 <= port <= 65535:
            raise InvalidArgument(f"invalid port {text!r}: ports go from 1 to 65535")
    return PortConfig(
        target_port=target,
        published_port=published,
        protocol=m.group(3) or "tcp",
        publish_mode="host",
    )


def parse_label(text: str) -> tuple[str, str]:
    """'k=v' (or 'k', an empty value) -> (k, v)."""
    key, _, value = text.partition("=")
    if not key or key != key.strip():
        raise InvalidArgument(f"invalid label {text!r}: use KEY=VALUE")
    return key, value


def parse_generic(text: str) -> dict[str, int]:
    """'gpu=2,fpga=1' -> {'gpu': 2, 'fpga': 1}."""
    out: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value.isdigit() or int(value) > INT64_MAX:
            raise InvalidArgument(f"invalid generic resource {item!r}: use NAME=COUNT")
        out[key] = min(out.get(key, 0) + int(value), INT64_MAX)
    return out


# Below this, heartbeats and their expiry outrun the ticks that drive them and
# every node flaps DOWN; above it, a dead node goes unnoticed for hours.
MIN_HEARTBEAT, MAX_HEARTBEAT = 0.1, 3600.0


def check_heartbeat_period(value: object, what: str = "heartbeat period") -> float:
    """A heartbeat period in seconds, or InvalidArgument saying what is allowed."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not MIN_HEARTBEAT <= value <= MAX_HEARTBEAT:  # type: ignore[operator]
        raise InvalidArgument(
            f"{what} must be between {MIN_HEARTBEAT:g} and {MAX_HEARTBEAT:g} seconds, not {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def check_raft_ticks(heartbeat_tick: int, election_tick: int) -> None:
    """Raft needs at least one tick between heartbeats, and elections slower than them."""
    if heartbeat_tick < 1:
        raise InvalidArgument(f"--heartbeat-tick must be at least 1, not {heartbeat_tick}")
    if election_tick <= heartbeat_tick or election_tick > 10_000:
        raise InvalidArgument(
            f"--election-tick must be more than --heartbeat-tick ({heartbeat_tick}) and at "
            f"most 10000, not {election_tick}"
        )


def parse_duration(text: str, what: str = "duration") -> float:
    """Go's spelling, as SwarmKit's flags take it: '10s', '1m30s', '500ms' -> seconds.
    A bare number is seconds. Nothing negative, infinite or not a number."""
    t = text.strip()
    if _BARE_NUMBER.match(t):
        value = float(t)
    else:
        pos, value = 0, 0.0
        for m in _DURATION_PART.finditer(t):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _DURATION_UNIT[m.group(2)]
            pos = m.end()
        if not t or pos != len(t):
            raise InvalidArgument(
                f"invalid {what} {text!r}: use a duration such as 10s, 1m30s or 500ms"
            )
    if value > MAX_DURATION:
        raise InvalidArgument(f"invalid {what} {text!r}: at most {MAX_DURATION // 3600:.0f}h")
    return value


# As a DNS name may be long; control characters and spaces would break tables and logs.
MAX_HOSTNAME = 253


def check_hostname(text: str) -> str:
    if (
        not text
        or len(text) > MAX_HOSTNAME
        or any(c.isspace() or not c.isprintable() for c in text)
    ):
        raise InvalidArgument(
            f"invalid --hostname {text[:40]!r}{'...' if len(text) > 40 else ''}: use 1 to "
            f"{MAX_HOSTNAME} printable characters without spaces"
        )
    return text
