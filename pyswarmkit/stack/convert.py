"""Checked compose data -> the specs a stack deploys, as Docker converts them.

Services are named ``STACK_service`` and labelled with the stack
(``com.docker.stack.namespace``, and ``com.docker.stack.image`` with the
image as written); a top-level secret or config from a file becomes
``STACK_key`` (or its ``name:``), labelled likewise; an external one is
only referred to. ``entrypoint`` is the container's command and ``command``
its arguments, as in Docker; the process executor runs the two joined, so
``command`` alone is what runs.

Every spec goes through the checks ``service create`` applies
(control/validate.py, control/secrets.py), so the manager refuses nothing
the file was allowed to say; a refusal names the file position. Pure, but
for ``read_file``, which the caller gives.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import (
    Annotations,
    ConfigReference,
    ConfigSpec,
    ContainerSpec,
    HealthConfig,
    Mount,
    Placement,
    PortConfig,
    ResourceRequirements,
    Resources,
    RestartPolicy,
    SecretReference,
    SecretSpec,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
    UpdateConfig,
    replace,
)
from pyswarmkit.api.states import RestartCondition
from pyswarmkit.control import secrets as refs
from pyswarmkit.control import units
from pyswarmkit.control.stacks import NAMESPACE_LABEL, check_stack_name
from pyswarmkit.control.validate import (
    validate_healthcheck,
    validate_placement,
    validate_service_spec,
    validate_update_config,
)
from pyswarmkit.mounts import parse_stop_signal
from pyswarmkit.stack.compose import (
    ComposeFile,
    Duration,
    FileDef,
    Health,
    Port,
    Quantity,
    Reference,
    ServiceDef,
    Update,
    VolumeDef,
    VolumeUse,
)
from pyswarmkit.stack.nodes import At, ComposeError

# Docker's label for the image as the file wrote it (cli/compose/convert).
IMAGE_LABEL = "com.docker.stack.image"
PROTOCOLS = ("tcp", "udp", "sctp")
MODES = ("replicated", "global", "replicated-job", "global-job")
CONDITIONS = {
    "none": RestartCondition.NONE,
    "on-failure": RestartCondition.ON_FAILURE,
    "any": RestartCondition.ANY,
}

# (path, at most this many bytes) -> the file's bytes, or OSError.
ReadFile = Callable[[str, int], bytes]


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``stack.deploy`` is asked for: every service of the stack, and the
    secrets and configs it creates (external ones are only named by services)."""

    stack: str
    services: tuple[ServiceSpec, ...]
    secrets: tuple[SecretSpec, ...]
    configs: tuple[ConfigSpec, ...]


def stack_labels(stack: str, labels: dict[str, str]) -> dict[str, str]:
    return {**labels, NAMESPACE_LABEL: stack}


def convert(compose: ComposeFile, stack: str, base_dir: str, read_file: ReadFile) -> Plan:
    """The stack's specs; ``base_dir`` is the compose file's directory, which
    secret and config files are relative to."""
    check_stack_name(stack)
    secrets = tuple(
        SecretSpec(annotations=a, data=d)
        for a, d in _files("secret", compose.secrets, stack, base_dir, read_file)
    )
    configs = tuple(
        ConfigSpec(annotations=a, data=d)
        for a, d in _files("config", compose.configs, stack, base_dir, read_file)
    )
    services = tuple(_service(s, stack, compose, base_dir) for s in compose.services)
    return Plan(stack, services, secrets, configs)


@contextmanager
def _at(at: At) -> Iterator[None]:
    """A refusal from the shared checks, said at ``at``'s place in the file."""
    try:
        yield
    except ComposeError:
        raise
    except InvalidArgument as err:
        at.fail(str(err))


def _checked(at: At, check: Callable[[], object]) -> None:
    with _at(at):
        check()


def _files(
    which: refs.Which,
    defs: dict[str, FileDef],
    stack: str,
    base_dir: str,
    read_file: ReadFile,
) -> list[tuple[Annotations, bytes]]:
    out: list[tuple[Annotations, bytes]] = []
    for key, d in defs.items():
        name = d.name or f"{stack}_{key}"
        with _at(d.at):
            refs.validate_name(name)
        if d.external:
            continue
        file_at = d.file_at or d.at
        path = posixpath.join(base_dir, d.file) if base_dir else d.file
        limit = refs.MAX_SIZE[which]
        try:
            data = read_file(path, limit + 1)
        except OSError as exc:
            file_at.fail(f"cannot read {d.file}: {exc.strerror or exc}")
        except ValueError:
            # open() refuses a path with a NUL in it.
            file_at.fail(f"cannot read {d.file!r}: a path cannot hold a NUL character")
        with _at(file_at):
            refs.validate_data(which, data, read_to=limit + 1)
        out.append((Annotations(name=name, labels=stack_labels(stack, d.labels)), data))
    return out


