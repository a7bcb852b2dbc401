"""Where a node meets the network: remote API addresses, the manager a worker
reports to, and joining a swarm with a token."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import zmq.utils.z85 as z85

from pyswarmkit import clock
from pyswarmkit.api.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    SwarmError,
    Unavailable,
)
from pyswarmkit.api.objects import NodeDescription
from pyswarmkit.api.protocol import Body, JoinAccepted, JoinRequest
from pyswarmkit.ca import certs, files
from pyswarmkit.ca.files import Identity
from pyswarmkit.ca.tokens import parse_token
from pyswarmkit.transport.bus import Envelope
from pyswarmkit.transport.zmq_bus import CurveKeys, ZmqBus, split_hostport

log = logging.getLogger(__name__)

DEFAULT_REMOTE_API = "0.0.0.0:4242"
UPSTREAM_FILE = "manager.json"
# One join attempt waits this long for an answer; pauses between attempts
# double from the first to the last.
JOIN_ATTEMPT_TIMEOUT = 5.0
JOIN_PAUSE_FIRST = 1.0
JOIN_PAUSE_MAX = 30.0
# A joiner gives up after this many failed CurveZMQ handshakes with no
# successful one: the listener is there but is not the swarm the token names.
HANDSHAKE_FAILURES_TO_REFUSE = 3
# The joiner does not know the manager's node ID yet: "" reaches whichever
# manager answers on the address.
ANY_MANAGER = ""


class JoinRefused(SwarmError):
    """The manager answered, and said no: retrying would not help."""

    code = "permission_denied"


def parse_addr(text: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port)."""
    try:
        return split_hostport(text)
    except ValueError:
        raise InvalidArgument(
            f"invalid {flag} {text[:100]!r}: use HOST:PORT, e.g. 127.0.0.1:4242"
        ) from None


WILDCARDS = ("0.0.0.0", "::", "*")


def dialable_host(host: str) -> str:
    """The address other nodes can dial for a listener on ``host``: for a
    wildcard, this machine's address on its default route (no packet is sent;
    the kernel only picks a source address), else 127.0.0.1 on a machine
    without a route. Give --advertise-remote-api when neither is right."""
    if host not in WILDCARDS:
        return host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed beyond the choice
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def check_dial_addr(text: str, flag: str) -> None:
    """An address to dial: well formed, a real port, and a host that resolves."""
    host, port = parse_addr(text, flag)
    if port == 0:
        raise InvalidArgument(f"invalid {flag} {text!r}: port 0 is not a port to dial")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidArgument(f"cannot resolve {host!r} in {flag}: {exc}") from None


