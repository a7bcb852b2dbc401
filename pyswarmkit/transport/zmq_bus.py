"""The bus between node processes: ZeroMQ over TCP, CurveZMQ on every socket.

Managers bind a ROUTER (Curve server, the managers' shared server keypair);
every node dials managers with DEALERs (Curve clients with the node's own
keypair, pinning the server's public key). No socket is ever bound or
connected without Curve.

One bus may also hold several local identities (an agent host runs many
nodes in one process): ``dial(..., keys=K, local=L)`` opens a connection of
its own for the local node L, under L's own client keypair, so the manager
sees L exactly as it sees a node alone in its process. Connections are keyed
by (local node, remote node); an envelope goes over the connection of its
source (or of the ``local`` a caller names), else over the bus's own.

Who sent a message is what its connection proves: the ZAP handler (run here,
on the I/O thread) admits every Curve key and names the connection's user by
the key, and the authorization hook maps that key and the envelope to the
sender's id, or refuses it. Messages arriving on a DEALER come from a manager
whose key the DEALER pinned, and are trusted as such.

Threads: one I/O thread owns every socket. Other threads hand encoded
envelopes over a queue and wake the I/O thread (an eventfd) only when the
queue goes from empty to non-empty; the I/O thread sends whatever is queued as
soon as it runs, several envelopes for the same peer in one frame.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import heapq
import logging
import math
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import zmq
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from pyswarmkit import clock, faults
from pyswarmkit.actors.messages import Deliver, DeliverBatch
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import (
    DeadlineExceeded,
    InvalidArgument,
    PermissionDenied,
    SwarmError,
    Unavailable,
)
from pyswarmkit.api.protocol import Body, Error
from pyswarmkit.transport.bus import (
    ANONYMOUS_PREFIX,
    DEFAULT_ADDR,
    Envelope,
    ProtocolError,
    anonymous_id,
    decode_envelope,
    decode_envelopes,
    encode_envelope,
)
from pyswarmkit.transport.frames import LogLimiter, Oversize, batches, held_note
from pyswarmkit.transport.zap import ZAP_ENDPOINT, zap_reply

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
# Reconnection backoff of a DEALER, in milliseconds (libzmq doubles up to the
# max after failed connects; after a refused handshake it waits the first value
# again, so that one sets how hard a refused node knocks).
RECONNECT_IVL = 500
RECONNECT_IVL_MAX = 5000
# A dialed manager out of reach this long (seconds) is reported, and again as often.
DOWN_WARNING = 10.0
# A connection that has not finished its handshake by then is dropped.
HANDSHAKE_IVL = 10_000
# Frames queued per connection inside libzmq before sends fail (and are counted).
HWM = 10_000
# Frames read from one socket per pass, so one busy peer does not starve the rest.
RECV_PER_PASS = 256
# The I/O thread looks up at least this often (seconds) even with nothing to do.
IDLE_POLL = 1.0
# Where a refused request's Error goes on the sender's node: the actor that
# sends to managers. Replies to ``request`` resolve the future whatever it is.
ERROR_ACTOR = "agent"
# Sockets one context may hold (libzmq's default is 1023): a bus holding many
# local identities has a DEALER and a monitor pair for each.
MAX_SOCKETS = 16384
# Routes to anonymous peers (joiners) are kept for the most recent this many.
MAX_ANONYMOUS_ROUTES = 4096
MAX_FRESH = 65536

_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_REASONS: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the peer left during the handshake",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "not a CurveZMQ peer, or the wrong key",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused by authentication",
}
_MONITOR_EVENTS = (
    _HANDSHAKE_EVENTS | zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
)

Authorizer = Callable[[bytes, Envelope], str]

STATS = (
    "sent",  # envelopes written to a connection
    "received",  # envelopes that arrived and passed authorization
    "local",  # envelopes between actors of this node
    "frames_out",
    "frames_in",
    "dropped_oversize",  # not sent: over the frame cap
    "dropped_hwm",  # not sent: the connection's queue is full
    "refused",  # refused by the authorization hook
    "malformed",  # frames that do not decode
    "misdirected",  # for a node that is not this one
    "no_route",  # for a node no connection reaches
    "no_actor",  # for an actor this node does not have
    "unencodable",
    "handshakes",
    "handshake_failures",  # plaintext, not ZMTP, wrong keys
    "disconnects",
)


_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


def _ready(sock: zmq.Socket[bytes], routed: bool) -> Iterator[tuple[bytes, zmq.Frame, int]]:
    """The messages waiting on ``sock``, at most RECV_PER_PASS of them (so one
    busy peer does not starve the rest), each as (routing id, last frame,
    parts after the routing id); a ROUTER's (``routed``) come behind the id of
    the connection. Poll said there is one; after it, asking is cheaper than
    the exception an empty socket raises. One recv per part, and the frame's
    own ``more`` flag: pyzmq's ``recv_multipart`` costs several microseconds
    more per message in option lookups."""
    for i in range(RECV_PER_PASS):
        # Plain ints: pyzmq's flag enums cost a microsecond per operation here.
        if i and not cast(int, sock.getsockopt(_EVENTS)) & _POLLIN:
            return
        try:
            # A ROUTER always puts the id before what the peer sent.
            rid = sock.recv(zmq.NOBLOCK) if routed else b""
            frame = sock.recv(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        parts = 1
        while frame.more:
            # The rest of a message is there once its first part is.
            frame = sock.recv(zmq.NOBLOCK, copy=False)
            parts += 1
        yield rid, frame, parts


def _settle(
    future: concurrent.futures.Future[Body],
    result: Body | None = None,
    exc: BaseException | None = None,
) -> None:
    """Resolve ``future`` unless its caller gave up on it (cancelled it): on
    the I/O thread, an InvalidStateError would end the transport."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(cast(Body, result))


