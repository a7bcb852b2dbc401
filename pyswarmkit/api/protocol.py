"""The messages agents and dispatchers exchange, as typed values.

Each is a frozen ``msgspec.Struct`` encoded as a MessagePack array whose first
element is the class's tag, so one typed decoder turns bytes into exactly one
of these classes, fields checked, or refuses them. Tags and field orders are
append-only: a new field goes at the end with a default, so an older peer
ignores it and a newer one fills it in.

The rules the two sides follow (``agent/core.py``, ``dispatcher/core.py``):

- Anything may be lost, duplicated or reordered.
- A registration carries a token the agent picks once per attempt to get a
  session; the dispatcher answers a duplicate with the same session, and the
  agent takes only the answer that echoes its current token.
- A status report stays with the agent until an ``UpdateTaskStatusAck`` names
  its task with the reported state (or a later one); unacknowledged reports are
  sent again after a while and after every new session.
- Assignment sets are numbered per session: a full set results in sequence N;
  an incremental set applies to N and results in N+1. An agent that sees a
  set applying to a sequence it does not hold (or a heartbeat
  acknowledgement naming a newer sequence) asks for a full set.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from pyswarmkit.api.errors import SwarmError, error_from_wire
from pyswarmkit.api.objects import (
    FLOAT_LIMIT,
    Config,
    Float,
    Int,
    NodeDescription,
    Secret,
    Task,
    TaskStatus,
)
from pyswarmkit.api.states import TaskState

PROTOCOL_VERSION = 1

# A heartbeat period must be a positive, finite number of seconds: zero or NaN
# would make an agent spin or never beat.
Period = Annotated[float, msgspec.Meta(gt=0, le=FLOAT_LIMIT)]

ErrorCode = Literal[
    "not_found",
    "invalid_argument",
    "already_exists",
    "failed_precondition",
    "permission_denied",
    "unavailable",
    "deadline_exceeded",
    "internal",
]


class Message(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Base of every protocol message; ``kind`` names it in logs. Messages are
    trees of values, never cycles, hence ``gc=False`` (as the objects)."""

    kind: ClassVar[str] = "message"


# --- agent -> dispatcher -------------------------------------------------------


class Register(Message, frozen=True, array_like=True, tag=1):
    # Picked by the agent for one attempt to get a session, echoed in Registered.
    token: Int
    description: NodeDescription
    kind: ClassVar[str] = "register"


class Heartbeat(Message, frozen=True, array_like=True, tag=3):
    session_id: str
    kind: ClassVar[str] = "heartbeat"


class StatusUpdate(msgspec.Struct, frozen=True, array_like=True, gc=False):
    task_id: str
    status: TaskStatus


class UpdateTaskStatus(Message, frozen=True, array_like=True, tag=5):
    session_id: str
    updates: tuple[StatusUpdate, ...]
    kind: ClassVar[str] = "update_task_status"


class AssignmentsRequest(Message, frozen=True, array_like=True, tag=8):
    """The agent lost track of its assignments: send a full set."""

    session_id: str
    kind: ClassVar[str] = "assignments_request"


class Leave(Message, frozen=True, array_like=True, tag=9):
    session_id: str
    kind: ClassVar[str] = "leave"


# --- dispatcher -> agent -------------------------------------------------------


