"""`swarmctl events` against a running manager: it streams changes as they
commit, filters by type, and Ctrl-C ends it quietly with status 0."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time

import pytest
from helpers import tool
from nodes import one_node, spec

pytestmark = pytest.mark.integration


def follow(*args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    proc = subprocess.Popen(
        list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for out in proc.stdout:
            lines.put(out.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def wait_line(lines: queue.Queue[str], want: str, timeout: float = 20.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.2))
        except queue.Empty:
            continue
        if want in seen[-1]:
            return seen
    raise AssertionError(f"no line with {want!r} in {seen}")


def test_events_stream_as_they_commit_and_ctrl_c_ends_quietly() -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        # The manager keeps its event history from the first reader on: one
        # reads now, and the followers started below ask for all it holds,
        # however long they take to start.
        client.call("events.since", {})
        client.call("service.create", {"spec": spec("web", 2)})
        proc, lines = follow(tool("swarmctl"), "-s", sock, "events", "--since", "10m")
        svc_proc, svc_lines = follow(
            tool("swarmctl"),
            "-s",
            sock,
            "events",
            "--since",
            "10m",
            "--filter",
            "type=service",
            "--format",
            "json",
        )
        try:
            seen = wait_line(lines, "state=running")
            assert any(" service create web" in s for s in seen), seen
            assert any(" task create " in s and "service=web" in s for s in seen), seen
            docs = [json.loads(s) for s in wait_line(svc_lines, '"name":"web"')]
            assert {d["kind"] for d in docs} == {"service"}
            # Both are streaming now: what commits next shows up as it does.
            client.call("service.create", {"spec": spec("db", 0)})
            assert wait_line(lines, " service create db")
            later = [json.loads(s) for s in wait_line(svc_lines, '"name":"db"')]
            assert later[-1]["op"] == "create"
        finally:
            for p in (proc, svc_proc):
                p.send_signal(signal.SIGINT)
        for p in (proc, svc_proc):
            assert p.wait(10) == 0
            assert p.stderr is not None and p.stderr.read() == ""


def test_events_end_with_one_line_when_swarmd_stops() -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        client.call("events.since", {})
        client.call("service.create", {"spec": spec("web", 0)})
        proc, lines = follow(tool("swarmctl"), "-s", sock, "events", "--since", "10m")
        assert wait_line(lines, " service create web")
        node.stop()
        assert proc.wait(15) == 1
        assert proc.stderr is not None
        err = proc.stderr.read().splitlines()
        assert len(err) == 1 and "stopped" in err[0], err
