"""Valid inputs for each fuzzed surface, made by the code that makes them in a
running swarm: envelopes of every protocol message, Raft messages of every
type carrying real store batches, the control requests swarmctl sends (its
commands run against an in-process store, their requests recorded as the
client encodes them), and topology files."""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec

from pyswarmkit.api import codec
from pyswarmkit.api.objects import (
    Annotations,
    Config,
    ConfigSpec,
    ContainerSpec,
    ContainerStatus,
    EngineDescription,
    Meta,
    Node,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Placement,
    Platform,
    PortConfig,
    ResourceRequirements,
    Resources,
    Secret,
    SecretReference,
    SecretSpec,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskStatus,
)
from pyswarmkit.api.protocol import (
    Acked,
    Assignments,
    AssignmentsRequest,
    Body,
    CertificateIssued,
    Error,
    Heartbeat,
    HeartbeatAck,
    JoinAccepted,
    JoinRequest,
    Leave,
    LogAck,
    LogCancel,
    LogControl,
    LogControlReply,
    LogData,
    LogRecord,
    LogSubscribe,
    ManagerAddr,
    RaftForward,
    RaftJoin,
    RaftJoined,
    RaftMessages,
    RaftPart,
    RaftProposed,
    Register,
    Registered,
    RenewCertificate,
    StatusUpdate,
    UpdateTaskStatus,
    UpdateTaskStatusAck,
)
from pyswarmkit.api.states import NodeRole, NodeState, TaskState
from pyswarmkit.raft.messages import (
    CC_ADD_LEARNER,
    CC_ADD_VOTER,
    CC_REMOVE,
    ENTRY_CONF_CHANGE,
    ENTRY_NORMAL,
    MSG_NAMES,
    ConfChange,
    ConfState,
    Entry,
    Message,
    Snapshot,
    to_wire,
)
from pyswarmkit.store.entries import encode_batch
from pyswarmkit.store.memory import Change
from pyswarmkit.transport.bus import Envelope, encode_envelope
from pyswarmkit.transport.frames import frame_of

NOW = 1_790_000_000.0
NODE_ID = "3xk9bq2m7r1z8w5v0c4n6p2hd"
MANAGER_ID = "7f2kq0z1m9x8c7v6b5n4m3l2k"
SERVICE_ID = "q1w2e3r4t5y6u7i8o9p0a1s2d"
TASK_ID = "z9x8c7v6b5n4m3l2k1j0h9g8f"
SESSION = "s0e1s2s3i4o5n6x7y8z9a0b1c"
PEM = (
    b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU"
    + b"A" * 600
    + b"\n-----END CERTIFICATE-----\n"
)


# --- realistic objects -------------------------------------------------------------


def description(hostname: str = "worker-1") -> NodeDescription:
    return NodeDescription(
        hostname=hostname,
        platform=Platform("linux", "x86_64"),
        resources=Resources(nano_cpus=4_000_000_000, memory_bytes=8 << 30, generic={"gpu": 1}),
        engine=EngineDescription("pyswarmkit 0.1", {"zone": "eu-1", "disk": "ssd"}),
    )


def service_spec(name: str = "web", replicas: int = 3) -> ServiceSpec:
    container = ContainerSpec(
        image="nginx:1.25",
        command=("sh", "-c"),
        args=("while true; do date; sleep 5; done",),
        env=("MODE=prod", "LANG=C.UTF-8"),
        labels={"tier": "front"},
        secrets=(SecretReference("", "db-password", "db-password"),),
    )
    task = TaskSpec(
        container=container,
        resources=ResourceRequirements(reservations=Resources(nano_cpus=250_000_000)),
        placement=Placement(constraints=("node.role==worker",), preferences=("node.labels.zone",)),
        ports=(PortConfig(80, 8080),),
    )
    return ServiceSpec(
        Annotations(name=name, labels={"app": name}), task, ServiceMode(replicas=replicas)
    )


def task(slot: int = 1, state: TaskState = TaskState.RUNNING) -> Task:
    return Task(
        id=TASK_ID[:-1] + str(slot % 10),
        service_id=SERVICE_ID,
        slot=slot,
        node_id=NODE_ID,
        spec=service_spec().task,
        spec_version=2,
        service_name="web",
        status=TaskStatus(NOW, state, "started", "", ContainerStatus(pid=4242)),
        meta=Meta(version=17, created_at=NOW, updated_at=NOW, created_index=9),
    )


