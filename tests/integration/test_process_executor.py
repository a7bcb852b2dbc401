"""The process executor against real processes, and the executor actor's stop
grace period."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pykka
import pytest
from helpers import alive, wait_until

from pyswarmkit.actors.executor import ExecutorActor
from pyswarmkit.actors.messages import ExecutorEvent, ExecutorEvents, Tick
from pyswarmkit.actors.registry import Registry
from pyswarmkit.agent.core import Command
from pyswarmkit.api.objects import ContainerSpec, Task, TaskSpec, replace
from pyswarmkit.executor.base import ExecutorError
from pyswarmkit.executor.process import ProcessExecutor

pytestmark = pytest.mark.integration


def task(*argv: str, env: tuple[str, ...] = (), cwd: str = "", grace: float = 10.0) -> Task:
    container = ContainerSpec(
        command=argv[:1], args=argv[1:], env=env, dir=cwd, stop_grace_period=grace
    )
    return Task(id=f"t{time.monotonic_ns()}", spec=TaskSpec(container=container))


def run_to_exit(executor: ProcessExecutor, t: Task) -> tuple[int, str, str]:
    ctl = executor.controller(t)
    ctl.prepare()
    ctl.start()
    wait_until(lambda: ctl.poll() is not None, what="exit")
    code = ctl.poll()
    assert code is not None
    out, err = (p.read_text() for p in ctl.log_files())
    ctl.remove()
    return code, out, err


def test_exit_code_output_env_and_dir(tmp_path: Path) -> None:
    ex = ProcessExecutor(tmp_path, "node-1")
    script = 'echo "$GREETING from $(pwd)"; echo oops >&2; exit 3'
    code, out, err = run_to_exit(
        ex, task("sh", "-c", script, env=("GREETING=hello",), cwd=str(tmp_path))
    )
    assert code == 3
    assert out == f"hello from {tmp_path}\n"
    assert err == "oops\n"


def test_missing_command_and_bad_dir(tmp_path: Path) -> None:
    ex = ProcessExecutor(tmp_path, "node-1")
    ctl = ex.controller(task("no-such-command-xyz"))
    ctl.prepare()
    with pytest.raises(ExecutorError, match=r"no-such-command-xyz.*No such file or directory"):
        ctl.start()
    with pytest.raises(ExecutorError, match="does not exist"):
        ex.controller(task("true", cwd=str(tmp_path / "nowhere"))).prepare()
    with pytest.raises(ExecutorError, match="needs --command"):
        ex.controller(Task(id="empty")).prepare()


def test_shutdown_stops_the_whole_process_group(tmp_path: Path) -> None:
    ex = ProcessExecutor(tmp_path, "node-1")
    pidfile = tmp_path / "child.pid"
    ctl = ex.controller(task("sh", "-c", f"sleep 1000 & echo $! > {pidfile}; wait"))
    ctl.prepare()
    pid = ctl.start()
    child = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="pid"))
    assert os.getpgid(child) == pid  # the task leads its own group
    ctl.shutdown()
    code = wait_until(ctl.poll, what="exit after SIGTERM")
    assert code == 143  # 128 + SIGTERM
    wait_until(lambda: not alive(child), what="the grandchild gone too")
    ctl.remove()


def test_shutdown_sends_the_tasks_stop_signal(tmp_path: Path) -> None:
    ex = ProcessExecutor(tmp_path, "node-1")
    t = task(
        "sh",
        "-c",
        "trap 'echo got INT; exit 7' INT; trap '' TERM; echo ready; while :; do sleep 0.05; done",
    )
    t = Task(id=t.id, spec=TaskSpec(container=replace(t.spec.container, stop_signal="SIGINT")))
    ctl = ex.controller(t)
    ctl.prepare()
    ctl.start()
    out = ctl.log_files()[0]
    wait_until(lambda: out.read_text() == "ready\n", what="the traps set")
    ctl.shutdown()
    assert wait_until(ctl.poll, what="exit after SIGINT") == 7
    assert out.read_text() == "ready\ngot INT\n"
    ctl.remove()


class Collector(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[ExecutorEvent] = []
        self.lock = threading.Lock()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ExecutorEvents):
            with self.lock:
                self.events.extend(message.events)
        return None


def test_sigkill_after_the_stop_grace_period(tmp_path: Path) -> None:
    registry = Registry("node-1")
    collector = Collector.start()
    registry.add("agent", collector)
    actor = ExecutorActor.start(registry, ProcessExecutor(tmp_path, "node-1"))
    proxy = collector.proxy()
    try:
        # Ignores SIGTERM: only SIGKILL, after the 0.5 s grace, stops it.
        t = task("sh", "-c", "trap '' TERM; while true; do sleep 0.1; done", grace=0.5)
        actor.tell(Command("prepare", t))
        actor.tell(Command("start", t))
        started = wait_until(
            lambda: [e for e in proxy.events.get() if e.kind == "started"], what="started"
        )
        pid = started[0].pid
        stop_at = time.monotonic()
        actor.tell(Command("shutdown", t))

        def exited() -> list[ExecutorEvent]:
            actor.tell(Tick(time.monotonic(), time.time()))
            return [e for e in proxy.events.get() if e.kind == "exited"]

        ev = wait_until(exited, what="killed")[0]
        assert ev.exit_code == 137  # 128 + SIGKILL
        assert time.monotonic() - stop_at >= 0.5
        assert not alive(pid)
    finally:
        actor.stop()
        collector.stop()


def test_control_socket_is_private(tmp_path: Path) -> None:
    from pyswarmkit.transport.control import ControlServer

    sock = Path("/tmp") / f"swk-{os.getpid()}-{time.monotonic_ns()}.sock"
    server = ControlServer(str(sock), lambda req: None)
    server.start()
    try:
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        assert mode == 0o600
    finally:
        server.stop()
    assert not sock.exists()


def test_a_controller_that_raises_fails_the_task_not_the_actor(tmp_path: Path) -> None:
    registry = Registry("node-1")
    collector = Collector.start()
    registry.add("agent", collector)
    actor = ExecutorActor.start(registry, ProcessExecutor(tmp_path, "node-1"))
    proxy = collector.proxy()
    try:
        # Popen refuses a NUL byte with ValueError, not ExecutorError.
        bad = task("sleep", "10\0")
        actor.tell(Command("prepare", bad))
        actor.tell(Command("start", bad))
        started = wait_until(
            lambda: [e for e in proxy.events.get() if e.kind == "started"], what="started"
        )
        assert "ValueError" in started[0].err
        good = task("true")
        actor.tell(Command("prepare", good))
        actor.tell(Command("start", good))

        def exited() -> list[ExecutorEvent]:
            actor.tell(Tick(time.monotonic(), time.time()))
            return [e for e in proxy.events.get() if e.kind == "exited" and e.task_id == good.id]

        assert wait_until(exited, what="the next task runs")[0].exit_code == 0
        assert actor.is_alive()
    finally:
        actor.stop()
        collector.stop()
