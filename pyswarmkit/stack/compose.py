"""A Compose file's node tree -> checked plain data, each part with its place.

Only what ``docker stack deploy`` reads and we can do is accepted; any other
key is refused with its position, never ignored (a setting silently dropped
would deploy something other than what the file says). Pure: no files are
read here (see convert.py for the secret and config files).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyswarmkit.stack.nodes import At

TOP_KEYS = frozenset({"version", "services", "secrets", "configs", "volumes"})
# Compose's own keys that a stack of ours cannot honour: refused by name.
TOP_UNSUPPORTED = frozenset({"networks", "name", "include"})

SERVICE_KEYS = frozenset(
    {
        "image",
        "command",
        "entrypoint",
        "environment",
        "deploy",
        "healthcheck",
        "ports",
        "secrets",
        "configs",
        "labels",
        "working_dir",
        "user",
        "stop_grace_period",
        "stop_signal",
        "volumes",
    }
)
SERVICE_UNSUPPORTED = frozenset(
    {
        "build",
        "cap_add",
        "cap_drop",
        "cgroup_parent",
        "container_name",
        "credential_spec",
        "depends_on",
        "devices",
        "dns",
        "dns_search",
        "domainname",
        "env_file",
        "expose",
        "external_links",
        "extra_hosts",
        "hostname",
        "init",
        "ipc",
        "isolation",
        "links",
        "logging",
        "mac_address",
        "network_mode",
        "networks",
        "pid",
        "privileged",
        "read_only",
        "restart",
        "security_opt",
        "shm_size",
        "stdin_open",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "userns_mode",
    }
)
DEPLOY_KEYS = frozenset(
    {
        "mode",
        "replicas",
        "placement",
        "resources",
        "restart_policy",
        "update_config",
        "rollback_config",
        "labels",
    }
)
DEPLOY_UNSUPPORTED = frozenset({"endpoint_mode"})
PLACEMENT_KEYS = frozenset({"constraints", "preferences", "max_replicas_per_node"})
RESOURCES_KEYS = frozenset({"limits", "reservations"})
LIMIT_KEYS = frozenset({"cpus", "memory"})
LIMIT_UNSUPPORTED = frozenset({"pids", "generic_resources", "devices"})
RESTART_KEYS = frozenset({"condition", "delay", "max_attempts", "window"})
UPDATE_KEYS = frozenset(
    {"parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"}
)
HEALTH_KEYS = frozenset({"test", "interval", "timeout", "retries", "start_period", "disable"})
HEALTH_UNSUPPORTED = frozenset({"start_interval"})
PORT_KEYS = frozenset({"target", "published", "protocol", "mode"})
REFERENCE_KEYS = frozenset({"source", "target", "uid", "gid", "mode"})
FILE_KEYS = frozenset({"file", "external", "name", "labels"})
FILE_UNSUPPORTED = frozenset({"driver", "driver_opts", "template_driver", "environment", "content"})
MOUNT_KEYS = frozenset({"type", "source", "target", "read_only"})
MOUNT_UNSUPPORTED = frozenset({"bind", "volume", "tmpfs", "consistency"})
VOLUME_KEYS = frozenset({"external", "name"})
VOLUME_UNSUPPORTED = frozenset({"driver", "driver_opts", "labels"})


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration as written ('10s', '1m30s', or a number of seconds)."""

    text: str
    at: At


@dataclass(frozen=True, slots=True)
class Quantity:
    """CPUs or a memory size as written ('0.5', '512M')."""

    text: str
    at: At


@dataclass(frozen=True, slots=True)
class Port:
    target: int
    published: int
    protocol: str
    at: At


@dataclass(frozen=True, slots=True)
class Reference:
    """A service's use of a top-level secret or config."""

    source: str
    target: str
    uid: str
    gid: str
    mode: int | None
    at: At


@dataclass(frozen=True, slots=True)
class VolumeUse:
    """A service's ``volumes:`` entry: a bind of a host path, or a volume
    (named, declared at the top level; or anonymous, without a source)."""

    kind: str
    source: str
    target: str
    readonly: bool
    at: At