def secret() -> Secret:
    return Secret("sec0sec1sec2sec3sec4sec5s", SecretSpec(Annotations("db-password"), b"hunter2"))


def config() -> Config:
    return Config(
        "cfg0cfg1cfg2cfg3cfg4cfg5c", ConfigSpec(Annotations("nginx.conf"), b"worker 2;\n")
    )


def node() -> Node:
    return Node(
        id=NODE_ID,
        spec=NodeSpec(Annotations("worker-1", {"zone": "eu-1"})),
        description=description(),
        status=NodeStatus(NodeState.READY, "", "10.0.0.7"),
        role=NodeRole.WORKER,
    )


# --- the wire -------------------------------------------------------------------------


def store_batch() -> bytes:
    spec = service_spec()
    changes = [
        Change("create", Service(id=SERVICE_ID, spec=spec)),
        Change("update", task(1)),
        Change("delete", task(2, TaskState.SHUTDOWN)),
        Change("create", secret()),
    ]
    return encode_batch(changes, NOW)


def raft_messages() -> list[Message]:
    """One of every Raft message type, with entries and a snapshot where they go."""
    batch = store_batch()
    cc = ConfChange(CC_ADD_LEARNER, 0xBEEF, codec.encode(["node-3", "10.0.0.9:4242"])).encode()
    entries = (
        Entry(3, 41, ENTRY_NORMAL, batch),
        Entry(3, 42, ENTRY_CONF_CHANGE, cc),
        Entry(3, 43, ENTRY_NORMAL, b""),
        Entry(3, 44, ENTRY_CONF_CHANGE, ConfChange(CC_REMOVE, 0xCAFE).encode()),
        Entry(3, 45, ENTRY_CONF_CHANGE, ConfChange(CC_ADD_VOTER, 0xBEEF).encode()),
    )
    snap = Snapshot(40, 3, ConfState((1, 2, 3), (4,)), batch * 3)
    found = []
    for mtype in MSG_NAMES:
        m = Message(mtype, 2, 1, 3, log_term=3, index=40, commit=39, hint=7)
        if mtype == 1:  # App
            m = Message(mtype, 2, 1, 3, 3, 40, 39, entries=entries)
        elif mtype == 9:  # Snap
            m = Message(mtype, 2, 1, 3, snapshot=snap)
        elif mtype in (2, 4, 6):
            m = Message(mtype, 1, 2, 3, index=45, reject=mtype == 4, hint=44)
        found.append(m)
    return found


def raft_payloads() -> list[bytes]:
    msgs = raft_messages()
    wire = [to_wire(m) for m in msgs]
    out = [msgspec.msgpack.encode([w]) for w in wire]
    out.append(msgspec.msgpack.encode(wire))
    out.append(msgspec.msgpack.encode([]))
    return out


def bodies() -> list[Body]:
    """One of every protocol message, with the values a swarm sends."""
    tasks = (task(1), task(2, TaskState.PREPARING))
    managers = (ManagerAddr(MANAGER_ID, "10.0.0.1:4242"), ManagerAddr(NODE_ID, "10.0.0.2:4242"))
    payload = raft_payloads()[-2]
    return [
        Register(123456789, description()),
        Registered(123456789, SESSION, 5.0, managers),
        Heartbeat(SESSION),
        HeartbeatAck(5.0, 12, managers, False),
        UpdateTaskStatus(SESSION, tuple(StatusUpdate(t.id, t.status) for t in tasks)),
        UpdateTaskStatusAck(SESSION, (Acked(TASK_ID, TaskState.RUNNING),)),
        Assignments(SESSION, True, 0, 1, tasks, (), (secret(),), (config(),)),
        Assignments(SESSION, False, 1, 2, (task(3),), (TASK_ID,), (), (), ("x",), ("y",)),
        AssignmentsRequest(SESSION),
        Leave(SESSION),
        Error("unavailable", "the swarm has no leader", "register", SESSION, MANAGER_ID, "h:1"),
        JoinRequest("SWMTKN-1-" + "a" * 50 + "-" + "b" * 25, description("new-node")),
        JoinAccepted(NODE_ID, PEM, PEM, MANAGER_ID, b"k" * 32),
        RenewCertificate(b"\x01" * 32),
        CertificateIssued(PEM, PEM, b""),
        RaftMessages(payload),
        RaftForward(store_batch()),
        RaftProposed(45, 3, 1),
        RaftJoin("10.0.0.9:4242"),
        RaftJoined(0xBEEF),
        RaftPart(7, 0, 3 * len(payload), payload),
        LogSubscribe("stream-1", TASK_ID, True, NOW - 60, 100, 8),
        LogAck("stream-1", TASK_ID, 3, 2),
        LogCancel("stream-1"),
        LogData(
            "stream-1", TASK_ID, 3, (LogRecord(1, NOW, "GET / 200"), LogRecord(2, NOW, "oops"))
        ),
        LogControl("logs.subscribe", codec.packb({"service": "web", "follow": True})),
        LogControlReply(codec.packb({"ok": True, "result": {"stream": "stream-1"}})),
    ]