def _seconds(d: Duration | None, what: str) -> float | None:
    if d is None:
        return None
    try:
        return units.parse_duration(d.text, what)
    except InvalidArgument as err:
        d.at.fail(str(err))


def _cpus(q: Quantity | None) -> int:
    if q is None:
        return 0
    try:
        return units.parse_cpus(q.text, "cpus")
    except InvalidArgument as err:
        q.at.fail(str(err))


def _memory(q: Quantity | None) -> int:
    if q is None:
        return 0
    try:
        return units.parse_memory(q.text, "memory")
    except InvalidArgument as err:
        q.at.fail(str(err))


def _service(s: ServiceDef, stack: str, compose: ComposeFile, base_dir: str) -> ServiceSpec:
    name = f"{stack}_{s.name}"
    command, args = s.entrypoint or (), s.command or ()
    if not s.image and not command:
        # Nothing for an image to supply: the command is the whole of it.
        command, args = args, ()
    stop_signal = ""
    if s.stop_signal is not None:
        text, sig_at = s.stop_signal
        try:
            stop_signal = parse_stop_signal(text)
        except InvalidArgument as err:
            sig_at.fail(str(err))
    grace = _seconds(s.stop_grace_period, "stop_grace_period")
    container = ContainerSpec(
        image=s.image,
        command=command,
        args=args,
        env=s.environment,
        dir=s.working_dir,
        user=s.user,
        labels=stack_labels(stack, s.labels),
        stop_grace_period=10.0 if grace is None else grace,
        stop_signal=stop_signal,
        mounts=tuple(_mount(v, stack, compose.volumes, base_dir) for v in s.volumes),
        healthcheck=_health(s.health),
        secrets=tuple(
            sorted(
                (_secret_ref(r, stack, compose.secrets) for r in s.secrets),
                key=lambda r: r.secret_name,
            )
        ),
        configs=tuple(
            sorted(
                (_config_ref(r, stack, compose.configs) for r in s.configs),
                key=lambda r: r.config_name,
            )
        ),
    )
    task = TaskSpec(
        container=container,
        resources=ResourceRequirements(
            limits=Resources(nano_cpus=_cpus(s.limit_cpus), memory_bytes=_memory(s.limit_memory)),
            reservations=Resources(
                nano_cpus=_cpus(s.reserve_cpus), memory_bytes=_memory(s.reserve_memory)
            ),
        ),
        restart=_restart(s),
        placement=Placement(
            constraints=s.constraints,
            preferences=s.preferences,
            max_replicas=s.max_replicas_per_node or 0,
        ),
        ports=tuple(_port(p) for p in s.ports),
    )
    spec = ServiceSpec(
        annotations=Annotations(
            name=name,
            labels={**stack_labels(stack, s.deploy_labels), IMAGE_LABEL: s.image},
        ),
        task=task,
        mode=_mode(s),
        update=_update(s.update, "update_config"),
        rollback=_update(s.rollback, "rollback_config"),
    )
    # The checks service create gets, at the part of the file they concern.
    _checked(s.placement_at or s.at, lambda: validate_placement(spec))
    _checked(s.health_at or s.at, lambda: validate_healthcheck(spec.task.container.healthcheck))
    _checked(s.update_at or s.at, lambda: validate_update_config(spec.update, "update"))
    _checked(s.rollback_at or s.at, lambda: validate_update_config(spec.rollback, "rollback"))
    _checked(s.at, lambda: validate_service_spec(spec))
    _checked(s.at, lambda: refs.check_references(spec.task.container))
    return spec


def _mode(s: ServiceDef) -> ServiceMode:
    at = s.mode_at or s.at
    if s.mode not in MODES:
        at.fail(f"unknown mode {s.mode!r}: use replicated, global, replicated-job or global-job")
    if s.replicas is not None:
        if s.mode in ("global", "global-job"):
            (s.replicas_at or at).fail(
                "replicas can only be used with replicated or replicated-job mode"
            )
        if s.replicas < 0:
            (s.replicas_at or at).fail(f"replicas must be 0 or more, not {s.replicas}")
    if s.mode == "replicated-job":
        total = 1 if s.replicas is None else s.replicas
        return ServiceMode(kind="replicated-job", total_completions=total, max_concurrent=total)
    if s.mode == "replicated":
        return ServiceMode(kind="replicated", replicas=1 if s.replicas is None else s.replicas)
    return ServiceMode(kind="global" if s.mode == "global" else "global-job")


