"""The Docker executor: each task is a container on a Docker engine, through
the ``docker`` SDK.

A task's container is named ``<service>.<slot>.<task-id>`` and labelled as
SwarmKit labels it (``com.docker.swarm.service.id`` and so on), so a restarted
swarmd finds its containers by label, takes back those still running and has
the others removed. Docker never restarts a container (restart policy "no"):
the orchestrator does, with a new task.

Every call here may block on the engine (an image pull, a stop), so the
executor says ``blocking``: the executor actor runs its steps in a bounded
worker pool. Exits are not polled: one thread follows the engine's event
stream and reports each watched container's ``die``; when the stream breaks
(the engine restarted) it reconnects and compares what it watches with what
the engine has, reporting the containers that died meanwhile.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import Mount as DockerMount

from pyswarmkit import clock
from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import (
    EngineDescription,
    NodeDescription,
    Platform,
    Resources,
    Task,
)
from pyswarmkit.executor.base import EXIT_UNKNOWN, ExecutorError, Found, LogReader
from pyswarmkit.executor.health import disabled
from pyswarmkit.executor.taskfiles import TaskFile, TaskFiles, default_root
from pyswarmkit.logs.docker import DockerLogReader

log = logging.getLogger(__name__)

LABEL_SERVICE_ID = "com.docker.swarm.service.id"
LABEL_SERVICE_NAME = "com.docker.swarm.service.name"
LABEL_TASK_ID = "com.docker.swarm.task.id"
LABEL_TASK_NAME = "com.docker.swarm.task.name"
LABEL_NODE_ID = "com.docker.swarm.node.id"
# Where a container finds its secrets, as in Docker.
SECRETS_DIR = "/run/secrets"
# Seconds one engine call may take before it counts as failed (pulls excepted).
API_TIMEOUT = 60
# How long to wait before reconnecting to the event stream of an engine that went away.
RECONNECT_DELAY = 0.5

ExitNotify = Callable[[str, int, str], None]
HealthNotify = Callable[[str, str], None]
# The engine's health events: "health_status: healthy" and so on.
HEALTH_EVENT = "health_status"


def engine_address(addr: str | None) -> str | None:
    """The engine to use: ``--engine-addr``, else DOCKER_HOST, else the
    standard socket (None lets the SDK pick those two)."""
    return addr or None


def connect(addr: str | None) -> docker.DockerClient:
    """A client for a running engine; InvalidArgument in one line when there is none."""
    try:
        client = (
            docker.DockerClient(base_url=addr, timeout=API_TIMEOUT)
            if addr
            else docker.from_env(timeout=API_TIMEOUT)
        )
        client.ping()
    except DockerException as exc:
        where = addr or "DOCKER_HOST or the standard socket"
        raise InvalidArgument(
            f"no Docker engine answers at {where}: {_short(exc)}; start one, or pass --engine-addr"
        ) from None
    return client


def _short(exc: BaseException) -> str:
    """Docker's own message, on one line."""
    text = str(exc.explanation) if isinstance(exc, APIError) and exc.explanation else str(exc)
    return " ".join(text.split())


def task_name(task: Task) -> str:
    """``<service>.<slot>.<task-id>``, the name SwarmKit gives a task's container."""
    service = task.service_name or task.service_id or "task"
    return f"{service}.{task.slot}.{task.id}"


def container_labels(task: Task, node_id: str) -> dict[str, str]:
    labels = dict(task.spec.container.labels)
    labels.update(
        {
            LABEL_SERVICE_ID: task.service_id,
            LABEL_SERVICE_NAME: task.service_name,
            LABEL_TASK_ID: task.id,
            LABEL_TASK_NAME: task_name(task),
            LABEL_NODE_ID: node_id,
        }
    )
    return labels