def envelope_frames() -> list[bytes]:
    """Frames as the bus sends them: each message alone, and a batch of several."""
    encoded = []
    for i, body in enumerate(bodies()):
        env = Envelope(
            MANAGER_ID if i % 2 else NODE_ID,
            NODE_ID if i % 2 else MANAGER_ID,
            "dispatcher" if i % 3 else "agent",
            body,
            id=(7 << 40) + i,
            reply_to=(7 << 40) + i - 1 if i % 4 == 0 else 0,
            deadline=None if i % 2 else 30.0,
        )
        encoded.append(encode_envelope(env, 20.0))
    frames = [frame_of([e]) for e in encoded]
    frames.append(frame_of(encoded[:6]))
    frames.append(frame_of([]))
    return frames


# --- the control API ----------------------------------------------------------------


# What an operator types, in the order a session would (later commands refer
# to what earlier ones made). Each runs as swarmctl would run it.
CLI_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("secret", "create", "db-password", "-"),
    ("config", "create", "nginx.conf", "-", "--label", "app=web"),
    ("service", "create", "--name", "web", "--command", "sh", "--args", "-c",
     "--args", "sleep 1000", "--replicas", "3", "--env", "A=1", "--constraint",
     "node.role==worker", "--placement-pref", "spread=node.labels.zone", "--reserve-cpu",
     "0.25", "--reserve-memory", "64MB", "--limit-memory", "128MB", "--publish", "8080:80",
     "--restart-condition", "on-failure", "--restart-delay", "2s", "--stop-grace-period", "5s",
     "--update-parallelism", "2", "--update-delay", "10s", "--secret", "db-password",
     "--config", "source=nginx.conf,target=/etc/nginx.conf", "--mount",
     "type=bind,source=/tmp,target=/data,readonly", "--detach"),
    ("service", "create", "--name", "agent", "--mode", "global", "--command", "true", "--detach"),
    ("service", "create", "--name", "batch", "--mode", "replicated-job", "--replicas", "4",
     "--max-concurrent", "2", "--command", "true", "--detach"),
    ("service", "ls"),
    ("service", "ls", "-q"),
    ("service", "inspect", "web"),
    ("service", "update", "web", "--replicas", "5", "--env", "B=2", "--detach"),
    ("service", "update", "web", "--image", "nginx:1.26", "--secret-rm", "db-password",
     "--config-rm", "nginx.conf", "--detach"),
    ("service", "update", "web", "--rollback", "--detach"),
    ("service", "update", "web", "--force", "--detach"),
    ("service", "update", "web", "--replicas", "2", "--limit-cpu", "1.5", "--detach"),
    ("task", "ls"),
    ("task", "ls", "--all"),
    ("node", "ls"),
    ("node", "inspect", "manager-1"),
    ("node", "update", "worker-1", "--label-add", "zone=eu-2", "--availability", "pause"),
    ("node", "drain", "worker-1", "--detach"),
    ("node", "activate", "worker-1"),
    ("node", "promote", "worker-1"),
    ("node", "demote", "worker-1"),
    ("cluster", "ls"),
    ("cluster", "inspect", "default"),
    ("cluster", "update", "default", "--heartbeat-period", "10s", "--cert-expiry", "720h",
     "--task-history-limit", "10", "--snapshot-interval", "5000"),
    ("cluster", "update", "default", "--rotate-join-token", "worker"),
    ("cluster", "update", "default", "--autolock", "true"),
    ("swarm", "unlock-key"),
    ("secret", "ls"),
    ("secret", "inspect", "db-password"),
    ("config", "ls"),
    ("config", "inspect", "nginx.conf"),
    ("service", "rm", "batch"),
    ("node", "rm", "--force", "worker-1"),
    ("service", "rm", "web"),
    ("secret", "rm", "db-password"),
    ("config", "rm", "nginx.conf"),
)  # fmt: skip