def check_can_listen(text: str, flag: str) -> None:
    """Fail before anything is written if the address cannot be listened on
    (ZeroMQ itself binds later, once the swarm's keys exist)."""
    host, port = parse_addr(text, flag)
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(
            host if host != "*" else "0.0.0.0", port, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidArgument(f"cannot resolve {host!r} in {flag}: {exc}") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Unavailable(
                    f"cannot listen on {text}: the address is in use (another swarmd?): "
                    f"choose another {flag}"
                ) from None
            raise Unavailable(f"cannot listen on {text}: {exc.strerror}") from None


def join_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Upstream:
    """The manager a worker reports to, and the server key it pins."""

    manager_id: str
    addr: str
    server_key: bytes


def save_upstream(state_dir: Path, up: Upstream) -> None:
    data = {
        "manager_id": up.manager_id,
        "addr": up.addr,
        "server_key": z85.encode(up.server_key).decode(),
    }
    path = state_dir / UPSTREAM_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_upstream(state_dir: Path) -> Upstream | None:
    path = state_dir / UPSTREAM_FILE
    try:
        data = json.loads(path.read_text())
        key = z85.decode(data["server_key"].encode())
        up = Upstream(str(data["manager_id"]), str(data["addr"]), key)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise InvalidArgument(
            f"{path} is damaged: remove {state_dir} and join the swarm again with a token"
        ) from None
    parse_addr(up.addr, str(path))
    if len(up.server_key) != 32:
        raise InvalidArgument(
            f"{path} holds no valid server key: remove {state_dir} and join again"
        )
    return up


def join_swarm(
    state_dir: Path,
    addr: str,
    token: str,
    description: NodeDescription,
    stop: threading.Event | None = None,
) -> tuple[Identity, Upstream]:
    """Join through the manager at ``addr`` with ``token``; save and return the
    identity it issues. A refusal raises JoinRefused at once; a manager that
    does not answer is asked again, with growing pauses, until ``stop`` is set."""
    token = token.strip()
    pinned = parse_token(token).server_key
    keypair = certs.new_curve_keypair()
    bus = ZmqBus(ANY_MANAGER, CurveKeys(keypair.public, keypair.secret))
    bus.start()
    try:
        bus.dial(ANY_MANAGER, addr, pinned)
        accepted = _ask(bus, addr, token, description, stop or threading.Event())
    finally:
        bus.stop()
    try:
        # Valid by the CA's clock, which is the one that checks it; this
        # machine's may be off (said below), and is not a reason to refuse.
        info = certs.verify_signed(accepted.certificate, accepted.root_ca)
    except SwarmError as err:
        raise Internal(f"the manager at {addr} issued an unusable certificate: {err}") from None
    if info.curve_key != keypair.public or info.node_id != accepted.node_id:
        raise Internal(f"the manager at {addr} issued a certificate for another key")
    note = certs.clock_note(info, clock.wall())
    if note:
        log.warning("%s", note)
    files.save_identity(state_dir, keypair, accepted.certificate, accepted.root_ca)
    if accepted.server_secret:
        files.save_server_key(state_dir, accepted.server_secret)
    upstream = Upstream(accepted.manager_id, addr, pinned)
    save_upstream(state_dir, upstream)
    # Read back as of its issue: what is checked here is that the files are whole.
    identity = files.load_identity(state_dir, certs.issued_at(info))
    if identity is None:
        raise Internal(f"the identity just saved under {state_dir} cannot be read back")
    log.info("joined the swarm as node %s (%s)", info.node_id, info.role.name.lower())
    return identity, upstream


def _ask(
    bus: ZmqBus, addr: str, token: str, description: NodeDescription, stop: threading.Event
) -> JoinAccepted:
    pause = JOIN_PAUSE_FIRST
    attempt = 1
    while True:
        env = Envelope(ANY_MANAGER, ANY_MANAGER, "ca", JoinRequest(token, description))
        future = bus.request(env, JOIN_ATTEMPT_TIMEOUT)
        try:
            body = _answer(bus, future, addr)
        except (DeadlineExceeded, Unavailable):
            log.warning(
                "no answer from a manager at %s (attempt %d): trying again in %.0fs",
                addr,
                attempt,
                pause,
            )
        except FailedPrecondition as err:
            # The manager is there but not ready (starting, a store restarting).
            log.warning(
                "the manager at %s cannot answer yet (%s; attempt %d): trying again in %.0fs",
                addr,
                err,
                attempt,
                pause,
            )
        except JoinRefused:
            raise
        except SwarmError as err:
            raise JoinRefused(f"join refused: {err}") from None
        else:
            if isinstance(body, JoinAccepted):
                return body
            raise Internal(f"the manager at {addr} answered a join with {body.kind}")
        if stop.wait(pause):
            raise Unavailable("stopped while joining the swarm")
        pause = min(JOIN_PAUSE_MAX, pause * 2)
        attempt += 1


def _answer(bus: ZmqBus, future: Future[Body], addr: str) -> Body:
    """The answer to one join attempt. Something that listens at ``addr`` but
    fails every CurveZMQ handshake does not hold the server key the token
    pins: asking again would not change that."""
    while True:
        try:
            return future.result(timeout=0.2)
        except TimeoutError:
            stats = bus.stats()
            if (
                stats["handshake_failures"] >= HANDSHAKE_FAILURES_TO_REFUSE
                and not stats["handshakes"]
            ):
                raise JoinRefused(
                    f"join refused: {addr} does not hold the key this join token names: "
                    "the token is for another swarm, or nothing there is a swarm manager"
                ) from None
