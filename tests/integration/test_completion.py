"""Shell completion: `swarmctl --install-completion` for bash and zsh, and
names completed from the running swarm."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import tool, wait_until
from nodes import one_node, running, spec

pytestmark = pytest.mark.integration


def complete(shell: str, words: str, env: dict[str, str] | None = None) -> list[str]:
    extra = {"_SWARMCTL_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        extra |= {"COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    else:
        extra |= {"_TYPER_COMPLETE_ARGS": words}
    out = subprocess.run(
        [tool("swarmctl")],
        env={**os.environ, **(env or {}), **extra},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize(
    ("shell", "script"), [("bash", ".bash_completions/swarmctl.sh"), ("zsh", ".zfunc/_swarmctl")]
)
def test_install_completion_writes_the_shells_script(
    tmp_path: Path, shell: str, script: str
) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    out = subprocess.run(
        [tool("swarmctl"), "--install-completion", shell],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "_SWARMCTL_COMPLETE" in (tmp_path / script).read_text()


def test_names_come_from_the_running_swarm() -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        client.call("service.create", {"spec": spec("web", 1)})
        wait_until(lambda: running(node, "web") == 1, what="1 running")
        [task] = [t.id for t in node.store.tasks()]
        assert sorted(complete("bash", "swarmctl se")) == ["secret", "service"]
        assert complete("bash", f"swarmctl -s {sock} node drain no") == ["node-1"]
        got = complete("bash", "swarmctl task inspect ", {"SWARM_SOCKET": sock})
        assert got == [task]
        assert complete("bash", f"swarmctl -s {sock} service inspect w") == ["web"]
        zsh = " ".join(complete("zsh", f"swarmctl -s {sock} node inspect "))
        assert "node-1" in zsh and node.node_id in zsh
        # No swarm there: nothing to offer, and no error either.
        assert complete("bash", "swarmctl -s /nonexistent/sock node drain ") == []
