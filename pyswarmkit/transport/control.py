"""The control API socket: ZeroMQ over ipc://, reachable only by the owner.

The server is one I/O thread owning a ROUTER socket. Each request becomes a
``ControlRequest`` for the control actor; replies come back from any thread
through a queue and a wake-up pipe, so only the I/O thread touches the socket.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import socket
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from pyswarmkit.actors.messages import ControlRequest
from pyswarmkit.api import codec
from pyswarmkit.api.errors import (
    DeadlineExceeded,
    InvalidArgument,
    SwarmError,
    Unavailable,
    error_from_wire,
)

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# A long list in a reply goes as a stream of pages (each reply frame but the
# last says "more"), so a client shows the first page while the rest is encoded
# and sent. A request may ask for a page size with "page_size".
DEFAULT_PAGE_SIZE = 1000
# ROUTER drops what exceeds its send high-water mark (1000 frames per peer):
# pages grow so no stream needs more frames than this.
MAX_PAGES = 200
# Linux's sun_path holds 108 bytes including the terminating NUL.
MAX_IPC_PATH = 107


def check_socket_length(path: str) -> None:
    if len(os.fsencode(path)) > MAX_IPC_PATH:
        raise InvalidArgument(
            f"control socket path {path} is longer than {MAX_IPC_PATH} bytes: choose a shorter one"
        )


def check_socket_path(path: str) -> None:
    """Refuse a path a server could not bind, before anything else is set up."""
    check_socket_length(path)
    _claimable(path)


def _claimable(path: str) -> bool:
    """Whether a stale socket sits at ``path`` (True) or nothing does (False).

    Only a unix socket nobody answers on may be replaced: anything else at the
    path (a file, a directory, a live socket) is someone's, and is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise InvalidArgument(f"cannot use {path} as the control socket: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a socket"
        raise InvalidArgument(
            f"{path} exists and is {kind}: choose another --listen-control-api path"
        )
    if _answers(path):
        raise Unavailable(f"another swarmd is already serving {path}")
    return True


