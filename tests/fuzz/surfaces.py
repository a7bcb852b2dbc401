"""The four input surfaces, each as one call from bytes to an outcome.

``run(data)`` returns "accepted" when the input was taken as valid and raises
when it was refused. What it may raise is the surface's documented error
(``typed``); anything else is a crash. A surface also raises ``Broken`` when an
input was accepted but what came of it would fail later (a written batch
that does not decode, a reply that does not encode).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyswarmkit import topology
from pyswarmkit.api import codec
from pyswarmkit.api.errors import SwarmError
from pyswarmkit.api.objects import (
    Annotations,
    Cluster,
    ManagerStatus,
    Node,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Service,
    Task,
    TaskStatus,
)
from pyswarmkit.api.states import NodeRole, NodeState, Reachability, TaskState
from pyswarmkit.control.events import EventRing
from pyswarmkit.control.handlers import Handlers, Outcome, Reply, events_since
from pyswarmkit.raft.messages import ENTRY_CONF_CHANGE, ConfChange, decode_messages
from pyswarmkit.stack import files as compose_files
from pyswarmkit.store.entries import decode_batch, decode_entry, encode_batch
from pyswarmkit.store.memory import Change, MemoryStore
from pyswarmkit.transport.bus import ProtocolError, decode_envelope, decode_envelopes
from pyswarmkit.transport.control import PROTOCOL_VERSION, decode_request, paginate

# The receiver's monotonic clock and the handlers' wall clock: fixed, so a
# seed replays exactly.
MONOTONIC = 100.0
WALL = 1_790_000_000.0


class Broken(Exception):
    """An input was accepted, but what came of it would fail further on."""


@dataclass(frozen=True)
class Surface:
    name: str
    run: Callable[[bytes], str]
    typed: tuple[type[BaseException], ...]
    # What the surface's caller does with a refusal, for the report.
    what: str
    # Called before each input's position in a replay: the state it starts from.
    reset: Callable[[], None] = lambda: None
    # Inputs between resets of the surface's state (the control store).
    reset_every: int = 0

    def is_typed(self, exc: BaseException) -> bool:
        # UnicodeDecodeError is a ValueError, but never what a decoder means to say.
        return isinstance(exc, self.typed) and not isinstance(exc, UnicodeError)


# --- wire envelopes ----------------------------------------------------------------


def run_wire(data: bytes) -> str:
    """What ZmqBus does with a frame from a peer (``decode_envelopes``), and
    what the LocalBus does with one envelope (``decode_envelope``); then what
    routing and logging read of each envelope."""
    with contextlib.suppress(ProtocolError):
        decode_envelope(data, MONOTONIC)
    envs = decode_envelopes(memoryview(data), MONOTONIC)
    for env in envs:
        _ = (env.kind, repr(env.body), env.expired(MONOTONIC), env.source, env.dest_actor)
    return "accepted"


# --- Raft messages -------------------------------------------------------------------


def run_raft(data: bytes) -> str:
    """A ``RaftMessages`` payload as the raft actor decodes it, and the entries
    it carries as a member applies them (store batches, membership changes)."""
    msgs = decode_messages(data)
    for m in msgs:
        repr(m)
        for entry in m.entries:
            if entry.type == ENTRY_CONF_CHANGE:
                ConfChange.decode(entry.data)
            elif entry.data:
                decode_entry(entry.data)
    return "accepted"


# --- the control API -------------------------------------------------------------------


@functools.cache
def _cluster() -> Cluster:
    from pyswarmkit.ca import signer

    return signer.bootstrap(Cluster(id="c0c1c2c3c4c5c6c7c8c9cacbc"), WALL)


def baseline() -> list[Change]:
    """A small swarm: its cluster, a manager and a worker, a service with tasks."""
    manager = Node(
        id="m0m1m2m3m4m5m6m7m8m9mamb0",
        spec=NodeSpec(Annotations("manager-1"), desired_role=NodeRole.MANAGER),
        description=NodeDescription(hostname="manager-1"),
        status=NodeStatus(NodeState.READY, "", "127.0.0.1"),
        role=NodeRole.MANAGER,
        manager_status=ManagerStatus(1, "127.0.0.1:4242", True, Reachability.REACHABLE),
    )
    worker = Node(
        id="w0w1w2w3w4w5w6w7w8w9wawb0",
        spec=NodeSpec(Annotations("", {"zone": "eu-1"})),
        description=NodeDescription(hostname="worker-1"),
        status=NodeStatus(NodeState.READY, "", "127.0.0.2"),
    )
    from tests.fuzz.corpus import service_spec

    spec = service_spec("base", 2)
    service = Service(id="s0s1s2s3s4s5s6s7s8s9sasb0", spec=spec)
    tasks = [
        Task(
            id=f"t0t1t2t3t4t5t6t7t8t9tatb{slot}",
            service_id=service.id,
            slot=slot,
            node_id=worker.id,
            spec=spec.task,
            spec_version=1,
            service_name="base",
            status=TaskStatus(WALL, TaskState.RUNNING),
        )
        for slot in (1, 2)
    ]
    objs: list[Any] = [_cluster(), manager, worker, service, *tasks]
    return [Change("create", o) for o in objs]


class ControlHarness:
    """The control actor's work without its actor: decode the request frame,
    dispatch it to the handlers on a real store, build and commit a write the
    way the store actor and Raft do, and encode the reply pages the server
    sends."""

    def __init__(self) -> None:
        self.handlers = Handlers(wall=lambda: WALL)
        self.reset()

    def reset(self) -> None:
        self.store = MemoryStore()
        self.ring = EventRing()
        self.ring.start_at(0)
        self._commit(baseline())

    def _commit(self, changes: list[Change]) -> Any:
        # What Raft carries and every member decodes: it must decode here too.
        data = encode_batch(changes, WALL)
        try:
            decode_batch(data)
        except Exception as exc:
            raise Broken(f"a committed batch does not decode: {exc!r}") from exc
        batch = self.store.apply(changes, self.store.index + 1, WALL)
        self.ring.record(batch, WALL)
        return batch

    def run_request(self, data: bytes) -> dict[str, Any]:
        """The reply the control actor gives ``data`` (errors as error replies),
        after checking that the server could send it."""
        try:
            return self._answer(data)
        except SwarmError as err:
            return {"ok": False, "error": err.to_wire()}

    def _answer(self, data: bytes) -> dict[str, Any]:
        req = decode_request(data)
        outcome: Outcome
        if req.method == "events.since":
            outcome = events_since(self.ring, req.body)
        else:
            outcome = self.handlers.handle(self.store, req.method, req.body)
        if isinstance(outcome, Reply):
            value = outcome.value
        else:
            with self.store.reading():
                changes = outcome.build(self.store)
            batch = self._commit(list(changes)) if changes else None
            value = outcome.result(batch)
        reply = {"ok": True, "result": value}
        pages = paginate(reply, req.page_size)
        last = len(pages) - 1
        for i, page in enumerate(pages):
            try:
                sent = codec.packb({"v": PROTOCOL_VERSION, "id": req.id, **page, "more": i < last})
                codec.unpackb(sent)
            except Exception as exc:
                raise Broken(f"the reply cannot be sent: {exc!r}") from exc
        return reply

    def run(self, data: bytes) -> str:
        self._answer(data)
        return "accepted"


@functools.cache
def control_harness() -> ControlHarness:
    return ControlHarness()


# --- topology files ----------------------------------------------------------------------


@functools.cache
def _scratch() -> Path:
    # In memory where there is a tmpfs: a file written per input on a disk
    # costs milliseconds, the parse itself microseconds.
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="fuzz-topology-", dir=where))
    atexit.register(shutil.rmtree, path, True)
    return path


def run_topology(data: bytes) -> str:
    """``swarmd up FILE``'s reading of FILE (it starts nothing before that)."""
    path = _scratch() / "swarm.toml"
    path.write_bytes(data)
    topology.parse(path)
    return "accepted"


def run_compose(data: bytes) -> str:
    """``swarmctl stack deploy -c FILE``'s reading of FILE and its conversion
    to service specs (nothing is sent before that). Secrets a file names are
    read relative to it: the scratch dir holds one."""
    path = _scratch() / "compose.yml"
    (_scratch() / "pw.txt").write_bytes(b"pw")
    path.write_bytes(data)
    compose_files.load(str(path), "app", {})
    return "accepted"


def surfaces() -> dict[str, Surface]:
    harness = control_harness()
    return {
        "wire": Surface("wire", run_wire, (ProtocolError,), "frame dropped and counted"),
        "control": Surface(
            "control",
            harness.run,
            (SwarmError,),
            "error reply",
            reset=harness.reset,
            reset_every=256,
        ),
        "raft": Surface("raft", run_raft, (ValueError,), "messages dropped and counted"),
        "topology": Surface("topology", run_topology, (SwarmError,), "one-line error"),
        "compose": Surface("compose", run_compose, (SwarmError,), "one-line error"),
    }
