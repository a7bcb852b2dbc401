"""`swarmctl stack` against a running node: deploy (all or nothing, one
write), redeploy (only what changed), ls, services, ps, rm, and bad compose
files refused in one line naming the place."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from helpers import swarmctl
from nodes import one_node

from pyswarmkit.api.objects import Task
from pyswarmkit.transport.control import ControlClient

pytestmark = pytest.mark.integration

SECRET = b"stack-secret-value"

COMPOSE = """\
version: "3.8"
services:
  web:
    image: nginx:1.25
    command: serve --port 80
    deploy:
      replicas: 2
      update_config: {parallelism: 2, monitor: 1s}
    secrets:
      - source: db_pass
        target: password
        mode: 0400
    configs: [site]
  agent:
    command: agent --fast
    deploy: {mode: global}
  db:
    command: db
    environment: {SIZE: "{size}"}
secrets:
  db_pass:
    file: ./db_pass.txt
configs:
  site:
    file: site.conf
"""


def run(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(swarmctl(sock, *args), capture_output=True, text=True, timeout=60)


def ok(sock: str, *args: str) -> str:
    out = run(sock, *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def fails(sock: str, *args: str) -> str:
    """The one error line a refused command prints."""
    out = run(sock, *args)
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def write_stack(tmp_path: Path, size: str = "1") -> str:
    (tmp_path / "db_pass.txt").write_bytes(SECRET)
    (tmp_path / "site.conf").write_text("listen 80\n")
    path = tmp_path / "compose.yml"
    path.write_text(COMPOSE.replace("{size}", size))
    return str(path)


def running_tasks(client: ControlClient, want: int, deadline: float = 20.0) -> dict[str, str]:
    """Task ID -> service name of the running tasks, once there are ``want``."""
    end = time.monotonic() + deadline
    while True:
        tasks: list[Task] = client.call("task.list", {})["tasks"]
        up = {t.id: t.service_name for t in tasks if t.status.state.name == "RUNNING"}
        if len(up) == want and all(t.desired_state.name == "RUNNING" for t in tasks):
            return up
        assert time.monotonic() < end, f"{len(up)} of {want} tasks running"
        time.sleep(0.05)


def test_deploy_redeploy_list_and_remove(tmp_path: Path) -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        compose = write_stack(tmp_path)
        start = client.call("events.since", {})["next"]
        out = ok(sock, "stack", "deploy", "-c", compose, "app")
        assert out.splitlines() == [
            "Creating secret app_db_pass",
            "Creating config app_site",
            "Creating service app_web",
            "Creating service app_agent",
            "Creating service app_db",
        ]
        # One write: every object of the deploy came in one store batch.
        events = client.call("events.since", {"index": start})["events"]
        created = [r for r in events if r[2] == "create" and r[3] != "task"]
        assert len(created) == 5 and len({r[0] for r in created}) == 1

        assert ok(sock, "stack", "ls").splitlines()[2].split() == ["app", "3"]
        [listed] = json.loads(ok(sock, "stack", "ls", "--format", "json"))
        assert listed == {"name": "app", "services": 3}
        rows = [r.split() for r in ok(sock, "stack", "services", "app").splitlines()[2:]]
        assert [(r[1], r[2], r[3]) for r in rows] == [
            ("app_agent", "global", "agent"),
            ("app_db", "replicated", "db"),
            ("app_web", "replicated", "nginx:1.25"),
        ]
        before = running_tasks(client, 4)
        ps = ok(sock, "stack", "ps", "app").splitlines()
        assert ps[0].split()[:2] == ["ID", "Name"] and len(ps) == 2 + 4
        assert set(ok(sock, "stack", "ps", "app", "-q").split()) == set(before)

        [web] = json.loads(ok(sock, "service", "inspect", "app_web", "--format", "json"))
        labels = web["spec"]["annotations"]["labels"]
        assert labels["com.docker.stack.namespace"] == "app"
        c = web["spec"]["task"]["container"]
        assert (c["command"], c["args"]) == ([], ["serve", "--port", "80"])
        assert c["secrets"][0]["target"] == "password" and c["secrets"][0]["mode"] == 0o400

        # The same file again: nothing changes, no task is replaced.
        out = ok(sock, "stack", "deploy", "-c", compose, "app")
        assert all(line.startswith("Service ") for line in out.splitlines())
        assert running_tasks(client, 4) == before

        # One change: that service's task is replaced, the others' are not.
        compose = write_stack(tmp_path, size="2")
        db_id = ok(sock, "stack", "services", "app", "-q").split()[1]
        out = ok(sock, "stack", "deploy", "--compose-file", compose, "app")
        updating = [line for line in out.splitlines() if line.startswith("Updating")]
        assert updating == [f"Updating service app_db (id: {db_id})"]
        end = time.monotonic() + 20
        while True:
            after = running_tasks(client, 4)
            if sorted(after.values()) == sorted(before.values()) and after != before:
                break
            assert time.monotonic() < end
            time.sleep(0.05)
        kept = {t for t, s in before.items() if s != "app_db"}
        assert kept <= set(after)
        assert not {t for t, s in before.items() if s == "app_db"} & set(after)

        out = ok(sock, "stack", "rm", "app")
        assert out.splitlines() == [
            "Removing service app_agent",
            "Removing service app_db",
            "Removing service app_web",
            "Removing secret app_db_pass",
            "Removing config app_site",
        ]
        assert ok(sock, "service", "ls", "-q") == ""
        assert ok(sock, "secret", "ls", "-q") == "" and ok(sock, "config", "ls", "-q") == ""
        gone = run(sock, "stack", "rm", "app")
        assert gone.returncode == 0 and gone.stderr == "Nothing found in stack: app\n"
        assert ok(sock, "stack", "down", "app") == ""
        assert fails(sock, "stack", "ps", "app") == "swarmctl: error: nothing found in stack: app"
        assert run(sock, "stack", "services", "app").stderr == "Nothing found in stack: app\n"


def test_nothing_is_half_deployed(tmp_path: Path) -> None:
    with one_node() as (node, _):
        sock = node.config.control_socket
        assert sock is not None
        compose = tmp_path / "compose.yml"
        (tmp_path / "pw.txt").write_text("pw")
        compose.write_text(
            "services:\n"
            "  web: {command: serve, secrets: [pw, shared]}\n"
            "  db: {command: db}\n"
            "secrets:\n"
            "  pw: {file: pw.txt}\n"
            "  shared: {external: true}\n"
        )
        # The external secret does not exist: nothing at all is created.
        line = fails(sock, "stack", "deploy", "-c", str(compose), "app")
        assert line == "swarmctl: error: secret not found: shared"
        assert ok(sock, "service", "ls", "-q") == "" and ok(sock, "secret", "ls", "-q") == ""

        ok(sock, "secret", "create", "shared", str(tmp_path / "pw.txt"))
        ok(sock, "stack", "deploy", "-c", str(compose), "app")
        assert len(ok(sock, "service", "ls", "-q").split()) == 2
        # stack rm leaves the external secret: the stack did not create it.
        ok(sock, "stack", "rm", "app")
        assert ok(sock, "secret", "ls").count("shared") == 1


def test_bad_compose_files_get_one_line(tmp_path: Path) -> None:
    with one_node() as (node, _):
        sock = node.config.control_socket
        assert sock is not None
        compose = tmp_path / "compose.yml"
        cases = {
            "services:\n  web:\n    command: [serve\n": "compose.yml:4:1: expected ',' or ']'",
            "services:\n  web:\n    imgae: nginx\n": (
                "compose.yml:3:5: services.web.imgae: unknown key 'imgae'"
            ),
            "services:\n  web:\n    command: x\n    deploy:\n      replicas: three\n": (
                "compose.yml:5:17: services.web.deploy.replicas: expected an integer, got 'three'"
            ),
            "services:\n  web: {command: a}\n  web: {command: b}\n": (
                "compose.yml:3:3: services.web: duplicate key 'web' (first given on line 2)"
            ),
            "services:\n  w: {command: x}\nnetworks: {}\n": "'networks' is not supported",
        }
        for text, expected in cases.items():
            compose.write_text(text)
            line = fails(sock, "stack", "deploy", "-c", str(compose), "app")
            assert line.startswith(f"swarmctl: error: {tmp_path}/"), line
            assert expected in line, (text, line)
        assert "No such file or directory" in fails(
            sock, "stack", "deploy", "-c", str(tmp_path / "none.yml"), "app"
        )
        assert "Missing option '--compose-file'" in fails(sock, "stack", "deploy", "app")
        # More secret data than one request may carry: said before sending, not a time-out.
        (tmp_path / "big").write_bytes(b"x" * (500 * 1024 - 1))
        many = "".join(f"  s{i}: {{file: big}}\n" for i in range(34))
        compose.write_text(f"services:\n  w: {{command: x}}\nsecrets:\n{many}")
        assert "the stack is too large to send in one request" in fails(
            sock, "stack", "deploy", "-c", str(compose), "app"
        )
        assert ok(sock, "service", "ls", "-q") == ""