class ControlServer:
    def __init__(self, path: str, deliver: Callable[[ControlRequest], None]) -> None:
        self.path = os.path.abspath(path)
        check_socket_path(self.path)
        self.deliver = deliver
        self.malformed = 0
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._outbox: queue.SimpleQueue[tuple[bytes, bytes]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="control-api", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _bind(self) -> zmq.Socket[bytes]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if _claimable(self.path):
            os.unlink(self.path)
        sock: zmq.Socket[bytes] = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        # The socket file is born 0600: reaching it is the authorization.
        old = os.umask(0o177)
        try:
            sock.bind(f"ipc://{self.path}")
        finally:
            os.umask(old)
        os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)
        return sock

    def _run(self) -> None:
        try:
            sock = self._bind()
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(1000))
                if self._wake_r in events:
                    os.read(self._wake_r, 4096)
                while True:
                    try:
                        ident, data = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    sock.send_multipart([ident, data])
                if sock in events:
                    while True:
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._request(frames)
        finally:
            sock.close(0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _request(self, frames: list[bytes]) -> None:
        ident = frames[0]
        try:
            if len(frames) != 2:
                raise InvalidArgument("a control request is one frame")
            req = decode_request(frames[1])
        except SwarmError as err:
            self.malformed += 1
            log.warning("malformed control request: %s", err)
            self._send(ident, {"v": PROTOCOL_VERSION, "id": 0, "ok": False, "error": err.to_wire()})
            return
        msg_id, method, body, page_size = req.id, req.method, req.body, req.page_size

        def reply(result: dict[str, Any]) -> None:
            pages = paginate(result, page_size)
            last = len(pages) - 1
            for i, page in enumerate(pages):
                self._send(ident, {"v": PROTOCOL_VERSION, "id": msg_id, **page, "more": i < last})

        try:
            self.deliver(ControlRequest(method, body, reply))
        except Exception as exc:
            # The control actor is gone (the node is stopping): answer, do not die.
            log.warning("control request %s not delivered: %s", method, exc)
            reply({"ok": False, "error": Unavailable("swarmd is shutting down").to_wire()})

    def _send(self, ident: bytes, msg: dict[str, Any]) -> None:
        self._outbox.put((ident, codec.packb(msg)))
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")


@dataclass(frozen=True, slots=True)
class Request:
    """A control request as the server reads it from one frame."""

    # Echoed in every reply frame.
    id: int
    method: str
    body: dict[str, Any]
    page_size: int


def decode_request(data: bytes) -> Request:
    """The request in one frame, or InvalidArgument with one line saying what
    was wrong (what the server answers a malformed request with)."""
    try:
        msg = codec.unpackb(data, MAX_REQUEST_BYTES)
    except codec.CodecError as exc:
        raise InvalidArgument(str(exc)) from None
    if not isinstance(msg, dict) or msg.get("v") != PROTOCOL_VERSION:
        raise InvalidArgument(
            f"unsupported control request: expected protocol version {PROTOCOL_VERSION}"
        )
    method, body = msg.get("method"), msg.get("body", {})
    if not isinstance(method, str) or not isinstance(body, dict):
        raise InvalidArgument("a control request needs a method name and a body map")
    # Echoed in every reply: anything but a number could be a value the reply
    # cannot carry (nested deeper than an encoder recurses).
    msg_id = msg.get("id", 0)
    if isinstance(msg_id, bool) or not isinstance(msg_id, int):
        raise InvalidArgument("a control request's id must be an integer")
    page_size = body.get("page_size")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        page_size = DEFAULT_PAGE_SIZE
    return Request(msg_id, method, body, page_size)


def paginate(reply: dict[str, Any], page_size: int) -> list[dict[str, Any]]:
    """Split a successful reply whose result holds one long list into pages:
    the first page carries every other field, each page a slice of the list."""
    result = reply.get("result")
    if not reply.get("ok") or not isinstance(result, dict):
        return [reply]
    long_lists = [
        k for k, v in result.items() if isinstance(v, list | tuple) and len(v) > page_size
    ]
    if len(long_lists) != 1:
        return [reply]
    key = long_lists[0]
    items: Sequence[Any] = result[key]
    size = max(page_size, -(-len(items) // MAX_PAGES))
    pages = [{**reply, "result": {**result, key: items[:size]}}]
    for start in range(size, len(items), size):
        pages.append({"ok": True, "result": {key: items[start : start + size]}})
    return pages


def merge_pages(pages: list[dict[str, Any]]) -> dict[str, Any]:
    """The result a paged reply stands for: lists joined, other fields kept.
    A single page is returned as it came."""
    if len(pages) == 1:
        return pages[0]
    merged: dict[str, Any] = {}
    for page in pages:
        for key, value in page.items():
            if isinstance(value, list | tuple) and isinstance(merged.get(key), list):
                merged[key].extend(value)
            else:
                merged[key] = list(value) if isinstance(value, list | tuple) else value
    return merged


def _answers(path: str) -> bool:
    """Whether something accepts connections on the unix socket at ``path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
    except OSError:
        return False
    finally:
        s.close()
    return True


class ControlClient:
    """A blocking client for one process (swarmctl, tests, topology launcher)."""

    _ids = itertools.count(1)

    def __init__(self, path: str, timeout: float = 15.0) -> None:
        self.path = os.path.abspath(path)
        self.timeout = timeout
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._sock: zmq.Socket[bytes] | None = None

    def _connect(self) -> zmq.Socket[bytes]:
        if self._sock is None:
            check_socket_length(self.path)
            if not _answers(self.path):
                raise Unavailable(f"cannot connect to swarmd at {self.path}: is it running?")
            sock: zmq.Socket[bytes] = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"ipc://{self.path}")
            self._sock = sock
        return self._sock

    def alive(self) -> bool:
        """Whether something still accepts connections on the socket's path."""
        return _answers(self.path)

    def call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request, its whole result (pages joined)."""
        return merge_pages(list(self.stream(method, body)))

    def stream(self, method: str, body: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """One request; yields its result page by page as the pages arrive."""
        sock = self._connect()
        msg_id = next(self._ids)
        sock.send(
            codec.packb({"v": PROTOCOL_VERSION, "id": msg_id, "method": method, "body": body or {}})
        )
        while True:
            if not sock.poll(int(self.timeout * 1000)):
                raise DeadlineExceeded(
                    f"swarmd at {self.path} did not answer {method} within {self.timeout:g} s"
                )
            reply = codec.unpackb(sock.recv())
            if not isinstance(reply, dict):
                raise Unavailable(f"swarmd at {self.path} sent a malformed reply")
            if reply.get("id") not in (msg_id, 0):
                continue  # a late answer to an earlier request
            if not reply.get("ok"):
                raise error_from_wire(reply.get("error"))
            result = reply.get("result", {})
            yield result if isinstance(result, dict) else {}
            if not reply.get("more"):
                return

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