def create_args(task: Task, node_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments of the engine's container create for a task, and of its
    host config. Pure."""
    c = task.spec.container
    limits = task.spec.resources.limits
    args: dict[str, Any] = {
        "image": c.image,
        "name": task_name(task),
        "labels": container_labels(task, node_id),
        "stop_timeout": round(c.stop_grace_period),
    }
    # Docker must never restart it: a task that ends is the orchestrator's to replace.
    host: dict[str, Any] = {"restart_policy": {"Name": "no"}}
    if c.stop_signal:
        args["stop_signal"] = c.stop_signal
    health = healthcheck_arg(task)
    if health is not None:
        args["healthcheck"] = health
    # SwarmKit maps the command to the entrypoint and the args to the image's CMD.
    if c.command:
        args["entrypoint"] = list(c.command)
    if c.args:
        args["command"] = list(c.args)
    if c.env:
        args["environment"] = list(c.env)
    if c.dir:
        args["working_dir"] = c.dir
    if c.user:
        args["user"] = c.user
    if limits.nano_cpus:
        host["nano_cpus"] = limits.nano_cpus
    if limits.memory_bytes:
        host["mem_limit"] = limits.memory_bytes
    if c.mounts:
        host["mounts"] = [
            DockerMount(target=m.target, source=m.source, type=m.type, read_only=m.readonly)
            for m in c.mounts
        ]
    published = [p for p in task.spec.ports if p.publish_mode == "host"]
    if published:
        args["ports"] = [(p.target_port, p.protocol) for p in published]
        host["port_bindings"] = {
            f"{p.target_port}/{p.protocol}": p.published_port or None for p in published
        }
    return args, host


def file_mounts(where: dict[TaskFile, Path]) -> list[DockerMount]:
    """Read-only binds of a task's secret and config files where Docker
    puts them: a secret's relative target under /run/secrets, a config's
    relative target under /. Pure."""
    mounts = []
    for f, path in sorted(where.items(), key=lambda item: (item[0].kind, item[0].target)):
        if f.target.startswith("/"):
            target = f.target
        elif f.kind == "secret":
            target = f"{SECRETS_DIR}/{f.target}"
        else:
            target = f"/{f.target}"
        mounts.append(DockerMount(target=target, source=str(path), type="bind", read_only=True))
    return mounts


def healthcheck_arg(task: Task) -> dict[str, Any] | None:
    """The container's ``healthcheck``, as the engine takes it (durations in
    nanoseconds, zero meaning the image's or Docker's default); None leaves the
    image's own check as it is. Pure."""
    check = task.spec.container.healthcheck
    if disabled(check):
        return {"test": ["NONE"]}
    out: dict[str, Any] = {}
    if check.test:
        out["test"] = list(check.test)
    for key, value in (
        ("interval", check.interval),
        ("timeout", check.timeout),
        ("start_period", check.start_period),
    ):
        if value:
            out[key] = round(value * 1e9)
    if check.retries:
        out["retries"] = check.retries
    return out or None