def control_requests() -> list[bytes]:
    """The request frames swarmctl sends for ``CLI_COMMANDS``, plus each
    method's plainest request."""
    from tests.fuzz.surfaces import ControlHarness

    harness = ControlHarness()
    recorded: list[bytes] = []

    def stream(
        _self: Any, method: str, body: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        data = codec.packb({"v": 1, "id": len(recorded) + 1, "method": method, "body": body or {}})
        recorded.append(data)
        reply = harness.run_request(data)
        if not reply.get("ok"):
            from pyswarmkit.api.errors import error_from_wire

            raise error_from_wire(reply.get("error"))
        yield reply.get("result", {})

    from typer.testing import CliRunner

    from pyswarmkit import cli
    from pyswarmkit.transport.control import ControlClient

    runner = CliRunner()
    with (
        mock.patch.object(ControlClient, "stream", stream),
        mock.patch.object(ControlClient, "alive", lambda _self: True),
        mock.patch.object(ControlClient, "close", lambda _self: None),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        for argv in CLI_COMMANDS:
            runner.invoke(
                cli.swarmctl_app, ["-s", "/tmp/fuzz-recorded.sock", *argv], input="s3cr3t\n"
            )
    for method in [*harness.handlers.methods, "events.since"]:
        recorded.append(codec.packb({"v": 1, "id": 9, "method": method, "body": {"ref": "web"}}))
    return recorded


# --- topology files -----------------------------------------------------------------


TOPOLOGY_TEXTS = (
    """
[[node]]
hostname = "node-1"
role = "manager"
state_dir = "state/node-1"
listen_control_api = "state/node-1/swarm.sock"
listen_remote_api = "127.0.0.1:4242"
heartbeat_period = "5s"

[[node]]
hostname = "node-2"
executor = "process"
heartbeat_period = 2.5

[[service]]
name = "clock"
command = ["sh", "-c", "while true; do date; sleep 5; done"]
replicas = 2
env = ["TZ=UTC"]
""",
    """
[[node]]
hostname = "solo"

[[service]]
name = "web"
image = "nginx"
command = "serve"
args = ["--port", "80"]
""",
)


def topology_files() -> list[bytes]:
    root = Path(__file__).resolve().parents[2] / "examples"
    found = [t.encode() for t in TOPOLOGY_TEXTS]
    found.extend(p.read_bytes() for p in sorted(root.glob("*.toml")))
    return found


# Running swarmctl's commands takes seconds (each loads the CLI afresh), so
# their requests are recorded once into this file (``python -m tests.fuzz
# --record``) and read from it.
RECORDED = Path(__file__).with_name("control-requests.msgpack")


def record_control() -> int:
    frames = control_requests()
    RECORDED.write_bytes(msgspec.msgpack.encode(frames))
    return len(frames)


def recorded_control() -> list[bytes]:
    return list(msgspec.msgpack.decode(RECORDED.read_bytes(), type=list[bytes]))


COMPOSE_TEXTS = (
    """version: "3.8"
services:
  web:
    image: nginx:1.25
    command: ["serve", "--port", "80"]
    environment:
      A: "1"
    ports: ["8080:80"]
    secrets:
      - source: pw
        target: password
        mode: 0400
    deploy:
      replicas: 3
      placement:
        constraints: [node.role==worker]
      resources:
        limits: {cpus: "0.5", memory: 64M}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3}
      update_config: {parallelism: 2, delay: 10s, order: start-first}
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 5s
  agent:
    image: busybox
    entrypoint: sh -c 'sleep 1000'
    deploy: {mode: global}
  db:
    image: redis:3.0.7
    command: sleep 1000
    configs: [conf]
    labels: {tier: db}
secrets:
  pw:
    file: ./pw.txt
configs:
  conf:
    file: ./pw.txt
""",
    """services:
  a:
    command: sleep 1000
    deploy:
      mode: replicated
      replicas: 1
      rollback_config: {parallelism: 0, failure_action: pause}
    volumes: ["/tmp:/data:ro"]
""",
)


def compose_files() -> list[bytes]:
    return [t.encode() for t in COMPOSE_TEXTS]


@functools.cache
def corpus(surface: str) -> tuple[bytes, ...]:
    makers = {
        "wire": envelope_frames,
        "control": recorded_control,
        "raft": raft_payloads,
        "topology": topology_files,
        "compose": compose_files,
    }
    return tuple(makers[surface]())