@dataclass(frozen=True, slots=True)
class VolumeDef:
    key: str
    at: At
    external: bool = False
    name: str = ""


@dataclass(frozen=True, slots=True)
class Update:
    parallelism: int | None = None
    delay: Duration | None = None
    failure_action: str | None = None
    monitor: Duration | None = None
    max_failure_ratio: float | None = None
    order: str | None = None


@dataclass(frozen=True, slots=True)
class Health:
    test: tuple[str, ...] | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: int | None = None
    start_period: Duration | None = None
    disable: bool = False


@dataclass(frozen=True, slots=True)
class Restart:
    condition: str | None = None
    delay: Duration | None = None
    max_attempts: int | None = None
    window: Duration | None = None
    at: At | None = None


@dataclass(slots=True)
class ServiceDef:
    name: str
    at: At
    image: str = ""
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    stop_grace_period: Duration | None = None
    stop_signal: tuple[str, At] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    mode: str = "replicated"
    mode_at: At | None = None
    replicas: int | None = None
    replicas_at: At | None = None
    constraints: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()
    placement_at: At | None = None
    max_replicas_per_node: int | None = None
    limit_cpus: Quantity | None = None
    limit_memory: Quantity | None = None
    reserve_cpus: Quantity | None = None
    reserve_memory: Quantity | None = None
    restart: Restart | None = None
    update: Update | None = None
    update_at: At | None = None
    rollback: Update | None = None
    rollback_at: At | None = None
    deploy_labels: dict[str, str] = field(default_factory=dict)
    health: Health | None = None
    health_at: At | None = None
    ports: tuple[Port, ...] = ()
    secrets: tuple[Reference, ...] = ()
    configs: tuple[Reference, ...] = ()
    volumes: tuple[VolumeUse, ...] = ()


@dataclass(frozen=True, slots=True)
class FileDef:
    """A top-level secret or config: from a file, or an external one."""

    key: str
    at: At
    file: str = ""
    file_at: At | None = None
    external: bool = False
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ComposeFile:
    services: tuple[ServiceDef, ...]
    secrets: dict[str, FileDef]
    configs: dict[str, FileDef]
    volumes: dict[str, VolumeDef] = field(default_factory=dict)


def read(root: At, environ: Mapping[str, str]) -> ComposeFile:
    """The checked contents of a compose file. ``environ`` gives the values of
    environment entries written without one (``- DEBUG``), as Docker takes
    them from the shell that deploys."""
    top = root.mapping(TOP_KEYS, TOP_UNSUPPORTED)
    if "version" in top:
        top["version"].string()  # accepted and ignored, as Docker does
    if "services" not in top:
        root.fail("the file has no services section")
    services_at = top["services"]
    entries = services_at.mapping()
    if not entries:
        services_at.fail("no services to deploy")
    services = tuple(_service(name, at, environ) for name, at in entries.items())
    secrets = (
        {k: _file(k, at) for k, at in top["secrets"].mapping().items()}
        if ("secrets" in top)
        else {}
    )
    configs = (
        {k: _file(k, at) for k, at in top["configs"].mapping().items()}
        if ("configs" in top)
        else {}
    )
    volumes = (
        {k: _volume_def(k, at) for k, at in top["volumes"].mapping().items()}
        if "volumes" in top
        else {}
    )
    return ComposeFile(services, secrets, configs, volumes)