def _restart(s: ServiceDef) -> RestartPolicy:
    # A job's tasks are restarted only when they fail, as service create has it.
    jobs = s.mode in ("replicated-job", "global-job")
    policy = RestartPolicy(condition=RestartCondition.ON_FAILURE) if jobs else RestartPolicy()
    r = s.restart
    if r is None:
        return policy
    if r.condition is not None:
        condition = CONDITIONS.get(r.condition)
        if condition is None:
            (r.at or s.at).fail(
                f"invalid restart condition {r.condition!r}: choose none, on-failure or any"
            )
        policy = replace(policy, condition=condition)
    delay = _seconds(r.delay, "restart delay")
    if delay is not None:
        policy = replace(policy, delay=delay)
    if r.max_attempts is not None:
        if r.max_attempts < 0:
            (r.at or s.at).fail("max_attempts must be 0 or more")
        policy = replace(policy, max_attempts=r.max_attempts)
    window = _seconds(r.window, "restart window")
    if window is not None:
        policy = replace(policy, window=window)
    return policy


def _update(u: Update | None, what: str) -> UpdateConfig:
    config = UpdateConfig()
    if u is None:
        return config
    changes: dict[str, object] = {}
    if u.parallelism is not None:
        changes["parallelism"] = u.parallelism
    for key, d in (("delay", u.delay), ("monitor", u.monitor)):
        seconds = _seconds(d, f"{what} {key}")
        if seconds is not None:
            changes[key] = seconds
    if u.failure_action is not None:
        changes["failure_action"] = u.failure_action
    if u.max_failure_ratio is not None:
        changes["max_failure_ratio"] = u.max_failure_ratio
    if u.order is not None:
        changes["order"] = u.order
    return replace(config, **changes)


def _health(h: Health | None) -> HealthConfig:
    if h is None:
        return HealthConfig()
    if h.disable:
        return HealthConfig(test=("NONE",))
    return HealthConfig(
        test=h.test or (),
        interval=_seconds(h.interval, "healthcheck interval") or 0.0,
        timeout=_seconds(h.timeout, "healthcheck timeout") or 0.0,
        retries=h.retries or 0,
        start_period=_seconds(h.start_period, "healthcheck start_period") or 0.0,
    )


def _port(p: Port) -> PortConfig:
    for number in (p.target, p.published):
        if not 1 <= number <= 65535:
            p.at.fail(f"port {number} is out of range: ports go from 1 to 65535")
    if p.protocol not in PROTOCOLS:
        p.at.fail(f"unknown protocol {p.protocol!r}: use tcp, udp or sctp")
    return PortConfig(
        target_port=p.target, published_port=p.published, protocol=p.protocol, publish_mode="host"
    )


def _mount(v: VolumeUse, stack: str, defs: dict[str, VolumeDef], base_dir: str) -> Mount:
    """A bind's relative source is relative to the compose file; a named
    volume is the stack's (STACK_name) unless external or given a name."""
    if v.kind == "bind":
        source = posixpath.normpath(posixpath.join(base_dir, v.source))
        if not source.startswith("/"):
            v.at.fail(
                f"bind source {v.source!r}: give an absolute path (no directory to resolve it in)"
            )
        return Mount(type="bind", source=source, target=v.target, readonly=v.readonly)
    name = v.source
    if name:
        d = defs.get(name)
        if d is None:
            v.at.fail(f'undefined volume "{name}": declare it under the top-level volumes')
        name = d.name or (name if d.external else f"{stack}_{name}")
    return Mount(type="volume", source=name, target=v.target, readonly=v.readonly)


def _source(which: refs.Which, r: Reference, stack: str, defs: dict[str, FileDef]) -> str:
    d = defs.get(r.source)
    if d is None:
        # Docker's words.
        r.at.fail(f'undefined {which} "{r.source}": declare it under the top-level {which}s')
    return d.name or f"{stack}_{r.source}"


def _ref_fields(r: Reference) -> tuple[str, str, str, int]:
    mode = refs.DEFAULT_MODE if r.mode is None else r.mode
    return r.target or r.source, r.uid or "0", r.gid or "0", mode


def _secret_ref(r: Reference, stack: str, defs: dict[str, FileDef]) -> SecretReference:
    name = _source("secret", r, stack, defs)
    target, uid, gid, mode = _ref_fields(r)
    return SecretReference(secret_name=name, target=target, uid=uid, gid=gid, mode=mode)


def _config_ref(r: Reference, stack: str, defs: dict[str, FileDef]) -> ConfigReference:
    name = _source("config", r, stack, defs)
    target, uid, gid, mode = _ref_fields(r)
    return ConfigReference(config_name=name, target=target, uid=uid, gid=gid, mode=mode)
