"""Stacks in the store: deploying one and removing one, each as one write.

A stack is what carries its name in the ``com.docker.stack.namespace``
label (Docker's): services, and the secrets and configs it created. Pure
functions of the store, called from a write's ``build`` so that they see
the newest state and fail as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyswarmkit.api.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from pyswarmkit.api.objects import (
    Config,
    ConfigSpec,
    Secret,
    SecretSpec,
    Service,
    ServiceSpec,
    replace,
)
from pyswarmkit.control import secrets as refs
from pyswarmkit.store.memory import Change, MemoryStore

NAMESPACE_LABEL = "com.docker.stack.namespace"


def stack_of(labels: dict[str, str]) -> str:
    return labels.get(NAMESPACE_LABEL, "")


def check_stack_name(name: str) -> None:
    """A stack's name begins every service's name, so it must fit in one."""
    ok = bool(name) and name.isascii() and name[0].isalnum()
    if not ok or not all(c.isalnum() or c in "-_" for c in name):
        raise InvalidArgument(
            f"invalid stack name {name!r}: use letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )


def _specs(body: dict[str, Any], key: str, kind: type) -> tuple[Any, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise InvalidArgument(f"request field {key!r} must be a list of {kind.__name__}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class DeployRequest:
    name: str
    services: tuple[ServiceSpec, ...]
    secrets: tuple[SecretSpec, ...]
    configs: tuple[ConfigSpec, ...]
    prune: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> DeployRequest:
        name = body.get("name")
        if not isinstance(name, str):
            raise InvalidArgument("request field 'name' must be a str")
        check_stack_name(name)
        prune = body.get("prune", False)
        if not isinstance(prune, bool):
            raise InvalidArgument("request field 'prune' must be a bool")
        request = cls(
            name,
            _specs(body, "services", ServiceSpec),
            _specs(body, "secrets", SecretSpec),
            _specs(body, "configs", ConfigSpec),
            prune,
        )
        request.check()
        return request

    def check(self) -> None:
        """What must hold whatever the store holds: every object is the
        stack's by name and label, no name comes twice, data within limits."""
        if not self.services:
            raise InvalidArgument(f"stack {self.name!r} has no services to deploy")
        seen: set[str] = set()
        for spec in self.services:
            name = spec.annotations.name
            if not name.startswith(self.name + "_") or stack_of(spec.annotations.labels) != (
                self.name
            ):
                raise InvalidArgument(
                    f"service {name!r} is not of stack {self.name!r}: its name must begin "
                    f"with {self.name}_ and its {NAMESPACE_LABEL} label be {self.name}"
                )
            if name in seen:
                raise InvalidArgument(f"service {name!r} is given twice")
            seen.add(name)
        kinds: list[tuple[refs.Which, tuple[SecretSpec | ConfigSpec, ...]]] = [
            ("secret", self.secrets),
            ("config", self.configs),
        ]
        for which, specs in kinds:
            names: set[str] = set()
            for f in specs:
                refs.validate_name(f.annotations.name)
                refs.validate_data(which, f.data)
                if stack_of(f.annotations.labels) != self.name:
                    raise InvalidArgument(
                        f"{which} {f.annotations.name!r} is not labelled with stack {self.name!r}"
                    )
                if f.annotations.name in names:
                    raise InvalidArgument(f"{which} {f.annotations.name!r} is given twice")
                names.add(f.annotations.name)


