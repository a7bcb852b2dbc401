"""`swarmctl secret` and `swarmctl config` against a running node: what each
command prints, the bad input each refuses in one line, and services that
reference them. Secret data comes back in no reply, no output, no event."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import swarmctl
from nodes import one_node

from pyswarmkit.api.codec import packb

pytestmark = pytest.mark.integration

DATA = b"correct-horse-battery-staple"


def run(sock: str, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(swarmctl(sock, *args), input=data, capture_output=True, timeout=60)


def ok(sock: str, *args: str, data: bytes | None = None) -> str:
    out = run(sock, *args, data=data)
    assert out.returncode == 0, out.stderr.decode()
    assert DATA not in out.stdout and DATA not in out.stderr
    return out.stdout.decode()


def fails(sock: str, *args: str, data: bytes | None = None) -> str:
    """The one error line a refused command prints."""
    out = run(sock, *args, data=data)
    assert out.returncode != 0, out.stdout.decode()
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_secret_and_config_commands(tmp_path: Path) -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        # The manager keeps its event history from the first reader on.
        start = client.call("events.since", {})["next"]
        sid = ok(sock, "secret", "create", "db-pass", "-", "--label", "env=prod", data=DATA).strip()
        conf = tmp_path / "app.conf"
        conf.write_bytes(b"listen 8080\n")
        cid = ok(sock, "config", "create", "app.conf", str(conf)).strip()

        table = ok(sock, "secret", "ls").splitlines()
        assert table[0].split() == ["ID", "NAME", "CREATED", "UPDATED"]
        assert table[2].split()[:2] == [sid, "db-pass"]
        assert ok(sock, "secret", "ls", "-q").split() == [sid]
        [listed] = json.loads(ok(sock, "secret", "ls", "--format", "json"))
        assert listed["id"] == sid and "data" not in listed["spec"]
        text = ok(sock, "secret", "inspect", "db-pass", sid)
        assert text.count(f"ID:              {sid}") == 2 and "env=prod" in text
        [shown] = json.loads(ok(sock, "secret", "inspect", "db-pass", "--format", "json"))
        assert shown["spec"]["annotations"]["labels"] == {"env": "prod"}
        assert "data" not in shown["spec"]

        # A config's data is not secret: inspect shows it.
        assert "listen 8080" in ok(sock, "config", "inspect", "app.conf")
        [c] = json.loads(ok(sock, "config", "inspect", cid, "--format", "json"))
        assert c["spec"]["data"] == "bGlzdGVuIDgwODAK"
        assert ok(sock, "config", "ls", "-q").split() == [cid]

        ok(
            sock,
            "service",
            "create",
            "--name",
            "web",
            "--command",
            "serve",
            "--secret",
            "source=db-pass,target=password,mode=0400",
            "--config",
            "app.conf",
        )
        [svc] = json.loads(ok(sock, "service", "inspect", "web", "--format", "json"))
        [ref] = svc["spec"]["task"]["container"]["secrets"]
        assert (ref["secret_id"], ref["target"], ref["mode"]) == (sid, "password", 0o400)
        assert svc["spec"]["task"]["container"]["configs"][0]["config_id"] == cid
        assert "db-pass as password (mode 0400" in ok(sock, "service", "inspect", "web")

        # Removing one in use is refused, naming the services; then allowed.
        assert fails(sock, "secret", "rm", "db-pass").endswith(
            "secret 'db-pass' is in use by the following service: web"
        )
        ok(sock, "service", "update", "web", "--secret-rm", "db-pass", "--config-rm", "app.conf")
        assert ok(sock, "secret", "rm", "db-pass").split() == ["db-pass"]
        assert ok(sock, "config", "rm", cid).split() == [cid]
        assert ok(sock, "secret", "ls", "-q") == ""

        # Nothing the manager answers holds the data: not the event history either.
        events = client.call("events.since", {"index": start})
        assert DATA not in packb(events)
        assert any(r[3] == "secret" and r[4] == sid for r in events["events"])


def test_bad_input_gets_one_line(tmp_path: Path) -> None:
    with one_node() as (node, _):
        sock = node.config.control_socket
        assert sock is not None
        big = tmp_path / "big"
        big.write_bytes(b"x" * (500 * 1024))
        assert "secret data must be larger than 0 and less than 512000 bytes" in fails(
            sock, "secret", "create", "big", str(big)
        )
        # Read no further than the limit: a larger file is "more than", never a made-up size.
        big.write_bytes(b"x" * (600 * 1024))
        assert fails(sock, "secret", "create", "big", str(big)).endswith(
            "got more than 512000 bytes"
        )
        assert fails(sock, "secret", "create", "big", "-", data=b"y" * 700_000).endswith(
            "got more than 512000 bytes"
        )
        assert "larger than 0" in fails(sock, "secret", "create", "empty", "-", data=b"")
        assert "invalid name" in fails(sock, "secret", "create", "bad.", "-", data=DATA)
        assert "cannot read" in fails(sock, "secret", "create", "a", str(tmp_path / "none"))
        ok(sock, "secret", "create", "pw", "-", data=DATA)
        assert fails(sock, "secret", "create", "pw", "-", data=DATA).endswith(
            "secret pw already exists"
        )
        assert fails(sock, "secret", "rm", "nope").endswith("secret nope not found")

        create = ("service", "create", "--name", "web", "--command", "serve")
        assert fails(sock, *create, "--secret", "missing").endswith("secret not found: missing")
        assert "must be a key=value pair" in fails(sock, *create, "--secret", "source=pw,junk")
        assert "source is required" in fails(sock, *create, "--secret", "target=x")
        assert "invalid mode" in fails(sock, *create, "--secret", "source=pw,mode=rwx")
        twice = ("--secret", "source=pw,target=x", "--secret", "src=pw,target=x")
        assert "have a conflicting target: 'x'" in fails(sock, *create, *twice)
        assert ok(sock, "service", "ls", "-q") == ""

        ok(sock, *create)
        assert fails(sock, "service", "update", "web", "--secret-add", "gone").endswith(
            "secret not found: gone"
        )
        assert "uses no secret of that name" in fails(
            sock, "service", "update", "web", "--secret-rm", "pw"
        )