def has_healthcheck(attrs: dict[str, Any]) -> bool:
    """Whether a container, from its inspect data, runs a health check (its
    own or its image's)."""
    test = ((attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def health_of(event: dict[str, Any]) -> str | None:
    """ "healthy" or "unhealthy" from a health event; None for any other event."""
    action = str(event.get("Action", event.get("status", "")))
    kind, _, status = action.partition(":")
    if kind != HEALTH_EVENT:
        return None
    status = status.strip()
    return status if status in ("healthy", "unhealthy") else None


def check_limits(task: Task, resources: Resources) -> None:
    """A limit above what the node has can never be honoured: refuse it in
    words rather than let the engine fail with its own."""
    limits = task.spec.resources.limits
    if resources.nano_cpus and limits.nano_cpus > resources.nano_cpus:
        raise ExecutorError(
            f"CPU limit {limits.nano_cpus / 1e9:g} is above the node's "
            f"{resources.nano_cpus / 1e9:g} CPUs"
        )
    if resources.memory_bytes and limits.memory_bytes > resources.memory_bytes:
        raise ExecutorError(
            f"memory limit {limits.memory_bytes} bytes is above the node's "
            f"{resources.memory_bytes} bytes"
        )


def exit_of(attrs: dict[str, Any]) -> tuple[int, str] | None:
    """A container's exit code and Docker's error, from its inspect data;
    None while it runs."""
    state = attrs.get("State") or {}
    if state.get("Running") or state.get("Restarting"):
        return None
    return int(state.get("ExitCode", EXIT_UNKNOWN)), str(state.get("Error") or "")


def describe_engine(info: dict[str, Any], hostname: str, labels: dict[str, str]) -> NodeDescription:
    """The node description from ``docker info``: its OS, architecture, CPUs,
    memory and engine labels; ``labels`` (from --engine-label) are added."""
    engine_labels: dict[str, str] = {}
    for item in info.get("Labels") or ():
        key, _, value = str(item).partition("=")
        engine_labels[key] = value
    engine_labels.update(labels)
    return NodeDescription(
        hostname=hostname or str(info.get("Name", "")),
        platform=Platform(
            os=str(info.get("OSType", "linux")), architecture=str(info.get("Architecture", ""))
        ),
        resources=Resources(
            nano_cpus=int(info.get("NCPU", 0)) * 1_000_000_000,
            memory_bytes=int(info.get("MemTotal", 0)),
        ),
        engine=EngineDescription(
            engine_version=f"docker {info.get('ServerVersion', '')}".strip(), labels=engine_labels
        ),
    )


class DockerController:
    def __init__(
        self,
        executor: DockerExecutor,
        task: Task,
        container_id: str = "",
        files: tuple[TaskFile, ...] = (),
    ) -> None:
        self.executor = executor
        self.task = task
        self.container_id = container_id
        self.files = files
        # Started with a health check (its own or its image's): it runs only
        # once the engine says it is healthy.
        self.awaits_health = False

    @property
    def client(self) -> docker.DockerClient:
        return self.executor.client

    def prepare(self) -> None:
        c = self.task.spec.container
        if not c.image:
            raise ExecutorError("no image: the docker executor needs --image")
        check_limits(self.task, self.executor.describe().resources)
        self._ensure_image(c.image)
        api = self.client.api
        args, host = create_args(self.task, self.executor.node_id)
        if self.files:
            # Written on this host's tmpfs and bound in: the engine must run on this host.
            try:
                where = self.executor.task_files.write(
                    self.task.id, self.files, owners=True, secret_mode=None
                )
            except OSError as exc:
                self.executor.task_files.remove(self.task.id)
                msg = f"writing the task's secrets and configs failed: {exc}"
                raise ExecutorError(msg) from None
            host["mounts"] = [*host.get("mounts", []), *file_mounts(where)]
        try:
            made = api.create_container(**args, host_config=api.create_host_config(**host))
            container_id = str(made["Id"])
        except APIError as exc:
            if exc.status_code == 409:
                # Made by an earlier attempt of this very task (same name): use it.
                container_id = str(api.inspect_container(task_name(self.task))["Id"])
            else:
                raise ExecutorError(f"creating the container failed: {_short(exc)}") from None
        except DockerException as exc:
            raise ExecutorError(f"creating the container failed: {_short(exc)}") from None
        self.container_id = container_id

    def _ensure_image(self, image: str) -> None:
        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            pass
        except DockerException as exc:
            raise ExecutorError(f"looking up image {image} failed: {_short(exc)}") from None
        try:
            self.client.images.pull(image)
        except DockerException as exc:
            raise ExecutorError(
                f"image {image} is not on the node and pulling it failed: {_short(exc)}"
            ) from None

    def start(self) -> int:
        # Watched before it starts, so a container that exits at once is not missed.
        self.executor.watch_container(self.container_id, self.task.id)
        try:
            container = self.client.containers.get(self.container_id)
            container.start()
            container.reload()
        except DockerException as exc:
            self.executor.unwatch(self.container_id)
            raise ExecutorError(f"starting the container failed: {_short(exc)}") from None
        self.awaits_health = self.executor.health_watched and has_healthcheck(container.attrs)
        # The host's pid of its main process; one that already exited has
        # none left, and is reported by its pid inside the container, 1.
        return int(container.attrs.get("State", {}).get("Pid", 0) or 0) or 1

    def poll(self) -> int | None:
        try:
            container = self.client.containers.get(self.container_id)
        except NotFound:
            return EXIT_UNKNOWN
        found = exit_of(container.attrs)
        return None if found is None else found[0]

    def _kill(self, sig: str) -> None:
        self.executor.asked_to_stop(self.container_id)
        with contextlib.suppress(NotFound):
            try:
                self.client.api.kill(self.container_id, signal=sig)
            except APIError as exc:
                # 409: it is not running (any more); nothing to stop.
                if exc.status_code != 409:
                    raise

    def shutdown(self) -> None:
        if self.container_id:
            self._kill(self.task.spec.container.stop_signal or "SIGTERM")

    def terminate(self) -> None:
        if self.container_id:
            self._kill("SIGKILL")

    def remove(self) -> None:
        self.executor.task_files.remove(self.task.id)
        if not self.container_id:
            return
        self.executor.unwatch(self.container_id)
        with contextlib.suppress(NotFound):
            self.client.api.remove_container(self.container_id, force=True, v=False)


class DockerExecutor:
    name = "docker"
    # Every step may wait on the engine: the executor actor runs them in its pool.
    blocking = True

    def __init__(
        self,
        hostname: str,
        engine_addr: str | None = None,
        resources: Resources | None = None,
        engine_labels: dict[str, str] | None = None,
        client: docker.DockerClient | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.addr = engine_address(engine_addr)
        # Where tasks' secrets and configs are written, to be bound into their containers.
        self.task_files = TaskFiles(default_root(state_dir or Path.cwd()))
        self.client = client or connect(self.addr)
        self.hostname = hostname
        self.overrides = resources
        self.engine_labels = dict(engine_labels or {})
        # Set by the node once it knows its ID (after joining).
        self.node_id = ""
        self._description: NodeDescription | None = None
        self._lock = threading.Lock()
        # Containers whose exit is to be reported: container ID to task ID.
        self._watched: dict[str, str] = {}
        # Watched containers this executor signalled, and those someone else
        # did (the engine stopping, a docker stop): container ID to signal.
        self._asked: set[str] = set()
        self._outside: dict[str, str] = {}
        self._notify: ExitNotify | None = None
        self._health: HealthNotify | None = None
        self._stopped = threading.Event()
        self._events: Any = None
        self._thread: threading.Thread | None = None

    def describe(self) -> NodeDescription:
        if self._description is None:
            description = describe_engine(self.client.info(), self.hostname, self.engine_labels)
            if self.overrides is not None:
                r = description.resources
                description = NodeDescription(
                    hostname=description.hostname,
                    platform=description.platform,
                    resources=Resources(
                        nano_cpus=self.overrides.nano_cpus or r.nano_cpus,
                        memory_bytes=self.overrides.memory_bytes or r.memory_bytes,
                        generic=dict(self.overrides.generic),
                    ),
                    engine=description.engine,
                )
            self._description = description
        return self._description

    def controller(self, task: Task, files: tuple[TaskFile, ...] = ()) -> DockerController:
        return DockerController(self, task, files=files)

    # --- what a previous run left ------------------------------------------

    def list(self) -> list[tuple[str, str, bool]]:
        """This node's task containers on the engine: (task ID, container ID, running)."""
        filters = {"label": [LABEL_TASK_ID]}
        if self.node_id:
            filters["label"].append(f"{LABEL_NODE_ID}={self.node_id}")
        out = []
        for c in self.client.containers.list(all=True, filters=filters, ignore_removed=True):
            tid = c.labels.get(LABEL_TASK_ID, "")
            if tid:
                out.append((tid, c.id, exit_of(c.attrs) is None))
        return out

    def recover(self) -> builtins.list[Found]:
        """Take back this node's containers: running ones are watched again,
        the others are reported gone (and removed once the agent says so)."""
        found: builtins.list[Found] = []
        listed = self.list()
        # A task that no longer runs keeps no secret on the node.
        self.task_files.prune({tid for tid, _, running in listed if running})
        for tid, cid, running in listed:
            ctl = DockerController(self, Task(id=tid), cid)
            pid = 0
            if running:
                self.watch_container(cid, tid)
                with contextlib.suppress(DockerException):
                    pid = int(self.client.api.inspect_container(cid)["State"]["Pid"] or 0)
                pid = pid or 1
                log.info("adopted task %s (container %s) of a previous run", tid, cid[:12])
            found.append(Found(tid, pid, ctl))
        return found

    adopt = recover

    # --- exits, from the engine's events -----------------------------------

    def watch_container(self, container_id: str, task_id: str) -> None:
        with self._lock:
            self._watched[container_id] = task_id

    def unwatch(self, container_id: str) -> None:
        with self._lock:
            self._watched.pop(container_id, None)
            self._asked.discard(container_id)
            self._outside.pop(container_id, None)

    def asked_to_stop(self, container_id: str) -> None:
        with self._lock:
            self._asked.add(container_id)

    def _killed(self, container_id: str, sig: str) -> None:
        with self._lock:
            if container_id in self._watched and container_id not in self._asked:
                self._outside[container_id] = sig

    def watch(self, notify: ExitNotify) -> None:
        """Report each watched container's exit to ``notify(task_id, code, err)``
        from a thread of its own, until ``close``."""
        if self._thread is not None:
            # A restarted executor actor: its predecessor's watch ends first.
            self.close()
        self._notify = notify
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="docker-events", daemon=True)
        self._thread.start()

    def watch_health(self, report: HealthNotify) -> None:
        """Report each watched container turning healthy or unhealthy, from
        the engine's health events: ``report(task_id, status)``."""
        self._health = report

    @property
    def health_watched(self) -> bool:
        return self._health is not None

    def _health_changed(self, container_id: str, status: str) -> None:
        with self._lock:
            tid = self._watched.get(container_id)
        if tid is not None and self._health is not None:
            self._health(tid, status)

    def close(self) -> None:
        self.task_files.close()
        self._stopped.set()
        with contextlib.suppress(Exception):
            if self._events is not None:
                self._events.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _exited(self, container_id: str, code: int, err: str) -> None:
        with self._lock:
            tid = self._watched.pop(container_id, None)
            self._asked.discard(container_id)
            sig = self._outside.pop(container_id, None)
        if tid is not None:
            # The task ended: its secrets go at once, not when it is removed.
            self.task_files.remove(tid)
        if sig is not None and not err:
            # It did not end by itself, whatever its exit code: the engine
            # stopping or restarting, or a docker stop or kill from outside.
            err = f"the container was stopped from outside swarmd (signal {sig})"
        if tid is not None and self._notify is not None:
            self._notify(tid, code, err)

    def _follow(self) -> None:
        lost = False
        while not self._stopped.is_set():
            try:
                # The engine matches "health_status" with every "health_status: ...".
                self._events = self.client.events(
                    decode=True,
                    filters={"type": "container", "event": ["kill", "die", HEALTH_EVENT]},
                )
                if lost:
                    log.warning("the Docker engine is back: checking the tasks' containers")
                # Subscribed first, then compared: a die between the two is seen twice at
                # worst, and reported once (the first report unwatches it).
                self._resync()
                lost = False
                for event in self._events:
                    if self._stopped.is_set():
                        return
                    actor = event.get("Actor") or {}
                    attrs = actor.get("Attributes") or {}
                    cid = str(actor.get("ID") or event.get("id", ""))
                    if event.get("Action", event.get("status")) == "kill":
                        self._killed(cid, str(attrs.get("signal", "")))
                        continue
                    health = health_of(event)
                    if health is not None:
                        self._health_changed(cid, health)
                        continue
                    if event.get("Action", event.get("status")) != "die":
                        continue
                    code = int(attrs.get("exitCode", EXIT_UNKNOWN))
                    self._exited(cid, code, "")
            except Exception as exc:
                if self._stopped.is_set():
                    return
                if not lost:
                    log.warning("lost the Docker engine's events: %s", _short(exc))
                lost = True
            self._stopped.wait(RECONNECT_DELAY)

    def _resync(self) -> None:
        with self._lock:
            watched = dict(self._watched)
        for cid in watched:
            try:
                attrs = self.client.api.inspect_container(cid)
            except NotFound:
                self._exited(cid, EXIT_UNKNOWN, "the container is gone from the engine")
                continue
            found = exit_of(attrs)
            if found is not None:
                code, err = found
                self._exited(cid, code, err or "the container stopped while the engine was away")
                continue
            # Health events missed while the stream was down.
            health = ((attrs.get("State") or {}).get("Health") or {}).get("Status")
            if health in ("healthy", "unhealthy"):
                self._health_changed(cid, str(health))

    def logs(self, task_id: str, *, follow: bool, since: float | None, tail: int) -> LogReader:
        """The task's container's log, as the engine keeps it (until the
        container is removed); read on a thread of its own."""

        def find() -> str | None:
            found = self.client.containers.list(
                all=True, filters={"label": [f"{LABEL_TASK_ID}={task_id}"]}
            )
            return str(found[0].id) if found else None

        return DockerLogReader(
            self.client, find, follow=follow, since=since, tail=tail, clock=clock.wall
        )