@dataclass(slots=True)
class Deployed:
    """What a deploy does: its changes, and the names for the reply."""

    changes: list[Change] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    # [name, "created" | "updated" | "unchanged", id] in the file's order.
    steps: list[list[str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "services": self.steps,
            "removed": self.removed,
            "secrets": self.secrets,
            "configs": self.configs,
        }


Respec = Callable[[Service, ServiceSpec], Service]


def deploy(
    st: MemoryStore,
    request: DeployRequest,
    ids: dict[str, str],
    file_ids: dict[tuple[str, str], str],
    respec: Respec,
) -> Deployed:
    """The changes deploying ``request`` makes to the store as it is now:
    secrets and configs created, services created, or updated through
    ``respec`` (the rolling update service update starts) when their spec
    differs, and left alone when it does not. Raises, changing nothing, if
    any part cannot be done."""
    out = Deployed()
    secrets = _files(out, "secret", request.secrets, st.secrets(), file_ids)
    configs = _files(out, "config", request.configs, st.configs(), file_ids)
    wanted = {spec.annotations.name for spec in request.services}
    for asked in request.services:
        name = asked.annotations.name
        # An external secret that does not exist fails the whole deploy here.
        spec = refs.resolved(asked, secrets, configs)
        current = st.service_by_name(name)
        if current is None:
            out.changes.append(Change("create", Service(id=ids[name], spec=spec)))
            out.steps.append([name, "created", ids[name]])
            continue
        if stack_of(current.spec.annotations.labels) != request.name:
            raise AlreadyExists(
                f"a service named {name!r} already exists and is not part of stack "
                f"{request.name!r}: remove it, or rename the service in the compose file"
            )
        if spec.mode.kind != current.spec.mode.kind:
            raise InvalidArgument(
                f"service {name}: mode change is not allowed ({current.spec.mode.kind} to "
                f"{spec.mode.kind}): remove the service and deploy again"
            )
        # As docker stack deploy: no --force here, so the service's own count stays.
        task = replace(spec.task, force_update=current.spec.task.force_update)
        spec = replace(spec, task=task)
        if spec == current.spec:
            out.steps.append([name, "unchanged", current.id])
            continue
        out.changes.append(Change("update", respec(current, spec)))
        out.steps.append([name, "updated", current.id])
    if request.prune:
        for svc in sorted(st.services(), key=lambda s: s.name):
            if stack_of(svc.spec.annotations.labels) == request.name and svc.name not in wanted:
                out.changes.append(Change("delete", svc))
                out.removed.append(svc.name)
    return out


def _files(
    out: Deployed,
    which: refs.Which,
    specs: Sequence[SecretSpec | ConfigSpec],
    existing: Sequence[Secret | Config],
    file_ids: dict[tuple[str, str], str],
) -> list[Any]:
    """The stack's secrets (or configs) created where missing; one that exists
    keeps its ID and takes the new labels (as Docker updates it), but its data
    cannot change (SwarmKit allows only labels to). Returns every one that
    will exist, for the services' references."""
    by_name = {o.name: o for o in existing}
    made: list[Secret | Config] = []
    for spec in specs:
        name = spec.annotations.name
        current = by_name.get(name)
        if current is None:
            obj_id = file_ids[(which, name)]
            obj: Secret | Config = (
                Secret(id=obj_id, spec=spec)
                if isinstance(spec, SecretSpec)
                else Config(id=obj_id, spec=spec)
            )
            out.changes.append(Change("create", obj))
            made.append(obj)
            (out.secrets if which == "secret" else out.configs).append(name)
            continue
        stack = stack_of(spec.annotations.labels)
        if stack_of(current.spec.annotations.labels) != stack:
            # Not the stack's own: taking it over would let `stack rm` delete it.
            raise FailedPrecondition(
                f"{which} {name} exists and is not part of stack {stack}: "
                f"declare it external: true to use it as it is, or give it another name"
            )
        if current.spec.data != spec.data:
            raise FailedPrecondition(
                f"{which} {name} exists with other data, and only its labels may change: "
                f"give the new data another {which} name, or remove the stack first"
            )
        if current.spec.annotations != spec.annotations:
            updated = replace(current, spec=replace(current.spec, annotations=spec.annotations))
            out.changes.append(Change("update", updated))
            by_name[name] = updated
    return [*by_name.values(), *made]


def listing(services: Sequence[Service]) -> list[dict[str, Any]]:
    """Each stack with its number of services, by name (``docker stack ls``)."""
    counts: dict[str, int] = {}
    for svc in services:
        stack = stack_of(svc.spec.annotations.labels)
        if stack:
            counts[stack] = counts.get(stack, 0) + 1
    return [{"name": name, "services": counts[name]} for name in sorted(counts)]


@dataclass(slots=True)
class Removed:
    changes: list[Change] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "services": self.services,
            "secrets": self.secrets,
            "configs": self.configs,
            "failed": self.failed,
        }


def remove(st: MemoryStore, name: str) -> Removed:
    """The stack's services, and the secrets and configs it created, deleted
    together. One still used by a service of another stack (or none) stays,
    and says so, as Docker's stack rm does; the rest go."""
    out = Removed()
    mine = sorted(
        (s for s in st.services() if stack_of(s.spec.annotations.labels) == name),
        key=lambda s: s.name,
    )
    gone = {s.id for s in mine}
    others = [s for s in st.services() if s.id not in gone]
    for svc in mine:
        out.changes.append(Change("delete", svc))
        out.services.append(svc.name)
    files: list[tuple[refs.Which, Secret | Config]] = [
        *(("secret", o) for o in st.secrets()),
        *(("config", o) for o in st.configs()),
    ]
    for which, obj in sorted(files, key=lambda f: (f[0], f[1].name)):
        if stack_of(obj.spec.annotations.labels) != name:
            continue
        using = refs.users(which, obj.id, others)
        if using:
            reason = refs.in_use(which, obj.name, using)
            out.failed.append(f"failed to remove {which} {obj.name}: {reason}")
            continue
        out.changes.append(Change("delete", obj))
        (out.secrets if which == "secret" else out.configs).append(obj.name)
    return out
