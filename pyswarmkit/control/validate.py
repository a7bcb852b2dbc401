"""Checks on what users ask for, done before anything is written."""

from __future__ import annotations

import re

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import ContainerSpec, HealthConfig, ServiceSpec, UpdateConfig
from pyswarmkit.control.resolve import quoted
from pyswarmkit.scheduler.constraint import parse_constraints, parse_preferences

# SwarmKit's rule for service names: a DNS label in which '_' may stand
# where '-' may (a stack names its services STACK_service).
_NAME = re.compile(r"^[a-zA-Z0-9](?:[-_]*[a-zA-Z0-9]+)*$")
MAX_NAME = 63
_ENV_KEY = re.compile(r"^[^=\s]+$")
MAX_REPLICAS = 100_000
MODES = ("replicated", "global", "replicated-job", "global-job")


def validate_name(name: str) -> None:
    if not name:
        raise InvalidArgument("service name is required: pass --name")
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise InvalidArgument(
            f"invalid service name {quoted(name)}: use letters, digits, '-' and '_', "
            "at most 63 characters, starting and ending with a letter or digit"
        )


def validate_service_spec(spec: ServiceSpec) -> None:
    validate_name(spec.annotations.name)
    validate_mode(spec)
    c = spec.task.container
    _refuse_nul(c)
    if not c.command and not c.image:
        raise InvalidArgument("a service needs something to run: pass --command (or --image)")
    for item in c.env:
        key, sep, _ = item.partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise InvalidArgument(f"invalid environment entry {item!r}: use KEY=VALUE")
    if c.stop_grace_period < 0:
        raise InvalidArgument("stop grace period must not be negative")
    targets: set[str] = set()
    for m in c.mounts:
        # As SwarmKit's control API: refused here rather than by every node's engine.
        if m.target in targets:
            raise InvalidArgument(f"duplicate mount point: {m.target}")
        targets.add(m.target)
    validate_healthcheck(c.healthcheck)
    r = spec.task.restart
    if r.delay < 0 or r.window < 0 or r.max_attempts < 0:
        raise InvalidArgument("restart delay, window and max attempts must not be negative")
    validate_placement(spec)
    validate_update_config(spec.update, "update")
    validate_update_config(spec.rollback, "rollback")


# Docker refuses health durations below this, 0 (its default) apart.
MIN_HEALTH_DURATION = 0.001
TESTS = ("NONE", "CMD", "CMD-SHELL")


def validate_healthcheck(check: HealthConfig) -> None:
    """Docker's own checks on a healthcheck, in its words."""
    for name, value in (
        ("interval", check.interval),
        ("timeout", check.timeout),
        ("start period", check.start_period),
    ):
        if value < 0:
            raise InvalidArgument(f"health {name} must not be negative")
        if 0 < value < MIN_HEALTH_DURATION:
            raise InvalidArgument(f"health {name} must be 0 (the default) or at least 1ms")
    if check.retries < 0:
        raise InvalidArgument("health retries must not be negative")
    test = check.test
    if not test:
        # Settings without a command tune the image's own check, as Docker allows.
        return
    if test[0] not in TESTS:
        raise InvalidArgument(
            f"healthcheck test must start with NONE, CMD or CMD-SHELL, not {test[0]!r}"
        )
    if test[0] == "NONE" and (
        len(test) > 1 or check.interval or check.timeout or check.retries or check.start_period
    ):
        raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
    if test[0] != "NONE" and (len(test) < 2 or not any(t.strip() for t in test[1:])):
        raise InvalidArgument("the health command is empty: pass --health-cmd CMD")


FAILURE_ACTIONS = {"update": ("pause", "continue", "rollback"), "rollback": ("pause", "continue")}
ORDERS = ("stop-first", "start-first")


def validate_update_config(config: UpdateConfig, what: str) -> None:
    """``what`` is "update" or "rollback"; a rollback is never rolled back."""
    if config.parallelism < 0:
        raise InvalidArgument(f"{what} parallelism must be 0 (all at once) or more")
    if config.delay < 0 or config.monitor < 0:
        raise InvalidArgument(f"{what} delay and monitor must not be negative")
    if not 0 <= config.max_failure_ratio <= 1:
        raise InvalidArgument(f"{what} max failure ratio must be between 0 and 1")
    actions = FAILURE_ACTIONS[what]
    if config.failure_action not in actions:
        raise InvalidArgument(
            f"{what} failure action must be one of {'|'.join(actions)}, "
            f"not {config.failure_action!r}"
        )
    if config.order not in ORDERS:
        raise InvalidArgument(
            f"{what} order must be one of {'|'.join(ORDERS)}, not {config.order!r}"
        )


def _count(what: str, value: int) -> None:
    if value < 0:
        raise InvalidArgument(f"{what} must be 0 or more, not {value}")
    if value > MAX_REPLICAS:
        raise InvalidArgument(f"{what} must be at most {MAX_REPLICAS}, not {value}")


def validate_mode(spec: ServiceSpec) -> None:
    mode = spec.mode
    if mode.kind not in MODES:
        raise InvalidArgument(
            f"unknown service mode {mode.kind!r}: use replicated, global, "
            "replicated-job or global-job"
        )
    _count("replicas", mode.replicas)
    if mode.kind == "replicated-job":
        _count("total completions (--replicas of a job)", mode.total_completions)
        _count("max concurrent", mode.max_concurrent)


def _refuse_nul(c: ContainerSpec) -> None:
    """NUL cannot go into a command line, a path or an environment."""
    fields: list[tuple[str, tuple[str, ...]]] = [
        ("image", (c.image,)),
        ("command", c.command),
        ("args", c.args),
        ("env", c.env),
        ("dir", (c.dir,)),
        ("user", (c.user,)),
        ("labels", (*c.labels, *c.labels.values())),
        ("healthcheck.test", c.healthcheck.test),
    ]
    for name, values in fields:
        if any("\0" in v for v in values):
            raise InvalidArgument(
                f"field spec.task.container.{name} must not contain a NUL character"
            )


def validate_placement(spec: ServiceSpec) -> None:
    """Constraints and preferences are refused here, at create/update, not found
    broken at scheduling time."""
    placement = spec.task.placement
    parse_constraints(placement.constraints)
    parse_preferences(placement.preferences)
    if placement.max_replicas < 0:
        raise InvalidArgument("max replicas per node must be 0 (no limit) or more")
    res = spec.task.resources
    for r in (res.reservations, res.limits):
        if r.nano_cpus < 0 or r.memory_bytes < 0 or any(v < 0 for v in r.generic.values()):
            raise InvalidArgument("resource reservations and limits must not be negative")
    lim, resv = res.limits, res.reservations
    if lim.nano_cpus and resv.nano_cpus > lim.nano_cpus:
        raise InvalidArgument("the CPU reservation is larger than the CPU limit")
    if lim.memory_bytes and resv.memory_bytes > lim.memory_bytes:
        raise InvalidArgument("the memory reservation is larger than the memory limit")
    seen: set[tuple[int, str]] = set()
    for port in spec.task.ports:
        key = (port.published_port, port.protocol)
        if key in seen:
            raise InvalidArgument(f"port {port.published_port}/{port.protocol} is published twice")
        seen.add(key)
