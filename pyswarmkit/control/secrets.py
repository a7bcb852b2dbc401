"""Secrets and configs: the checks on what users give, and a service's
references to them, as Docker and SwarmKit word them.

Pure functions: parsing ``--secret``/``--config`` values, validating names,
data and references, and resolving a service's references against the
secrets and configs that exist.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import (
    Config,
    ConfigReference,
    ContainerSpec,
    Secret,
    SecretReference,
    Service,
    ServiceSpec,
    replace,
)
from pyswarmkit.control.resolve import quoted

Which = Literal["secret", "config"]

# SwarmKit's limits on Spec.Data (a secret must be smaller than 500 KiB, a
# config than 1000 KiB).
MAX_SECRET_SIZE = 500 * 1024
MAX_CONFIG_SIZE = 1000 * 1024
MAX_SIZE: dict[Which, int] = {"secret": MAX_SECRET_SIZE, "config": MAX_CONFIG_SIZE}
MAX_NAME = 64
# Docker's mode for a file a task gets (its secrets API default, 0444).
DEFAULT_MODE = 0o444

# Secret and config names differ from service names: dots and underscores too.
_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")
_ID_NUMBER = re.compile(r"^[0-9]+$")


def validate_name(name: str) -> None:
    if not name:
        raise InvalidArgument("name must be provided")
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise InvalidArgument(
            f"invalid name {quoted(name)}, only 64 [a-zA-Z0-9-_.] characters allowed, "
            "and the start and end character must be [a-zA-Z0-9]"
        )


def validate_data(which: Which, data: bytes, *, read_to: int | None = None) -> None:
    """``read_to``: the data was read no further than this many bytes, so a
    length of that many says only "at least"."""
    limit = MAX_SIZE[which]
    if not 0 < len(data) < limit:
        got = f"{len(data)} bytes"
        if read_to is not None and len(data) >= read_to:
            got = f"more than {limit} bytes"
        raise InvalidArgument(
            f"{which} data must be larger than 0 and less than {limit} bytes "
            f"({limit // 1024} KiB); got {got}"
        )


# --- --secret and --config values -----------------------------------------------


def parse_secret(text: str) -> SecretReference:
    """``--secret NAME`` or ``--secret source=NAME,target=FILE,uid=,gid=,mode=``
    (Docker's form); the ID is filled in by the manager."""
    name, target, uid, gid, mode = _parse_reference("secret", text)
    return SecretReference(secret_name=name, target=target, uid=uid, gid=gid, mode=mode)


def parse_config(text: str) -> ConfigReference:
    """``--config NAME`` or ``--config source=NAME,target=PATH,uid=,gid=,mode=``."""
    name, target, uid, gid, mode = _parse_reference("config", text)
    return ConfigReference(config_name=name, target=target, uid=uid, gid=gid, mode=mode)


def _parse_reference(which: Which, text: str) -> tuple[str, str, str, str, int]:
    flag = f"--{which} {quoted(text)}"
    if not text:
        raise InvalidArgument(f"--{which} needs a value: NAME or source=NAME[,target=FILE,...]")
    fields = text.split(",")
    if len(fields) == 1 and "=" not in text:
        return text, text, "0", "0", DEFAULT_MODE
    source = target = ""
    uid = gid = "0"
    mode = DEFAULT_MODE
    given: set[str] = set()
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise InvalidArgument(f"{flag}: invalid field {field!r}: must be a key=value pair")
        key = key.strip().lower()
        # src is source's other name: one of them, once.
        name = "source" if key == "src" else key
        if name in given:
            raise InvalidArgument(f"{flag}: {name} is given twice")
        given.add(name)
        if key in ("source", "src"):
            source = value
        elif key == "target":
            target = value
        elif key == "uid":
            uid = _number(flag, "uid", value)
        elif key == "gid":
            gid = _number(flag, "gid", value)
        elif key == "mode":
            mode = _mode(flag, value)
        else:
            raise InvalidArgument(
                f"{flag}: unknown field {key!r}: use source, target, uid, gid or mode"
            )
    if not source:
        raise InvalidArgument(f"{flag}: source is required")
    return source, target or source, uid, gid, mode


def _number(flag: str, what: str, value: str) -> str:
    if not _ID_NUMBER.match(value):
        raise InvalidArgument(f"{flag}: {what} must be a number, not {value!r}")
    return value


def _mode(flag: str, value: str) -> int:
    """An octal mode as Go's ParseUint(base 0) reads it: 0400, 0o400 or 256."""
    text = value.strip().lower()
    try:
        if len(text) > 1 and text[0] == "0" and text[1].isdigit():
            mode = int(text, 8)
        else:
            mode = int(text, 0)
    except ValueError:
        raise InvalidArgument(
            f"{flag}: invalid mode {value!r}: give it in octal, e.g. 0400"
        ) from None
    if not 0 <= mode <= 0o777:
        raise InvalidArgument(f"{flag}: mode {value!r} is not a file mode (0 to 0777)")
    return mode


# --- a service's references ---------------------------------------------------------


def check_references(c: ContainerSpec) -> None:
    """What a service's references must be whatever exists: a target that is
    a file path without '.' or '..' parts, numeric uid and gid, a file mode,
    and no two files at one target."""
    _check_targets(
        "secret",
        [(r.secret_name or r.secret_id, r.target, r.uid, r.gid, r.mode) for r in c.secrets],
    )
    _check_targets(
        "config",
        [(r.config_name or r.config_id, r.target, r.uid, r.gid, r.mode) for r in c.configs],
    )


# The largest uid or gid a file can have.
MAX_ID = 2**32 - 2


def _check_targets(which: Which, refs: list[tuple[str, str, str, str, int]]) -> None:
    # Targets as paths below the task's directory for this kind: "/x" and "x"
    # are one file there, and "a" cannot be a file and hold "a/b".
    seen: dict[str, str] = {}
    for name, target, uid, gid, mode in refs:
        if not name or "\x00" in name:
            raise InvalidArgument(f"a {which} reference needs a {which} name (no NUL in it)")
        if not (_ID_NUMBER.match(uid) and _ID_NUMBER.match(gid)):
            raise InvalidArgument(
                f"{which} reference {name!r}: uid and gid must be numbers, not {uid!r}, {gid!r}"
            )
        if int(uid) > MAX_ID or int(gid) > MAX_ID:
            raise InvalidArgument(
                f"{which} reference {name!r}: uid and gid must be at most {MAX_ID}"
            )
        if not target:
            raise InvalidArgument(f"{which} reference {name!r}: target must not be empty")
        if "\x00" in target or any(p in ("", ".", "..") for p in target.strip("/").split("/")):
            raise InvalidArgument(
                f"{which} reference {name!r}: invalid target {quoted(target)}: "
                "use a file name or a path without empty ('//'), '.' or '..' parts"
            )
        if target.endswith("/"):
            raise InvalidArgument(
                f"{which} reference {name!r}: invalid target {quoted(target)}: "
                "it names a directory; a target is a file (drop the trailing '/')"
            )
        if not 0 <= mode <= 0o777:
            raise InvalidArgument(f"{which} reference {name!r}: mode {mode:#o} is not a file mode")
        path = target.strip("/")
        for other, other_name in seen.items():
            if path == other or path.startswith(other + "/") or other.startswith(path + "/"):
                raise InvalidArgument(
                    f"{which} references {other_name!r} and {name!r} have a conflicting "
                    f"target: {target!r}"
                )
        seen[path] = name


def resolved(
    spec: ServiceSpec, secrets: Sequence[Secret], configs: Sequence[Config]
) -> ServiceSpec:
    """``spec`` with each reference's ID (and name) set from the secret or
    config it names; NotFound naming every one that does not exist. A
    reference is by name when it has one, else by ID."""
    c = spec.task.container
    if not c.secrets and not c.configs:
        return spec
    secret_by_name = {s.name: s for s in secrets}
    secret_by_id = {s.id: s for s in secrets}
    config_by_name = {s.name: s for s in configs}
    config_by_id = {s.id: s for s in configs}
    missing_secrets: list[str] = []
    new_secrets: list[SecretReference] = []
    for r in c.secrets:
        found = (
            secret_by_name.get(r.secret_name) if r.secret_name else secret_by_id.get(r.secret_id)
        )
        if found is None:
            missing_secrets.append(r.secret_name or r.secret_id)
            continue
        new_secrets.append(replace(r, secret_id=found.id, secret_name=found.name))
    missing_configs: list[str] = []
    new_configs: list[ConfigReference] = []
    for q in c.configs:
        got = config_by_name.get(q.config_name) if q.config_name else config_by_id.get(q.config_id)
        if got is None:
            missing_configs.append(q.config_name or q.config_id)
            continue
        new_configs.append(replace(q, config_id=got.id, config_name=got.name))
    for which, missing in (("secret", missing_secrets), ("config", missing_configs)):
        if missing:
            noun = which if len(missing) == 1 else which + "s"
            raise NotFound(f"{noun} not found: {', '.join(dict.fromkeys(missing))}")
    c = replace(c, secrets=tuple(new_secrets), configs=tuple(new_configs))
    return replace(spec, task=replace(spec.task, container=c))


def users(which: Which, obj_id: str, services: Sequence[Service]) -> list[str]:
    """The names of the services whose spec references ``obj_id``, sorted."""
    names: list[str] = []
    for svc in services:
        c = svc.spec.task.container
        ids = (
            {r.secret_id for r in c.secrets}
            if which == "secret"
            else {r.config_id for r in c.configs}
        )
        if obj_id in ids:
            names.append(svc.name)
    return sorted(names)


def in_use(which: Which, name: str, services: list[str]) -> str:
    """SwarmKit's refusal to remove a secret or config that services use."""
    noun = "service" if len(services) == 1 else "services"
    return f"{which} '{name}' is in use by the following {noun}: {', '.join(services)}"