def _service(name: str, at: At, environ: Mapping[str, str]) -> ServiceDef:
    keys = at.mapping(SERVICE_KEYS, SERVICE_UNSUPPORTED)
    svc = ServiceDef(name=name, at=at)
    if "image" in keys:
        svc.image = keys["image"].text()
    if "command" in keys:
        svc.command = _argv(keys["command"])
    if "entrypoint" in keys:
        svc.entrypoint = _argv(keys["entrypoint"])
    if "environment" in keys:
        svc.environment = _environment(keys["environment"], environ)
    if "working_dir" in keys:
        svc.working_dir = keys["working_dir"].text()
    if "user" in keys:
        svc.user = keys["user"].string()
    if "stop_grace_period" in keys:
        svc.stop_grace_period = _duration(keys["stop_grace_period"])
    if "stop_signal" in keys:
        svc.stop_signal = (keys["stop_signal"].string(), keys["stop_signal"])
    if "labels" in keys:
        svc.labels = _labels(keys["labels"])
    if "deploy" in keys:
        _deploy(svc, keys["deploy"])
    if "healthcheck" in keys:
        svc.health = _health(keys["healthcheck"])
        svc.health_at = keys["healthcheck"]
    if "ports" in keys:
        svc.ports = tuple(_port(p) for p in keys["ports"].items())
    if "secrets" in keys:
        svc.secrets = tuple(_reference(r) for r in keys["secrets"].items())
    if "configs" in keys:
        svc.configs = tuple(_reference(r) for r in keys["configs"].items())
    if "volumes" in keys:
        svc.volumes = tuple(_volume(v) for v in keys["volumes"].items())
    return svc


def _argv(at: At) -> tuple[str, ...]:
    """A list as it is, or a string split as a shell would (Docker's compose
    loader does the same)."""
    if at.is_list:
        return tuple(at.strings())
    # A number is no command (Docker's schema: a string or a list).
    text = at.text()
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        at.fail(f"cannot split {text!r} as a shell would: {exc}")


def _environment(at: At, environ: Mapping[str, str]) -> tuple[str, ...]:
    """KEY=VALUE entries, sorted as Docker sorts them (so reordering the file
    changes nothing). A key without a value takes the deploying shell's, and
    is left out when that has none."""
    out: dict[str, str | None] = {}
    if at.is_mapping:
        for key, given in at.mapping().items():
            out[key] = given.scalar_text()
    else:
        for item in at.items():
            text = item.string()
            key, sep, written = text.partition("=")
            if not key:
                item.fail(f"invalid environment entry {text!r}: use KEY=VALUE")
            out[key] = written if sep else None
    entries: list[str] = []
    for key, maybe in out.items():
        value = environ.get(key) if maybe is None else maybe
        if value is not None:
            entries.append(f"{key}={value}")
    return tuple(sorted(entries))


def _labels(at: At) -> dict[str, str]:
    """A mapping, or a list of KEY=VALUE."""
    if at.is_mapping:
        return {k: v.scalar_text() or "" for k, v in at.mapping().items()}
    labels: dict[str, str] = {}
    for item in at.items():
        text = item.string()
        key, _, value = text.partition("=")
        if not key:
            item.fail(f"invalid label {text!r}: use KEY=VALUE")
        labels[key] = value
    return labels


def _duration(at: At) -> Duration:
    if at.is_mapping or at.is_list or at.is_null:
        at.fail("expected a duration such as 10s or 1m30s")
    return Duration(at.string(), at)


def _quantity(at: At) -> Quantity:
    if at.is_mapping or at.is_list or at.is_null:
        at.fail("expected a single value")
    return Quantity(at.string(), at)


def _deploy(svc: ServiceDef, at: At) -> None:
    keys = at.mapping(DEPLOY_KEYS, DEPLOY_UNSUPPORTED)
    if "mode" in keys:
        svc.mode = keys["mode"].text()
        svc.mode_at = keys["mode"]
    if "replicas" in keys:
        svc.replicas = keys["replicas"].integer()
        svc.replicas_at = keys["replicas"]
    if "placement" in keys:
        _placement(svc, keys["placement"])
    if "resources" in keys:
        res = keys["resources"].mapping(RESOURCES_KEYS)
        if "limits" in res:
            lim = res["limits"].mapping(LIMIT_KEYS, LIMIT_UNSUPPORTED)
            svc.limit_cpus = _quantity(lim["cpus"]) if "cpus" in lim else None
            svc.limit_memory = _quantity(lim["memory"]) if "memory" in lim else None
        if "reservations" in res:
            resv = res["reservations"].mapping(LIMIT_KEYS, LIMIT_UNSUPPORTED)
            svc.reserve_cpus = _quantity(resv["cpus"]) if "cpus" in resv else None
            svc.reserve_memory = _quantity(resv["memory"]) if "memory" in resv else None
    if "restart_policy" in keys:
        svc.restart = _restart(keys["restart_policy"])
    if "update_config" in keys:
        svc.update = _update(keys["update_config"])
        svc.update_at = keys["update_config"]
    if "rollback_config" in keys:
        svc.rollback = _update(keys["rollback_config"])
        svc.rollback_at = keys["rollback_config"]
    if "labels" in keys:
        svc.deploy_labels = _labels(keys["labels"])


