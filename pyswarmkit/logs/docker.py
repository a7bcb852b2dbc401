"""A container's log through the Docker SDK, for the Docker executor.

The engine's log call blocks (and, following, never ends), so it runs on a
thread of its own that hands lines to ``read`` through a bounded queue: when
the broker's window is full nobody reads, the queue fills, the thread waits,
and the engine's socket fills in turn. ``close`` cuts the HTTP stream."""

from __future__ import annotations

import contextlib
import logging
import queue
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pyswarmkit.logs.lines import STDERR, STDOUT, LogLine, decode, split_stamp

log = logging.getLogger(__name__)

# Lines waiting for ``read``; the thread waits when this many are queued.
QUEUE_LINES = 4000
# A follow looks for a container not made yet this often.
FIND_AGAIN = 1.0
_END = object()


class DockerLogReader:
    def __init__(
        self,
        client: Any,
        find: Callable[[], str | None],
        *,
        follow: bool,
        since: float | None,
        tail: int,
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        # The task's container ID, looked up on the reading thread (a call to the engine).
        self.find = find
        self.follow = follow
        self.since = since
        self.tail = tail
        self.clock = clock
        self.q: queue.Queue[object] = queue.Queue(QUEUE_LINES)
        self.closed = threading.Event()
        self.finished = False
        self.error = ""
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="docker-logs", daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return self.finished

    def read(self, max_bytes: int, max_lines: int) -> list[LogLine]:
        out: list[LogLine] = []
        size = 0
        while len(out) < max_lines and size < max_bytes:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self.finished = True
                if self.error:
                    raise RuntimeError(self.error)
                break
            assert isinstance(item, LogLine)
            out.append(item)
            size += len(item.text) + 1
        return out

    def close(self) -> None:
        self.closed.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _put(self, item: object) -> bool:
        while not self.closed.is_set():
            try:
                self.q.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            container_id = self.find()
            # A follow of a task whose container is not made yet waits for it.
            while container_id is None and self.follow and not self.closed.wait(FIND_AGAIN):
                container_id = self.find()
            if container_id is not None and not self.closed.is_set():
                for line in self._lines(container_id):
                    if not self._put(line):
                        return
        except Exception as exc:
            if not self.closed.is_set():
                self.error = f"the engine's log stream failed: {exc}"
                log.warning("log of container: %s", self.error)
        self._put(_END)

    def _lines(self, container_id: str) -> Iterator[LogLine]:
        """The container's lines, each of one stream (stdout or stderr, told
        apart by the multiplexed stream's frame headers) and stamped by Docker."""
        from docker.types.daemon import CancellableStream

        api = self.client.api
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": 1 if self.follow else 0,
            "tail": "all" if self.tail < 0 else self.tail,
        }
        if self.since is not None and self.since > 0:
            # Docker reads the digits after the point as nanoseconds: all nine.
            whole = int(self.since)
            params["since"] = f"{whole}.{int((self.since - whole) * 1e9):09d}"
        res = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
        api._raise_for_status(res)
        self._stream = CancellableStream(iter(()), res)
        if self.closed.is_set():
            self._stream.close()
            return
        # A follow may wait for output for ever: no read time-out.
        with contextlib.suppress(Exception):
            api._disable_socket_timeout(api._get_raw_response_socket(res))
        rest = {STDOUT: b"", STDERR: b""}
        for stream, data in frames(res.raw.read):
            if stream in rest:
                parts = (rest[stream] + data).split(b"\n")
                rest[stream] = parts.pop()
                for raw in parts:
                    t, text = split_stamp(raw, self.clock())
                    yield LogLine(stream, t, decode(text))
        for stream, raw in rest.items():
            if raw:
                t, text = split_stamp(raw, self.clock())
                yield LogLine(stream, t, decode(text))


def frames(read: Callable[[int], bytes]) -> Iterator[tuple[int, bytes]]:
    """The engine's multiplexed stream: 8-byte headers (stream 1 stdout, 2
    stderr; big-endian length) each before its payload, until the stream ends."""
    while True:
        header = _exactly(read, 8)
        if len(header) < 8:
            return
        stream, length = header[0], struct.unpack(">L", header[4:8])[0]
        data = _exactly(read, length)
        if len(data) < length:
            return
        yield stream, data


def _exactly(read: Callable[[int], bytes], n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        got = read(n - len(buf))
        if not got:
            break
        buf += got
    return buf
