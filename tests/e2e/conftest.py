from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster import Swarm
from helpers import swarmctl, tool, wait_until


@dataclass
class Swarmd:
    proc: subprocess.Popen[bytes]
    socket: str
    state_dir: Path

    def sh(self, line: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """swarmctl with the arguments written as a shell would split them."""
        return self.ctl(*shlex.split(line), check=check)

    def replicas(self, name: str) -> str:
        """The Replicas column of `service ls` for the service, e.g. '3/3'."""
        for line in self.ctl("service", "ls").stdout.splitlines():
            cols = line.split()
            if len(cols) >= 2 and cols[1] == name:
                return cols[-1]
        return ""

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            swarmctl(self.socket, *args),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"swarmctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # ipc:// paths must stay under 107 bytes; pytest's tmp_path can be long.
    path = Path(tempfile.mkdtemp(prefix="swk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def swarmd(short_tmp: Path) -> Iterator[Swarmd]:
    state = short_tmp / "node-1"
    sock = str(state / "swarm.sock")
    log = open(short_tmp / "swarmd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            tool("swarmd"),
            "-d",
            str(state),
            "--listen-control-api",
            sock,
            "--hostname",
            "node-1",
            "--listen-remote-api",
            "127.0.0.1:0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    node = Swarmd(proc, sock, state)
    try:
        wait_until(lambda: node.ctl("node", "ls", check=False).returncode == 0, what="swarmd")
        wait_until(lambda: "READY" in node.ctl("node", "ls").stdout, what="node READY")
        yield node
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def swarm(short_tmp: Path, request: pytest.FixtureRequest) -> Iterator[Swarm]:
    s = Swarm(short_tmp)
    try:
        yield s
    finally:
        s.stop()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            # What each node said, for the failure report (the directory goes next).
            for path in sorted(short_tmp.glob("*.log")):
                lines = path.read_text(errors="replace").splitlines()
                print(f"--- {path.name} (last 40 lines)")
                print("\n".join(lines[-40:]))