def _placement(svc: ServiceDef, at: At) -> None:
    keys = at.mapping(PLACEMENT_KEYS)
    svc.placement_at = at
    if "constraints" in keys:
        svc.constraints = tuple(keys["constraints"].strings())
    if "preferences" in keys:
        prefs: list[str] = []
        for item in keys["preferences"].items():
            spread = item.mapping(frozenset({"spread"}))
            if "spread" not in spread:
                item.fail("a preference needs spread: LABEL")
            prefs.append("spread=" + spread["spread"].string())
        svc.preferences = tuple(prefs)
    if "max_replicas_per_node" in keys:
        svc.max_replicas_per_node = keys["max_replicas_per_node"].integer()


def _restart(at: At) -> Restart:
    keys = at.mapping(RESTART_KEYS)
    return Restart(
        condition=keys["condition"].text() if "condition" in keys else None,
        delay=_duration(keys["delay"]) if "delay" in keys else None,
        max_attempts=keys["max_attempts"].integer() if "max_attempts" in keys else None,
        window=_duration(keys["window"]) if "window" in keys else None,
        at=at,
    )


def _update(at: At) -> Update:
    keys = at.mapping(UPDATE_KEYS)
    return Update(
        parallelism=keys["parallelism"].integer() if "parallelism" in keys else None,
        delay=_duration(keys["delay"]) if "delay" in keys else None,
        failure_action=keys["failure_action"].text() if "failure_action" in keys else None,
        monitor=_duration(keys["monitor"]) if "monitor" in keys else None,
        max_failure_ratio=(
            keys["max_failure_ratio"].number() if "max_failure_ratio" in keys else None
        ),
        order=keys["order"].text() if "order" in keys else None,
    )


def _health(at: At) -> Health:
    keys = at.mapping(HEALTH_KEYS, HEALTH_UNSUPPORTED)
    test: tuple[str, ...] | None = None
    if "test" in keys:
        t = keys["test"]
        # A string is a shell command, as Docker's compose loader reads it.
        test = tuple(t.strings()) if t.is_list else ("CMD-SHELL", t.string())
    disable = keys["disable"].boolean() if "disable" in keys else False
    if disable and test is not None:
        at.fail("test and disable can't be set at the same time")
    return Health(
        test=test,
        interval=_duration(keys["interval"]) if "interval" in keys else None,
        timeout=_duration(keys["timeout"]) if "timeout" in keys else None,
        retries=keys["retries"].integer() if "retries" in keys else None,
        start_period=_duration(keys["start_period"]) if "start_period" in keys else None,
        disable=disable,
    )


def _port(at: At) -> Port:
    """The long form (target, published, protocol, mode: host), or the short
    'PUBLISHED:TARGET[/PROTOCOL]'. Both publish on the node that runs the task
    (host mode): there is no routing mesh to publish through."""
    if not at.is_mapping:
        text = at.string()
        body, _, protocol = text.partition("/")
        published, sep, target = body.partition(":")
        if not sep or not published.isdigit() or not target.isdigit():
            at.fail(
                f"invalid port {text!r}: use PUBLISHED:TARGET[/tcp|udp] "
                "(a host-mode port: no address, no range)"
            )
        return Port(int(target), int(published), protocol or "tcp", at)
    keys = at.mapping(PORT_KEYS)
    if "target" not in keys:
        at.fail("a port needs a target")
    mode = keys["mode"].text() if "mode" in keys else "ingress"
    if mode != "host":
        (keys.get("mode") or at).fail(
            f"port mode {mode!r} is not supported: publish in mode host "
            "(each task's node publishes its port)"
        )
    if "published" not in keys:
        at.fail("a host-mode port needs a published port")
    return Port(
        target=keys["target"].integer(),
        published=keys["published"].integer(),
        protocol=keys["protocol"].text() if "protocol" in keys else "tcp",
        at=at,
    )