@dataclass(frozen=True)
class CurveKeys:
    """A CurveZMQ keypair as raw 32-byte keys."""

    public: bytes
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.public) != 32 or len(self.secret) != 32:
            raise ValueError("a CurveZMQ key is 32 raw bytes")

    @classmethod
    def generate(cls) -> CurveKeys:
        public, secret = zmq.curve_keypair()
        return cls(z85.decode(public), z85.decode(secret))

    def __repr__(self) -> str:
        # The secret half never reaches a log.
        return f"CurveKeys(public={z85.encode(self.public).decode()})"


# A DNS name, an IPv4 address or a bracketed IPv6 address; nothing else (no
# scheme, no spaces) reaches ZeroMQ's endpoint syntax.
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\*")


def split_hostport(hostport: str) -> tuple[str, int]:
    host, sep, port = hostport.rpartition(":")
    if not sep or not _HOST.fullmatch(host) or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{hostport!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass
class _Dialed:
    node_id: str
    addr: str
    server_public: bytes
    sock: zmq.Socket[bytes]
    monitor: zmq.Socket[bytes]
    # The local node this connection speaks for, and its own keypair (None:
    # the bus's, which ``rekey`` replaces).
    local: str = ""
    keys: CurveKeys | None = None
    # Since when (monotonic) no handshake has succeeded; None while connected.
    down_since: float | None = 0.0
    # When to say again that it is still down.
    next_warning: float = 0.0
    failures: int = 0
    # The address the connection reached (its Peer-Address), learned from the
    # first message over it and forgotten when it drops.
    peer: str = ""


class ZmqBus:
    def __init__(
        self,
        node_id: str,
        keys: CurveKeys,
        *,
        listen: str | None = None,
        server: CurveKeys | None = None,
        authorize: Authorizer | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        if listen is not None and (server is None or authorize is None):
            raise ValueError("a listening bus needs the server keypair and an authorization hook")
        self.node_id = node_id
        self._keys = keys
        self._listen = None if listen is None else split_hostport(listen)
        self._server = server
        self._authorize = authorize
        self.max_frame = max_frame
        self._registries: dict[str, Registry] = {}
        self._addrs: dict[str, str] = {}
        # Called on the I/O thread with a dialed node's ID when an established
        # connection to it drops (its process died, or the link broke): a
        # worker turns to another manager at once rather than after three
        # silent heartbeat periods. Must only hand the news on.
        self.on_down: Callable[[str], None] | None = None
        # What other nodes may call this node when they do not know its id yet.
        self._aliases = {"", anonymous_id(keys.public)}

        # Handed to the I/O thread: (dest_node, bytes, kind, id) to send, or a
        # command to run there. ``_woken`` is set by whoever wrote the eventfd
        # and cleared by the I/O thread before it drains the queue.
        self._out: collections.deque[Any] = collections.deque()
        self._woken = False
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        # Closed only when nothing can write to it any more: a sender racing
        # with stop() must not write into a descriptor number reused since.
        weakref.finalize(self, os.close, self._wake)

        # Requests waiting for their reply: id -> (future, kind, dest).
        self._pending: dict[int, tuple[concurrent.futures.Future[Body], str, str]] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._lock = threading.Lock()

        self._stats: collections.Counter[str] = collections.Counter()
        # Counted on callers' threads (local delivery, encoding), under the lock.
        self._caller_stats: collections.Counter[str] = collections.Counter()
        self._limiter = LogLimiter()

        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._router: zmq.Socket[bytes] | None = None
        self._router_monitor: zmq.Socket[bytes] | None = None
        self._zap: zmq.Socket[bytes] | None = None
        self._poller = zmq.Poller()
        # Keyed by (local node, remote node).
        self._dialed: dict[tuple[str, str], _Dialed] = {}
        self._by_socket: dict[zmq.Socket[bytes], _Dialed] = {}
        self._monitors: dict[zmq.Socket[bytes], str] = {}
        self._dialed_by_monitor: dict[zmq.Socket[bytes], _Dialed] = {}
        self._default: str | None = None
        # Learned on the ROUTER: node id -> routing id of its connection.
        self._routes: dict[str, bytes] = {}
        self._anonymous: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._keys_of: dict[str, bytes] = {}
        # What this pass of the I/O thread received, by (node, actor).
        self._inbound: dict[tuple[str, str], list[Deliver]] = {}
        # Connections the listener accepted whose handshake has not been seen
        # (by file descriptor, oldest first).
        self._fresh: dict[int, None] = {}

        self._port: int | None = None
        self._next_down_check = 0.0
        # Injected faults (the chaos harness's; off unless the environment asks).
        try:
            spec = faults.from_env()
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        self._faults = None if spec is None else faults.Faults(spec)
        if spec is not None:
            log.warning("%s is set: injecting faults into remote traffic: %s", faults.ENV, spec)
        self._stopping = False
        self._stopped = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"zmq-bus-{node_id}", daemon=True)

    # --- the interface ------------------------------------------------------------

    def attach(self, registry: Registry, addr: str = DEFAULT_ADDR) -> None:
        """This node's actors; ``addr`` is what they see as the address of
        messages this node sends itself."""
        self._addrs[registry.node_id] = addr
        self._registries[registry.node_id] = registry

    def detach(self, node_id: str) -> None:
        self._registries.pop(node_id, None)
        self._addrs.pop(node_id, None)

    @property
    def port(self) -> int | None:
        return self._port

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise Unavailable("the transport's I/O thread did not start within 10 s")
        if self._error is not None:
            self._thread.join(5)
            raise self._error

    def stop(self) -> None:
        """Close every socket and join the I/O thread; what is still queued is dropped."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping = True
        if self._thread.is_alive():
            os.eventfd_write(self._wake, 1)
            self._thread.join(10)
            if self._thread.is_alive():
                log.error("the transport's I/O thread did not stop within 10 s")
                return
        self._fail_pending(Unavailable("the transport stopped"))

    def dial(
        self,
        node_id: str,
        addr: str,
        server_public: bytes,
        *,
        keys: CurveKeys | None = None,
        local: str | None = None,
    ) -> None:
        """Keep a connection to the manager ``node_id`` at ``addr`` (HOST:PORT),
        pinning its server key; envelopes for ``node_id`` go over it.

        ``local`` names another local node this connection speaks for, with
        its own client keypair ``keys``: envelopes from ``local`` (or sent
        with ``local=``) to ``node_id`` go over it, and the manager
        authorizes them by those keys."""
        split_hostport(addr)
        if len(server_public) != 32:
            raise ValueError("the server's public key is 32 raw bytes")
        if (keys is None) != (local is None or local == self.node_id):
            raise ValueError("a connection for another local node needs that node's own keys")
        here = self.node_id if local is None else local
        self._command(lambda: self._do_dial(here, node_id, addr, server_public, keys))

    def rename(self, node_id: str, new_node_id: str, *, local: str, new_local: str) -> None:
        """Keep the connection of ``local`` to ``node_id`` open under new names:
        a joiner's connection (``local`` its key's anonymous id, ``node_id``
        "any manager") becomes its node's once the swarm has named both. The
        manager already knows it by its key: no second handshake."""

        def run() -> None:
            dialed = self._dialed.pop((local, node_id), None)
            if dialed is None:
                return
            old = self._dialed.pop((new_local, new_node_id), None)
            if old is not None:
                self._close_dialed(old)
            dialed.node_id, dialed.local = new_node_id, new_local
            self._dialed[new_local, new_node_id] = dialed

        self._command(run)

    def undial(self, node_id: str, *, local: str | None = None) -> None:
        """Close the connection of ``local`` (default: this node) to ``node_id``."""
        here = self.node_id if local is None else local

        def run() -> None:
            old = self._dialed.pop((here, node_id), None)
            if old is not None:
                self._close_dialed(old)

        self._command(run)

    def set_default_route(self, node_id: str) -> None:
        """Envelopes for nodes not otherwise routed go to the dialed ``node_id``."""

        def run() -> None:
            self._default = node_id

        self._command(run)

    def rekey(self, keys: CurveKeys) -> None:
        """Use a new client keypair: every dialed connection is made afresh
        under it. Envelopes queued here are kept; those inside a closed
        connection may be lost (the protocols resend)."""
        self._aliases = {"", anonymous_id(keys.public)}
        self._command(lambda: self._do_rekey(keys))

    def send(self, envelope: Envelope, *, local: str | None = None) -> bool:
        """Send ``envelope``; ``local`` picks the connection of that local
        node (default: the envelope's source's, else the bus's own)."""
        try:
            data = encode_envelope(envelope, clock.monotonic())
        except (TypeError, ValueError, OverflowError) as exc:
            self._count_caller("unencodable")
            log.error(
                "dropped %s to %s: cannot encode it: %s", envelope.kind, envelope.dest_node, exc
            )
            return False
        registry = self._registries.get(envelope.dest_node)
        if registry is not None:
            return self._deliver_local(data, registry)
        if self._stopped:
            self._count_caller("no_route")
            return False
        self._out.append(
            (
                envelope.source if local is None else local,
                envelope.dest_node,
                data,
                envelope.kind,
                envelope.id,
            )
        )
        if not self._woken:
            self._woken = True
            os.eventfd_write(self._wake, 1)
        return True

    def request(
        self, envelope: Envelope, timeout: float, *, local: str | None = None
    ) -> concurrent.futures.Future[Body]:
        """Send ``envelope`` and get its reply's body: an ``Error`` reply becomes
        the future's exception, as do a lapsed deadline (DeadlineExceeded) and a
        destination nothing reaches (Unavailable)."""
        future: concurrent.futures.Future[Body] = concurrent.futures.Future()
        now = clock.monotonic()
        deadline = now + timeout
        if envelope.deadline is None or envelope.deadline > deadline:
            envelope = Envelope(
                envelope.source,
                envelope.dest_node,
                envelope.dest_actor,
                envelope.body,
                envelope.id,
                envelope.reply_to,
                deadline,
            )
        with self._lock:
            self._pending[envelope.id] = (future, envelope.kind, envelope.dest_node)
            heapq.heappush(self._deadlines, (deadline, envelope.id))
        if self._stopped:
            self._resolve(envelope.id, Unavailable("the transport is stopped"))
        elif not self.send(envelope, local=local):
            self._resolve(envelope.id, Unavailable(f"cannot send {envelope.kind}"))
        else:
            # The I/O thread must look at the new deadline.
            with contextlib.suppress(OSError):
                os.eventfd_write(self._wake, 1)
        return future

    def stats(self) -> dict[str, int]:
        """Counts since start: see ``STATS``."""
        with self._lock:
            out = collections.Counter(dict.fromkeys(STATS, 0))
            out.update(self._caller_stats)
        # dict() copies in one step (C, under the GIL) while the I/O thread
        # may be adding keys; iterating the live Counter could see it change.
        out.update(dict(self._stats))
        out["pending_requests"] = len(self._pending)
        return dict(out)

    # --- callers' threads -----------------------------------------------------------

    def _count_caller(self, what: str) -> None:
        with self._lock:
            self._caller_stats[what] += 1

    def _command(self, fn: Callable[[], None]) -> None:
        self._out.append(fn)
        with contextlib.suppress(OSError):
            self._woken = True
            os.eventfd_write(self._wake, 1)

    def _deliver_local(self, data: bytes, registry: Registry) -> bool:
        # Through the bytes, as a remote peer would see it.
        env = decode_envelope(data, clock.monotonic())
        self._count_caller("local")
        if env.reply_to and self._resolve_reply(env):
            return True
        if not registry.tell(env.dest_actor, Deliver(env, self._addrs.get(registry.node_id, ""))):
            self._count_caller("no_route")
            log.debug("no actor %s on %s", env.dest_actor, env.dest_node)
            return False
        return True

    # --- requests -------------------------------------------------------------------

    def _resolve_reply(self, env: Envelope, sender: str | None = None) -> bool:
        """Whether ``env`` answered a pending request (and has resolved it).

        ``sender`` is who the listening socket says sent it: a reply counts
        only from the node the request went to, so no other peer can answer
        for it. Replies over a dialed connection come from the manager whose
        key it pinned (``sender`` None)."""
        with self._lock:
            entry = self._pending.get(env.reply_to)
            if entry is None or (sender is not None and sender != entry[2]):
                return False
            del self._pending[env.reply_to]
        body = env.body
        if isinstance(body, Error):
            _settle(entry[0], exc=body.to_error())
        else:
            _settle(entry[0], result=body)
        return True

    def _resolve(self, msg_id: int, err: SwarmError) -> None:
        with self._lock:
            entry = self._pending.pop(msg_id, None)
        if entry is not None:
            _settle(entry[0], exc=err)

    def _expire(self, now: float) -> float | None:
        """Fail the requests past their deadline; the time to the next one."""
        expired = []
        with self._lock:
            while self._deadlines and self._deadlines[0][0] <= now:
                _, msg_id = heapq.heappop(self._deadlines)
                entry = self._pending.pop(msg_id, None)
                if entry is not None:
                    expired.append(entry)
            # Entries of answered requests stay in the heap until their time.
            nearest = self._deadlines[0][0] if self._deadlines else None
        for future, kind, dest in expired:
            _settle(future, exc=DeadlineExceeded(f"{dest} did not answer {kind} in time"))
        return None if nearest is None else max(0.0, nearest - now)

    def _fail_pending(self, err: SwarmError) -> None:
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
            self._deadlines.clear()
        for future, _, _ in pending:
            _settle(future, exc=err)

    # --- the I/O thread -------------------------------------------------------------

    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        assert self._ctx is not None
        sock: zmq.Socket[bytes] = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame)
        sock.setsockopt(zmq.SNDHWM, HWM)
        sock.setsockopt(zmq.RCVHWM, HWM)
        sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_IVL)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        return sock

    def _monitor(self, sock: zmq.Socket[bytes], what: str) -> zmq.Socket[bytes]:
        mon: zmq.Socket[bytes] = sock.get_monitor_socket(_MONITOR_EVENTS)
        self._monitors[mon] = what
        self._poller.register(mon, zmq.POLLIN)
        return mon

    def _unmonitor(self, sock: zmq.Socket[bytes], mon: zmq.Socket[bytes]) -> None:
        self._poller.unregister(mon)
        self._monitors.pop(mon, None)
        with contextlib.suppress(zmq.ZMQError):
            sock.disable_monitor()
        mon.close(0)

    def _bind(self) -> None:
        assert self._listen is not None and self._server is not None and self._ctx is not None
        # The ZAP handler first: libzmq asks it about every Curve handshake.
        zap: zmq.Socket[bytes] = self._ctx.socket(zmq.ROUTER)
        zap.setsockopt(zmq.LINGER, 0)
        zap.bind(ZAP_ENDPOINT)
        self._zap = zap
        self._poller.register(zap, zmq.POLLIN)
        router = self._socket(zmq.ROUTER)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.CURVE_SERVER, 1)
        router.setsockopt(zmq.CURVE_SECRETKEY, self._server.secret)
        router.setsockopt(zmq.ZAP_DOMAIN, b"swarm")
        self._router = router
        self._router_monitor = self._monitor(router, "listener")
        host, port = self._listen
        router.bind(f"tcp://{host}:{port}" if port else f"tcp://{host}:*")
        endpoint = router.getsockopt(zmq.LAST_ENDPOINT)
        assert isinstance(endpoint, bytes)
        self._port = int(endpoint.decode().rsplit(":", 1)[1])
        self._poller.register(router, zmq.POLLIN)
        log.info("remote API listening on %s:%d (CurveZMQ)", host, self._port)

    def _do_dial(
        self, local: str, node_id: str, addr: str, server_public: bytes, keys: CurveKeys | None
    ) -> None:
        old = self._dialed.pop((local, node_id), None)
        if old is not None:
            self._close_dialed(old)
        dialed = self._connect(node_id, addr, server_public, local, keys)
        self._dialed[local, node_id] = dialed

    def _connect(
        self,
        node_id: str,
        addr: str,
        server_public: bytes,
        local: str,
        keys: CurveKeys | None,
    ) -> _Dialed:
        own = keys or self._keys
        sock = self._socket(zmq.DEALER)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX)
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, own.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, own.secret)
        who = "" if keys is None else f" (for {local})"
        mon = self._monitor(sock, f"connection to {node_id or 'a manager'} at {addr}{who}")
        host, port = split_hostport(addr)
        sock.connect(f"tcp://{host}:{port}")
        self._poller.register(sock, zmq.POLLIN)
        now = clock.monotonic()
        dialed = _Dialed(
            node_id,
            addr,
            server_public,
            sock,
            mon,
            local=local,
            keys=keys,
            down_since=now,
            next_warning=now + DOWN_WARNING,
        )
        self._by_socket[sock] = dialed
        self._dialed_by_monitor[mon] = dialed
        return dialed

    def _close_dialed(self, dialed: _Dialed) -> None:
        self._dialed_by_monitor.pop(dialed.monitor, None)
        self._poller.unregister(dialed.sock)
        self._by_socket.pop(dialed.sock, None)
        self._unmonitor(dialed.sock, dialed.monitor)
        dialed.sock.close(0)

    def _do_rekey(self, keys: CurveKeys) -> None:
        self._keys = keys
        for key, old in list(self._dialed.items()):
            if old.keys is not None:
                continue  # another local node's connection, under its own keys
            self._close_dialed(old)
            self._dialed[key] = self._connect(
                old.node_id, old.addr, old.server_public, old.local, None
            )
        log.info("transport now uses key %s", z85.encode(keys.public).decode())

    def _run(self) -> None:
        try:
            self._ctx = zmq.Context()
            self._ctx.set(zmq.MAX_SOCKETS, MAX_SOCKETS)
            self._poller.register(self._wake, zmq.POLLIN)
            if self._listen is not None:
                self._bind()
        except Exception as exc:
            if isinstance(exc, SwarmError):
                self._error = exc
            elif isinstance(exc, zmq.ZMQError) and exc.errno == errno.EADDRINUSE:
                self._error = Unavailable(
                    f"cannot listen on {self._listen_text()}: the address is in use "
                    "(another swarmd?): choose another --listen-remote-api"
                )
            else:
                self._error = Unavailable(f"cannot listen on {self._listen_text()}: {exc}")
            self._close_all()
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        except Exception:
            log.exception("the transport's I/O thread failed")
        finally:
            self._close_all()

    def _listen_text(self) -> str:
        return "" if self._listen is None else f"{self._listen[0]}:{self._listen[1]}"

    def _loop(self) -> None:
        poller = self._poller
        wake = self._wake
        router = self._router
        zap = self._zap
        timeout = IDLE_POLL
        while not self._stopping:
            events = poller.poll(math.ceil(timeout * 1000))
            if self._stopping:
                return
            woken = False
            for sock, _ in events:
                if sock is router:
                    self._on_router()
                elif sock is zap:
                    self._on_zap()
                elif sock in self._monitors:
                    self._on_monitor(sock)
                else:
                    dialed = self._by_socket.get(sock)
                    if dialed is not None:
                        self._on_dealer(dialed)
                    elif sock == wake:
                        woken = True
            self._flush()
            if woken:
                # After sending, not before: a read lets other threads run
                # (any system call does), and the queued message should be on
                # its way first. What was queued after the flush but woke the
                # thread before this read is sent now, or it would wait.
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(wake)
                if self._out:
                    self._flush()
            now = clock.monotonic()
            if self._dialed and now >= self._next_down_check:
                self._next_down_check = now + 1.0
                self._warn_down(now)
            wait = self._expire(now) if self._deadlines else None
            timeout = IDLE_POLL if wait is None else min(wait, IDLE_POLL)
            # Last, just before blocking in poll: a woken actor then finds the
            # interpreter free rather than waiting for this thread.
            if self._inbound:
                self._deliver()

    def _close_all(self) -> None:
        for dialed in list(self._dialed.values()):
            self._close_dialed(dialed)
        self._dialed.clear()
        if self._router is not None:
            if self._router_monitor is not None:
                self._unmonitor(self._router, self._router_monitor)
            self._router.close(0)
        if self._zap is not None:
            self._zap.close(0)
        if self._ctx is not None:
            self._ctx.term()

    # --- sending ----------------------------------------------------------------------

    def _flush(self) -> None:
        """Send everything queued: per destination connection, in order, as
        few frames as the batch size allows."""
        self._woken = False
        out = self._out
        if self._faults is not None:
            self._inject(out)
        if not out:
            return
        groups: dict[Any, list[tuple[bytes, tuple[str, str, int]]]] = {}
        popleft = out.popleft
        while out:
            item = popleft()
            if type(item) is not tuple:
                if groups:
                    self._send_groups(groups)
                    groups = {}
                try:
                    item()
                except Exception:
                    # A failed dial or rekey must not end the thread serving the rest.
                    log.exception("transport command failed")
                continue
            local, dest, data, kind, msg_id = item
            target = self._target(local, dest)
            if target is None:
                self._no_route(dest, kind, msg_id)
                continue
            group = groups.get(target)
            if group is None:
                group = groups[target] = []
            group.append((data, (dest, kind, msg_id)))
        if groups:
            self._send_groups(groups)

    def _inject(self, out: collections.deque[Any]) -> None:
        """Lose, duplicate and hold back the queued messages as the faults say."""
        f = self._faults
        assert f is not None
        now = clock.monotonic()
        f.refresh(now)
        if not out and not f.holding:
            return
        items = list(out)
        out.clear()
        out.extend(f.due(now))
        for item in items:
            if type(item) is tuple:
                out.extend(f.outgoing(item, now))
            else:
                out.append(item)

    def _target(self, local: str, dest: str) -> Any:
        # A node connected to this one is answered over its own connection,
        # even when this node dials it too: the other end then takes the
        # message from the server it pinned, and need not know this node's key
        # yet (a manager that just joined, before its store has caught up).
        rid = self._routes.get(dest)
        if rid is None:
            rid = self._anonymous.get(dest)
        if rid is not None:
            return rid
        dialed = self._dialed.get((local, dest)) or self._dialed.get((self.node_id, dest))
        if dialed is not None:
            return dialed.sock
        if self._default is not None:
            dialed = self._dialed.get((local, self._default)) or self._dialed.get(
                (self.node_id, self._default)
            )
            if dialed is not None:
                return dialed.sock
        return None

    def _no_route(self, dest: str, kind: str, msg_id: int) -> None:
        self._stats["no_route"] += 1
        self._rate_log(("no_route", dest), f"no route to {dest}: dropped {kind}")
        self._resolve(msg_id, Unavailable(f"no connection to {dest}"))

    def _send_groups(self, groups: dict[Any, list[tuple[bytes, tuple[str, str, int]]]]) -> None:
        router = self._router
        stats = self._stats
        for target, items in groups.items():
            if len(items) == 1 and len(items[0][0]) < self.max_frame:
                # The usual case at low load: one envelope, no batching work.
                data, tag = items[0]
                try:
                    if type(target) is bytes:
                        assert router is not None
                        router.send_multipart((target, b"\x91" + data), zmq.NOBLOCK)
                    else:
                        target.send(b"\x91" + data, zmq.NOBLOCK)
                except zmq.ZMQError as exc:
                    self._send_failed(target, [tag], exc)
                    continue
                stats["frames_out"] += 1
                stats["sent"] += 1
                continue
            for chunk in batches(items, self.max_frame):
                if isinstance(chunk, Oversize):
                    dest, kind, msg_id = cast(tuple[str, str, int], chunk.item)
                    stats["dropped_oversize"] += 1
                    self._rate_log(
                        ("oversize", kind),
                        f"dropped a {kind} of {chunk.size} bytes to {dest}:"
                        f" over the {self.max_frame}-byte frame cap",
                    )
                    self._resolve(msg_id, Unavailable(f"{kind} is over the frame cap"))
                    continue
                frame, tags = chunk
                try:
                    if type(target) is bytes:
                        assert router is not None
                        router.send_multipart((target, frame), zmq.NOBLOCK)
                    else:
                        target.send(frame, zmq.NOBLOCK)
                except zmq.ZMQError as exc:
                    self._send_failed(target, tags, exc)
                    continue
                stats["frames_out"] += 1
                stats["sent"] += len(tags)

    def _send_failed(
        self, target: Any, tags: list[tuple[str, str, int]], exc: zmq.ZMQError
    ) -> None:
        dest = tags[0][0]
        if exc.errno == zmq.EAGAIN:
            what = "dropped_hwm"
            line = f"dropped {len(tags)} messages to {dest}: its send queue is full"
        else:
            # The peer's connection is gone (ROUTER_MANDATORY says so).
            what = "no_route"
            line = f"dropped {len(tags)} messages to {dest}: {exc}"
            if type(target) is bytes:
                self._forget_route(target)
        self._stats[what] += len(tags)
        self._rate_log((what, dest), line)
        for _, _, msg_id in tags:
            self._resolve(msg_id, Unavailable(f"cannot reach {dest}"))

    def _forget_route(self, rid: bytes) -> None:
        for table in (self._routes, self._anonymous):
            for node, r in list(table.items()):
                if r == rid:
                    del table[node]

    def _rate_log(self, key: object, line: str, level: int = logging.WARNING) -> None:
        held = self._limiter.allow(key, clock.monotonic())
        if held is not None:
            log.log(level, "%s%s", line, held_note(held))

    # --- receiving ----------------------------------------------------------------------

    def _on_zap(self) -> None:
        assert self._zap is not None
        while True:
            try:
                request = self._zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._zap.send_multipart(zap_reply(request), zmq.NOBLOCK)

    def _key_of(self, user_id: str) -> bytes:
        key = self._keys_of.get(user_id)
        if key is None:
            key = z85.decode(user_id)
            if len(self._keys_of) > 65536:
                self._keys_of.clear()
            self._keys_of[user_id] = key
        return key

    def _decode(self, frame: zmq.Frame, peer: str) -> list[Envelope] | None:
        if self._faults is not None:
            self._faults.refresh(clock.monotonic())
            if not self._faults.incoming():
                return None
        try:
            return decode_envelopes(frame.buffer, clock.monotonic())
        except ProtocolError as exc:
            self._stats["malformed"] += 1
            self._rate_log(("malformed", peer), f"dropped a malformed frame from {peer}: {exc}")
            return None

    def _on_router(self) -> None:
        router = self._router
        assert router is not None and self._authorize is not None
        authorize = self._authorize
        stats = self._stats
        for rid, frame, parts in _ready(router, True):
            try:
                user_id = str(frame.get("User-Id"))
                addr = str(frame.get("Peer-Address"))
            except zmq.ZMQError:
                # No ZAP answer named the user: cannot happen with Curve on;
                # refuse rather than trust.
                stats["refused"] += 1
                continue
            key = self._key_of(user_id)
            if parts != 1:
                stats["malformed"] += 1
                self._rate_log(
                    ("malformed", addr), f"dropped a {parts + 1}-part message from {addr}"
                )
                continue
            envs = self._decode(frame, addr)
            if envs is None:
                continue
            stats["frames_in"] += 1
            for env in envs:
                try:
                    sender = authorize(key, env)
                except Exception as exc:
                    self._refused(key, rid, addr, env, exc)
                    continue
                if sender != env.source:
                    env = Envelope(
                        sender,
                        env.dest_node,
                        env.dest_actor,
                        env.body,
                        env.id,
                        env.reply_to,
                        env.deadline,
                    )
                if sender.startswith(ANONYMOUS_PREFIX):
                    self._anonymous[sender] = rid
                    self._anonymous.move_to_end(sender)
                    if len(self._anonymous) > MAX_ANONYMOUS_ROUTES:
                        self._anonymous.popitem(last=False)
                else:
                    self._routes[sender] = rid
                dest = self._here(env, sender)
                if dest is None:
                    continue
                stats["received"] += 1
                if env.reply_to and self._resolve_reply(env, sender):
                    continue
                self._queue(dest, env, addr)
            if len(envs) > 1:
                # A batch: its actors can start on it while the next is read.
                self._deliver()

    def _refused(self, key: bytes, rid: bytes, addr: str, env: Envelope, exc: Exception) -> None:
        self._stats["refused"] += 1
        why = str(exc) if isinstance(exc, PermissionDenied) else f"authorization failed: {exc!r}"
        who = z85.encode(key).decode()
        # The kind, never the body: a join carries its token.
        self._rate_log(
            ("refused", key),
            f"refused {env.kind} from key {who} ({env.source or 'no node id'} at {addr}): {why}",
        )
        if env.reply_to or (not env.source and env.kind != "join"):
            # Nothing is owed to an anonymous caller of anything but join, and
            # answering a reply could start a ping-pong.
            return
        err = exc if isinstance(exc, PermissionDenied) else PermissionDenied("not authorized")
        answer = Envelope(
            self.node_id,
            env.source or anonymous_id(key),
            ERROR_ACTOR,
            Error.of(err, env.kind, getattr(env.body, "session_id", "")),
            reply_to=env.id,
        )
        data = encode_envelope(answer, clock.monotonic())
        self._send_groups({rid: [(data, (answer.dest_node, answer.kind, answer.id))]})

    def _on_dealer(self, dialed: _Dialed) -> None:
        sock = dialed.sock
        stats = self._stats
        for _, frame, parts in _ready(sock, False):
            addr = dialed.peer
            if not addr:
                # Once per connection: the peer's address does not change under it.
                try:
                    addr = dialed.peer = str(frame.get("Peer-Address"))
                except zmq.ZMQError:
                    addr = dialed.addr
            if parts != 1:
                stats["malformed"] += 1
                self._rate_log(
                    ("malformed", dialed.node_id),
                    f"dropped a multi-part message from {dialed.node_id}",
                )
                continue
            envs = self._decode(frame, dialed.node_id)
            if envs is None:
                continue
            stats["frames_in"] += 1
            for env in envs:
                # A reply to this node's request is this node's, whatever it is addressed to.
                if env.reply_to and self._resolve_reply(env):
                    stats["received"] += 1
                    continue
                dest = self._here(env, dialed.node_id)
                if dest is None:
                    continue
                stats["received"] += 1
                self._queue(dest, env, addr)
            if len(envs) > 1:
                # A batch: its actors can start on it while the next is read.
                self._deliver()

    def _here(self, env: Envelope, peer: str) -> str | None:
        """The node of this process ``env`` is for (a joiner may address this
        one as "" or by its key), or None, counted and logged: managers do
        not forward."""
        dest = env.dest_node
        if dest in self._registries:
            return dest
        if dest == self.node_id or dest in self._aliases:
            return self.node_id
        self._stats["misdirected"] += 1
        self._rate_log(
            ("misdirected", peer),
            f"dropped {env.kind} from {env.source or peer} for {dest}: not this node",
        )
        return None

    def _queue(self, dest: str, env: Envelope, addr: str) -> None:
        """Hold ``env`` for its actor until this pass hands out what it read."""
        group = self._inbound.get((dest, env.dest_actor))
        if group is None:
            group = self._inbound[dest, env.dest_actor] = []
        group.append(Deliver(env, addr))

    def _deliver(self) -> None:
        out = self._inbound
        self._inbound = {}
        for (node, actor), items in out.items():
            registry = self._registries.get(node)
            message = items[0] if len(items) == 1 else DeliverBatch(tuple(items))
            if registry is None or not registry.tell(actor, message):
                self._stats["no_actor"] += len(items)
                self._rate_log(("no_actor", node, actor), f"no actor {actor} on {node}: dropped")

    def _on_monitor(self, mon: zmq.Socket[bytes]) -> None:
        what = self._monitors[mon]
        while True:
            try:
                parts = mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = parse_monitor_message(parts)
            except Exception:
                continue
            event = msg["event"]
            dialed = self._dialed_by_monitor.get(mon)
            if dialed is not None:
                self._dialed_event(dialed, int(event))
            fresh = self._fresh
            if event == zmq.EVENT_ACCEPTED:
                fresh[msg["value"]] = None
                if len(fresh) > MAX_FRESH:
                    fresh.pop(next(iter(fresh)))
            elif event == zmq.EVENT_DISCONNECTED and mon is self._router_monitor:
                if fresh.pop(msg["value"], False) is None:
                    # Accepted, never through a handshake, gone: not a ZMTP peer
                    # (libzmq says nothing more for bytes that are not ZMTP).
                    self._handshake_failed(what, "the peer sent something that is not ZMTP", 0)
                else:
                    self._stats["disconnects"] += 1
            elif event & _HANDSHAKE_EVENTS:
                if mon is self._router_monitor and fresh:
                    fresh.pop(next(iter(fresh)))
                reason = _REASONS.get(int(event), "")
                self._handshake_failed(what, reason, int(msg["value"]))
            elif event == zmq.EVENT_DISCONNECTED:
                self._stats["disconnects"] += 1
                self._rate_log(("disconnect", what), f"disconnected: {what}", logging.INFO)
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._stats["handshakes"] += 1
                # Which connection it was is not said: take the oldest.
                if mon is self._router_monitor and fresh:
                    fresh.pop(next(iter(fresh)))

    def _dialed_event(self, dialed: _Dialed, event: int) -> None:
        now = clock.monotonic()
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            if dialed.down_since is not None and dialed.failures:
                log.info("connected to %s at %s again", dialed.node_id or "a manager", dialed.addr)
            dialed.down_since = None
            dialed.failures = 0
        elif event == zmq.EVENT_DISCONNECTED or event & _HANDSHAKE_EVENTS:
            dialed.peer = ""
            if event == zmq.EVENT_DISCONNECTED and self.on_down is not None and dialed.node_id:
                try:
                    self.on_down(dialed.node_id)
                except Exception:
                    log.exception("handing on that %s went down failed", dialed.node_id)
            if dialed.down_since is None:
                dialed.down_since = now
                dialed.next_warning = now + DOWN_WARNING
            if event & _HANDSHAKE_EVENTS:
                dialed.failures += 1

    def _warn_down(self, now: float) -> None:
        """Say, now and then, which dialed managers have been out of reach and
        why it may be: a node cut off from its manager must not look healthy."""
        for dialed in self._dialed.values():
            since = dialed.down_since
            if since is None or now < dialed.next_warning:
                continue
            dialed.next_warning = now + DOWN_WARNING
            who = f"{dialed.node_id or 'a manager'} at {dialed.addr}"
            if dialed.failures:
                log.warning(
                    "no connection to %s for %.0fs: %d handshakes refused (the manager there "
                    "does not hold the key this node pinned, or does not know this node's key: "
                    "if the swarm was started anew, join it again with its token); still trying",
                    who,
                    now - since,
                    dialed.failures,
                )
            else:
                log.warning("no connection to %s for %.0fs: still trying", who, now - since)

    def _handshake_failed(self, what: str, reason: str, code: int) -> None:
        self._stats["handshake_failures"] += 1
        detail = f" (code {code})" if code else ""
        self._rate_log(("handshake", what, reason), f"handshake failed on {what}: {reason}{detail}")