class ManagerAddr(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A manager an agent may turn to, and where it listens for other nodes."""

    node_id: str
    addr: Annotated[str, msgspec.Meta(max_length=300)]


Managers = Annotated[tuple[ManagerAddr, ...], msgspec.Meta(max_length=64)]


class Registered(Message, frozen=True, array_like=True, tag=2):
    token: Int
    session_id: str
    heartbeat_period: Period
    # Every manager of the swarm: where to go when this one stops answering.
    managers: Managers = ()
    kind: ClassVar[str] = "registered"


class HeartbeatAck(Message, frozen=True, array_like=True, tag=4):
    heartbeat_period: Period
    # The sequence the node's latest assignment set results in.
    assignments_seq: Int = 0
    managers: Managers = ()
    # The node's role changed (promoted or demoted): renew the certificate now,
    # to get one of the new role.
    renew_certificate: bool = False
    kind: ClassVar[str] = "heartbeat_ack"


class Acked(msgspec.Struct, frozen=True, array_like=True, gc=False):
    task_id: str
    state: TaskState


class UpdateTaskStatusAck(Message, frozen=True, array_like=True, tag=6):
    """The reports the store now holds (or has settled: unknown tasks, backward moves)."""

    session_id: str
    acked: tuple[Acked, ...]
    kind: ClassVar[str] = "update_task_status_ack"


class Assignments(Message, frozen=True, array_like=True, tag=7):
    session_id: str
    full: bool
    # Incremental sets apply to the sequence the agent holds; full sets ignore it.
    applies_to: Int
    results_in: Int
    tasks: tuple[Task, ...] = ()
    removed: tuple[str, ...] = ()
    # The secrets and configs the node's tasks need, sent with the set that
    # first needs them (a full set: all of them), and the IDs of those no task
    # on the node needs any more. They come before the tasks: an agent adds
    # them first, so a task in the same set finds them.
    secrets: tuple[Secret, ...] = ()
    configs: tuple[Config, ...] = ()
    removed_secrets: tuple[str, ...] = ()
    removed_configs: tuple[str, ...] = ()
    kind: ClassVar[str] = "assignments"

    def __repr__(self) -> str:
        # Whatever logs a message must not log secret data.
        return (
            f"Assignments(session_id={self.session_id!r}, full={self.full}, "
            f"applies_to={self.applies_to}, results_in={self.results_in}, "
            f"tasks={len(self.tasks)}, removed={len(self.removed)}, "
            f"secrets={[s.id for s in self.secrets]}, configs={[c.id for c in self.configs]})"
        )


# --- joining and certificates (to a manager's CA) ----------------------------------
#
# A joiner holds no certificate yet: the CurveZMQ handshake proves its key (the
# connection's User-Id), the join token in the request proves it may join, and
# the certificate is issued for the key the handshake proved. A renewal asks
# for a certificate for a new key, over the connection the current one proves.

CurveKey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Pem = Annotated[bytes, msgspec.Meta(max_length=64 * 1024)]


class JoinRequest(Message, frozen=True, array_like=True, tag=11):
    token: Annotated[str, msgspec.Meta(max_length=256)]
    description: NodeDescription
    kind: ClassVar[str] = "join"

    def __repr__(self) -> str:
        # Whatever logs a message (a failure report) must not log the token.
        return f"JoinRequest(token=<redacted>, hostname={self.description.hostname!r})"


class JoinAccepted(Message, frozen=True, array_like=True, tag=12):
    node_id: str
    certificate: Pem
    root_ca: Pem
    # The manager that answered: the dispatcher the agent registers with.
    manager_id: str
    # For a node joining as a manager: the managers' CurveZMQ server secret
    # key, so it can serve other nodes before its store has caught up.
    server_secret: Annotated[bytes, msgspec.Meta(max_length=32)] = b""
    kind: ClassVar[str] = "join_accepted"

    def __repr__(self) -> str:
        return f"JoinAccepted(node_id={self.node_id!r}, manager_id={self.manager_id!r})"


class RenewCertificate(Message, frozen=True, array_like=True, tag=13):
    # The public half of the node's new CurveZMQ keypair.
    curve_key: CurveKey
    kind: ClassVar[str] = "renew_certificate"


class CertificateIssued(Message, frozen=True, array_like=True, tag=14):
    certificate: Pem
    root_ca: Pem
    # For a manager's certificate: the managers' server secret key (a node
    # promoted to manager serves other nodes with it).
    server_secret: Annotated[bytes, msgspec.Meta(max_length=32)] = b""
    kind: ClassVar[str] = "certificate_issued"

    def __repr__(self) -> str:
        return "CertificateIssued(...)"


# --- manager <-> manager (Raft) -------------------------------------------------
# Only managers may send these (the authorization table lets a worker call
# nothing but the dispatcher and the CA). Raft's own messages travel encoded by
# ``raft.messages.to_wire``: several per envelope, checked by ``from_wire``.

RaftPayload = Annotated[bytes, msgspec.Meta(max_length=64 * 1024 * 1024)]


class RaftMessages(Message, frozen=True, array_like=True, tag=15):
    payload: RaftPayload
    kind: ClassVar[str] = "raft"


class RaftForward(Message, frozen=True, array_like=True, tag=16):
    """A follower's store batch (``store.entries`` encoding) for the leader to
    propose; answered with ``RaftProposed`` or an ``Error``."""

    batch: RaftPayload
    kind: ClassVar[str] = "raft_forward"


class RaftProposed(Message, frozen=True, array_like=True, tag=17):
    index: Int
    term: Int
    # The write's place in the entry's group of batches.
    part: Int = 0
    kind: ClassVar[str] = "raft_proposed"


class RaftPart(Message, frozen=True, array_like=True, tag=20):
    """The bytes at ``offset`` of an encoded ``RaftMessages`` payload of
    ``size`` bytes in all, too large for one frame (see ``raft/parts.py``);
    ``bundle`` tells one payload from the next."""

    bundle: Int
    offset: Int
    size: Int
    data: RaftPayload
    kind: ClassVar[str] = "raft_part"


class RaftJoin(Message, frozen=True, array_like=True, tag=18):
    """A manager that joined asks to become a Raft member, listening at ``addr``."""

    addr: Annotated[str, msgspec.Meta(max_length=300)]
    kind: ClassVar[str] = "raft_join"


class RaftJoined(Message, frozen=True, array_like=True, tag=19):
    raft_id: Int
    kind: ClassVar[str] = "raft_joined"


# --- task logs: manager (the leader's log broker) <-> agent's log sender ----------
#
# The broker asks a node for one task's log (``LogSubscribe``, sent again until
# data comes back); the node sends numbered batches (``LogData``) while fewer
# than ``window`` of them wait unconsumed; the broker acknowledges each batch it
# received and each one its client read (``LogAck``, which also keeps the
# stream alive: a node drops a stream it has heard nothing about for a while).


class LogRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    # 1 stdout, 2 stderr.
    stream: Int
    time: Float
    text: str


class LogSubscribe(Message, frozen=True, array_like=True, tag=21):
    stream_id: str
    task_id: str
    follow: bool
    # Wall seconds; None: from the start.
    since: Float | None
    # The last lines to send; -1: all.
    tail: Int
    window: Int
    kind: ClassVar[str] = "log_subscribe"


class LogAck(Message, frozen=True, array_like=True, tag=22):
    stream_id: str
    task_id: str
    # The newest batch received in order, and the newest one consumed.
    received: Int
    consumed: Int
    kind: ClassVar[str] = "log_ack"


class LogCancel(Message, frozen=True, array_like=True, tag=23):
    stream_id: str
    kind: ClassVar[str] = "log_cancel"


class LogData(Message, frozen=True, array_like=True, tag=24):
    stream_id: str
    task_id: str
    # From 1; 0 with an error: the stream ended without its batches (the
    # node no longer knows it).
    seq: Int
    lines: tuple[LogRecord, ...]
    # The last batch: the log was sent whole (not following), or it ended.
    eof: bool = False
    error: str = ""
    kind: ClassVar[str] = "log_data"


class LogControl(Message, frozen=True, array_like=True, tag=25):
    """A ``logs.*`` control request a manager that does not lead forwards to
    the leader's broker (``body``: the request's body, as the control API
    encodes it)."""

    method: str
    body: bytes
    kind: ClassVar[str] = "log_control"


class LogControlReply(Message, frozen=True, array_like=True, tag=26):
    # The control API's reply, encoded as it would be to a client.
    reply: bytes
    kind: ClassVar[str] = "log_control_reply"


class Error(Message, frozen=True, array_like=True, tag=10):
    code: ErrorCode
    message: str
    # What was refused: the request's kind and the session it named.
    request: str = ""
    session_id: str = ""
    # A manager that does not lead names the one that does, if it knows, and
    # where it listens.
    leader: str = ""
    leader_addr: Annotated[str, msgspec.Meta(max_length=300)] = ""
    kind: ClassVar[str] = "error"

    def to_error(self) -> SwarmError:
        return error_from_wire({"code": self.code, "message": self.message})

    @classmethod
    def of(cls, err: SwarmError, request: str = "", session_id: str = "") -> Error:
        code = err.code if err.code in _CODES else "internal"
        return cls(code, err.message, request, session_id)  # type: ignore[arg-type]


_CODES = frozenset(ErrorCode.__args__)  # type: ignore[attr-defined]

Body = (
    Register
    | Registered
    | Heartbeat
    | HeartbeatAck
    | UpdateTaskStatus
    | UpdateTaskStatusAck
    | Assignments
    | AssignmentsRequest
    | Leave
    | Error
    | JoinRequest
    | JoinAccepted
    | RenewCertificate
    | CertificateIssued
    | RaftMessages
    | RaftForward
    | RaftProposed
    | RaftJoin
    | RaftJoined
    | RaftPart
    | LogSubscribe
    | LogAck
    | LogCancel
    | LogData
    | LogControl
    | LogControlReply
)