def _reference(at: At) -> Reference:
    """``- NAME`` or ``- {source, target, uid, gid, mode}``."""
    if not at.is_mapping:
        name = at.string()
        return Reference(name, "", "", "", None, at)
    keys = at.mapping(REFERENCE_KEYS)
    if "source" not in keys:
        at.fail("a reference needs a source")
    mode: int | None = None
    if "mode" in keys:
        m = keys["mode"]
        if m.is_mapping or m.is_list or m.is_null:
            m.fail("expected a file mode such as 0400")
        raw = m.string()
        try:
            # YAML reads 0400 as octal already; a quoted '0400' is octal too.
            mode = int(raw, 8) if m.node.tag.endswith(":str") else m.integer()
        except ValueError:
            m.fail(f"expected a file mode such as 0400, got {raw!r}")
        if not 0 <= mode <= 0o777:
            m.fail(f"mode {raw} is not a file mode (0 to 0777)")
    return Reference(
        source=keys["source"].string(),
        target=keys["target"].string() if "target" in keys else "",
        uid=keys["uid"].string() if "uid" in keys else "",
        gid=keys["gid"].string() if "gid" in keys else "",
        mode=mode,
        at=at,
    )


def _file(key: str, at: At) -> FileDef:
    keys = at.mapping(FILE_KEYS, FILE_UNSUPPORTED)
    external = False
    name = keys["name"].string() if "name" in keys else ""
    if "external" in keys:
        ext = keys["external"]
        if ext.is_mapping:
            # The old form, external: {name: NAME}.
            inner = ext.mapping(frozenset({"name"}))
            external = True
            if "name" in inner:
                name = inner["name"].string()
        else:
            external = ext.boolean()
    labels = _labels(keys["labels"]) if "labels" in keys else {}
    if external:
        if "file" in keys:
            keys["file"].fail("an external one has no file: it exists already")
        return FileDef(key, at, external=True, name=name or key, labels=labels)
    if "file" not in keys:
        at.fail("needs a file (or external: true)")
    return FileDef(
        key, at, file=keys["file"].string(), file_at=keys["file"], name=name, labels=labels
    )


def _volume(at: At) -> VolumeUse:
    """``[SOURCE:]TARGET[:ro|rw]`` or the long form (type, source, target,
    read_only). A source that is a path (/x, ./x, ../x) is a bind mount."""
    if not at.is_mapping:
        text = at.string()
        parts = text.split(":")
        if len(parts) > 3:
            at.fail(f"invalid volume {text!r}: use [SOURCE:]TARGET[:ro|rw]")
        mode = parts[2] if len(parts) == 3 else "rw"
        source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        if mode not in ("ro", "rw"):
            at.fail(f"invalid volume {text!r}: its mode is ro or rw, not {mode!r}")
        kind = "bind" if source.startswith(("/", ".")) else "volume"
        readonly = mode == "ro"
    else:
        keys = at.mapping(MOUNT_KEYS, MOUNT_UNSUPPORTED)
        kind = keys["type"].text() if "type" in keys else "volume"
        if kind not in ("bind", "volume"):
            keys["type"].fail(f"volume type {kind!r} is not supported: use bind or volume")
        if "target" not in keys:
            at.fail("a volume needs a target")
        source = keys["source"].string() if "source" in keys else ""
        target = keys["target"].string()
        readonly = keys["read_only"].boolean() if "read_only" in keys else False
        if kind == "bind" and not source:
            at.fail("a bind mount needs a source")
    if not target.startswith("/"):
        at.fail(f"volume target {target!r} must be an absolute path")
    return VolumeUse(kind, source, target, readonly, at)


def _volume_def(key: str, at: At) -> VolumeDef:
    keys = at.mapping(VOLUME_KEYS, VOLUME_UNSUPPORTED)
    external = keys["external"].boolean() if "external" in keys else False
    name = keys["name"].string() if "name" in keys else ""
    return VolumeDef(key, at, external, name)
