"""`service update` changes what `service create` set on the container: mounts
(replaced, added and removed by target, as Docker), working directory, user and
stop signal; a bad one gets one line and changes nothing."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import tool
from nodes import one_node, spec

pytestmark = pytest.mark.integration


def ctl(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("swarmctl"), "-s", sock, *args], capture_output=True, text=True, timeout=60
    )


def container(sock: str) -> dict[str, object]:
    out = ctl(sock, "service", "inspect", "web", "--format", "json")
    assert out.returncode == 0, out.stderr
    [svc] = json.loads(out.stdout)
    return svc["spec"]["task"]["container"]  # type: ignore[no-any-return]


def targets(c: dict[str, object]) -> list[tuple[str, bool]]:
    return [(m["target"], m["readonly"]) for m in c["mounts"]]  # type: ignore[attr-defined]


def test_update_changes_mounts_workdir_user_and_stop_signal(tmp_path: object) -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        client.call("service.create", {"spec": spec("web", 0)})
        up = ("service", "update", "web", "--detach")

        out = ctl(sock, *up, "--mount", "type=bind,source=/tmp,target=/a", "--mount",
                  "type=bind,source=/tmp,target=/b")  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert targets(container(sock)) == [("/a", False), ("/b", False)]

        out = ctl(sock, *up, "--mount-rm", "/a", "--mount-add",
                  "type=bind,source=/tmp,target=/b,readonly", "--mount-add",
                  "type=volume,source=data,target=/c")  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert targets(container(sock)) == [("/b", True), ("/c", False)]

        out = ctl(sock, *up, "--workdir", "/srv", "--user", "nobody", "--stop-signal", "SIGINT")
        assert out.returncode == 0, out.stderr
        c = container(sock)
        assert (c["dir"], c["user"], c["stop_signal"]) == ("/srv", "nobody", "SIGINT")
        text = ctl(sock, "service", "inspect", "web").stdout
        for line in ("Dir", "/srv"), ("User", "nobody"), ("Stop Signal", "SIGINT"):
            assert any(line[0] in t and t.endswith(line[1]) for t in text.splitlines()), text
        assert "type=bind,source=/tmp,target=/b,readonly" in text
        assert "type=volume,source=data,target=/c" in text

        # Each bad flag: one line, exit 1, the service unchanged.
        for bad, says in (
            (("--mount-rm", "/nowhere"), "no mount at that target"),
            (("--mount-add", "type=tmpfs,target=/x"), "type"),
            (("--stop-signal", "SIGNOPE"), "SIGNOPE"),
            (("--rollback", "--workdir", "/x"), "may not be combined with --rollback"),
            (
                (
                    "--mount-add",
                    "type=bind,source=/tmp,target=/x",
                    "--mount-add",
                    "type=volume,source=v,target=/x",
                    "--mount",
                    "type=bind,source=/a,target=/y",
                    "--mount",
                    "type=bind,source=/b,target=/y",
                ),
                "duplicate mount point: /y",
            ),
        ):
            out = ctl(sock, *up, *bad)
            assert out.returncode == 1 and says in out.stderr, (bad, out.stderr)
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert container(sock) == c
