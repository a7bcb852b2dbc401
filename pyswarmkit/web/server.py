"""The HTTP side of the web view: starlette routes served by uvicorn on a
thread of its own inside swarmd.

Everything here is a GET: the page, its static files, the swarm as JSON
(``/api/swarm``) and the same JSON pushed as server-sent events
(``/api/events``) whenever the store's index moves. The stream checks the
index (one integer read) every ``interval`` seconds rather than hooking the
store's watchers: a slow browser then never holds up a commit, and a burst of
commits becomes one message. Snapshots are built off the event loop and
cached by index, so any number of open pages costs one build per change.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pyswarmkit import clock
from pyswarmkit.api.errors import Unavailable
from pyswarmkit.store.memory import MemoryStore
from pyswarmkit.transport.zmq_bus import split_hostport
from pyswarmkit.web.view import is_loopback, snapshot

STATIC = Path(__file__).with_name("static")
# How often an open event stream looks at the store's index, in seconds.
INTERVAL = 0.25
# After a build that took d seconds, a stream looks again no sooner than this
# many times d: on a large, busy swarm open pages take a bounded share of the
# process (one snapshot of 100,000 tasks takes about 0.1 s).
BUILD_BACKOFF = 10
# A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE = 15.0
# How long start waits for uvicorn to listen, and stop for it to finish.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5

NOT_A_MANAGER = {
    "index": -1,
    "error": "this node is not a manager: open the web view of a manager",
    "nodes": [],
    "services": [],
    "unassigned": [],
    "more_unassigned": 0,
}

# The page loads only its own files, and no other site may frame it.
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class WebServer:
    """``swarmd --listen-web``: the read-only page of the swarm, from the
    store ``store()`` returns (None on a node that is not a manager)."""

    def __init__(
        self,
        hostport: str,
        store: Callable[[], MemoryStore | None],
        interval: float = INTERVAL,
    ) -> None:
        self._store = store
        self._interval = interval
        self._closing = False
        self._cache: tuple[int, bytes] | None = None
        # How long the last snapshot took to build, in seconds.
        self._build_seconds = 0.0
        self._cache_lock = threading.Lock()
        host, port = split_hostport(hostport)
        host = "0.0.0.0" if host == "*" else host
        sock = _bind(hostport, host, port)
        self.port: int = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.address = f"{shown}:{self.port}"
        middleware = [Middleware(_SecurityHeaders)]
        if is_loopback(host):
            # A page of another site must not read the swarm by pointing one
            # of its names at 127.0.0.1 (DNS rebinding): only loopback names.
            loopback = ["127.0.0.1", "localhost", "[::1]", "::1"]
            middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=loopback))
        app = Starlette(
            routes=[
                Route("/", self._page),
                Route("/api/swarm", self._swarm),
                Route("/api/events", self._events),
                Mount("/static", StaticFiles(directory=STATIC)),
            ],
            middleware=middleware,
        )
        config = uvicorn.Config(
            app,
            # swarmd's own logging setup carries uvicorn's warnings and errors.
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=STOP_TIMEOUT,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="web", daemon=True
        )
        self._thread.start()
        deadline = clock.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or clock.monotonic() > deadline:
                sock.close()
                raise Unavailable(f"cannot serve the web view on {hostport}: it did not start")
            clock.sleep(0.01)
        self._sock = sock

    def stop(self) -> None:
        # Open event streams end at their next look at the index.
        self._closing = True
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT + 1)
        self._sock.close()

    # --- routes ----------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    async def _swarm(self, request: Request) -> Response:
        _, body = await run_in_threadpool(self.snapshot)
        return Response(body, media_type="application/json", headers={"cache-control": "no-store"})

    async def _events(self, request: Request) -> Response:
        return StreamingResponse(
            self._stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def _stream(self) -> AsyncIterator[bytes]:
        # The browser's EventSource reconnects by itself, after `retry` ms.
        yield b"retry: 1000\n\n"
        sent = None
        quiet = 0.0
        while not self._closing:
            pause = self._interval
            if self._index() != sent:
                sent, body = await run_in_threadpool(self.snapshot)
                quiet = 0.0
                pause = max(pause, BUILD_BACKOFF * self._build_seconds)
                yield b"data: " + body + b"\n\n"
            elif quiet >= KEEPALIVE:
                quiet = 0.0
                yield b": keepalive\n\n"
            await asyncio.sleep(pause)
            quiet += pause

    # --- the data ----------------------------------------------------------------

    def _index(self) -> int:
        store = self._store()
        return -1 if store is None else store.index

    def snapshot(self) -> tuple[int, bytes]:
        """(store index, the page's JSON) now; built again only once the
        index has moved."""
        store = self._store()
        if store is None:
            return -1, json.dumps(NOT_A_MANAGER).encode()
        with self._cache_lock:
            if self._cache is not None and self._cache[0] == store.index:
                return self._cache
            # One consistent view; the objects are frozen, so the lists
            # can be read after the lock is released.
            began = clock.monotonic()
            with store.reading() as s:
                index, nodes, services, tasks = s.index, s.nodes(), s.services(), s.tasks()
            data = snapshot(index, nodes, services, tasks)
            self._cache = index, json.dumps(data, separators=(",", ":")).encode()
            self._build_seconds = clock.monotonic() - began
            return self._cache


def _bind(hostport: str, host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a bad address or a port in
    use is one clear error as swarmd starts, not a log line on a thread."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise Unavailable(f"cannot serve the web view on {hostport}: {_reason(exc)}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot serve the web view on {hostport}: {_reason(exc)}") from None
    sock.set_inheritable(False)
    return sock


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
