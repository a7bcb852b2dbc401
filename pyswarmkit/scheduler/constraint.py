"""Placement constraints (``node.labels.zone==east``) and placement preferences
(``spread=node.labels.zone``): parsing with one-line errors, and matching nodes.

Syntax and matching follow Docker swarm mode: ``==`` or ``!=``; several
constraints are ANDed; values compare case-insensitively, label names
case-sensitively; a label a node lacks compares as the empty string.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import Node

NODE_LABEL_PREFIX = "node.labels."
ENGINE_LABEL_PREFIX = "engine.labels."

OPERATORS = ("==", "!=")

# Docker's grammar: a key starts with a letter or underscore; a value may hold
# letters, digits, spaces and a few punctuation marks, but no operator signs.
_KEY = re.compile(r"[a-z_][a-z0-9\-_.]+", re.IGNORECASE | re.ASCII)
_VALUE = re.compile(r"[a-z0-9:\-_\t\n\f\r .*()?+\[\]\\^$|/]+", re.IGNORECASE | re.ASCII)

Field = Literal["id", "hostname", "ip", "role", "os", "arch", "node_label", "engine_label"]

_FIELDS: dict[str, Field] = {
    "node.id": "id",
    "node.hostname": "hostname",
    "node.ip": "ip",
    "node.role": "role",
    "node.platform.os": "os",
    "node.platform.arch": "arch",
}

KNOWN_KEYS = (
    "node.id, node.hostname, node.ip, node.role, node.platform.os, node.platform.arch, "
    "node.labels.<name> or engine.labels.<name>"
)

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Constraint:
    """One parsed ``key op value``. ``label`` is set for label keys; ``network``
    for ``node.ip`` (a single address is a /32 or /128)."""

    key: str
    op: Literal["==", "!="]
    value: str
    field: Field
    label: str = ""
    network: IPNet | None = None

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"

    def matches(self, node: Node) -> bool:
        if self.field == "ip":
            assert self.network is not None
            addr = node_ip(node)
            net = self.network
            inside = addr is not None and addr.version == net.version and addr in net
            return inside == (self.op == "==")
        equal = _node_value(node, self.field, self.label).casefold() == self.value.casefold()
        return equal == (self.op == "==")


def _node_value(node: Node, field: Field, label: str) -> str:
    if field == "id":
        return node.id
    if field == "hostname":
        return node.description.hostname
    if field == "role":
        return node.role.name.lower()
    if field == "os":
        return node.description.platform.os
    if field == "arch":
        return node.description.platform.architecture
    if field == "node_label":
        return node.spec.annotations.labels.get(label, "")
    return node.description.engine.labels.get(label, "")


def node_ip(node: Node) -> IPAddr | None:
    """The node's address as an IP, tolerating a ``host:port`` or ``[v6]:port`` form."""
    addr = node.status.addr.strip()
    if not addr:
        return None
    for candidate in (addr, addr.rpartition(":")[0].strip("[]")):
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    return None


def _field_of(key: str) -> tuple[Field, str] | None:
    lowered = key.lower()
    if lowered in _FIELDS:
        return _FIELDS[lowered], ""
    if len(key) > len(NODE_LABEL_PREFIX) and lowered.startswith(NODE_LABEL_PREFIX):
        return "node_label", key[len(NODE_LABEL_PREFIX) :]
    if len(key) > len(ENGINE_LABEL_PREFIX) and lowered.startswith(ENGINE_LABEL_PREFIX):
        return "engine_label", key[len(ENGINE_LABEL_PREFIX) :]
    return None


def parse_constraint(expr: str) -> Constraint:
    """Parse one constraint; raise ``InvalidArgument`` naming what is wrong."""
    for op in OPERATORS:
        if op not in expr:
            continue
        raw_key, _, raw_value = expr.partition(op)
        key, value = raw_key.strip(), raw_value.strip()
        if not _KEY.fullmatch(key):
            raise InvalidArgument(
                f"key {key!r} is invalid in constraint {expr!r} (expected {KNOWN_KEYS})"
            )
        found = _field_of(key)
        if found is None:
            raise InvalidArgument(
                f"key {key!r} is invalid in constraint {expr!r} (expected {KNOWN_KEYS})"
            )
        if not _VALUE.fullmatch(value):
            raise InvalidArgument(f"value {value!r} is invalid in constraint {expr!r}")
        field, label = found
        network: IPNet | None = None
        if field == "ip":
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise InvalidArgument(
                    f"value {value!r} is invalid in constraint {expr!r} "
                    "(expected an IP address or a CIDR subnet)"
                ) from None
        return Constraint(key, "==" if op == "==" else "!=", value, field, label, network)
    raise InvalidArgument(
        f"constraint expected one operator from {', '.join(OPERATORS)} (got {expr!r})"
    )


def parse_constraints(exprs: Iterable[str]) -> list[Constraint]:
    """Parse a service's constraints (ANDed); raise ``InvalidArgument`` on the first bad one."""
    return [parse_constraint(e) for e in exprs]


def node_matches(constraints: Iterable[Constraint], node: Node) -> bool:
    return all(c.matches(node) for c in constraints)


# --- placement preferences ----------------------------------------------------


def parse_preference(pref: str) -> str:
    """Parse ``spread=node.labels.<name>`` (or ``engine.labels.<name>``) and return
    the label path. A bare label path, as stored in ``Placement.preferences``, is
    accepted as well. Raises ``InvalidArgument``."""
    strategy, sep, descriptor = pref.partition("=")
    if not sep:
        descriptor = pref
    elif strategy.strip().lower() != "spread":
        raise InvalidArgument(
            f"unsupported placement preference {strategy.strip()!r} in {pref!r} "
            "(only spread is supported, e.g. spread=node.labels.zone)"
        )
    descriptor = descriptor.strip()
    lowered = descriptor.lower()
    for prefix in (NODE_LABEL_PREFIX, ENGINE_LABEL_PREFIX):
        if lowered.startswith(prefix) and len(descriptor) > len(prefix):
            return descriptor
    if not sep:
        raise InvalidArgument(
            f"placement preference {pref!r} must be of the form spread=node.labels.<name> "
            "or spread=engine.labels.<name>"
        )
    raise InvalidArgument(
        f"cannot spread over {descriptor!r} in placement preference {pref!r} "
        "(expected node.labels.<name> or engine.labels.<name>)"
    )


def parse_preferences(prefs: Iterable[str]) -> tuple[str, ...]:
    """Parse placement preferences, outermost first; returns their label paths."""
    return tuple(parse_preference(p) for p in prefs)


def preference_value(descriptor: str, node: Node) -> str | None:
    """The node's value for a spread descriptor ("" when it lacks the label);
    None when the descriptor is not one the scheduler can spread over."""
    if descriptor[:7].lower() == "spread=":
        descriptor = descriptor[7:].strip()
    lowered = descriptor[: len(ENGINE_LABEL_PREFIX)].lower()
    if len(descriptor) > len(NODE_LABEL_PREFIX) and lowered.startswith(NODE_LABEL_PREFIX):
        return node.spec.annotations.labels.get(descriptor[len(NODE_LABEL_PREFIX) :], "")
    if len(descriptor) > len(ENGINE_LABEL_PREFIX) and lowered == ENGINE_LABEL_PREFIX:
        return node.description.engine.labels.get(descriptor[len(ENGINE_LABEL_PREFIX) :], "")
    return None
