"""Scripting the CLI: `--format json` gives one JSON document with every field,
`-q` only IDs, and `inspect` takes several names."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import tool, wait_until
from nodes import one_node, running, spec

pytestmark = pytest.mark.integration


def ctl(sock: str, *args: str) -> str:
    out = subprocess.run(
        [tool("swarmctl"), "-s", sock, *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_ls_and_inspect_as_json_and_quiet() -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        client.call("service.create", {"spec": spec("web", 2)})
        wait_until(lambda: running(node, "web") == 2, what="2 running")

        nodes = json.loads(ctl(sock, "node", "ls", "--format", "json"))
        assert [n["id"] for n in nodes] == [node.node_id]
        assert nodes[0]["manager_status"]["leader"] is True
        assert ctl(sock, "node", "ls", "-q").split() == [node.node_id]
        inspected = json.loads(
            ctl(sock, "node", "inspect", node.node_id, "node-1", "--format", "json")
        )
        assert [n["id"] for n in inspected] == [node.node_id] * 2

        tasks = json.loads(ctl(sock, "task", "ls", "--format", "json"))
        assert len(tasks) == 2 and {t["status"]["state"] for t in tasks} == {"running"}
        ids = ctl(sock, "task", "ls", "-q").split()
        assert sorted(ids) == sorted(t["id"] for t in tasks)
        both = json.loads(ctl(sock, "task", "inspect", *ids, "--format", "json"))
        assert sorted(t["id"] for t in both) == sorted(ids)
        text = ctl(sock, "task", "inspect", *ids)
        assert all(f"ID                : {i}" in text for i in ids)

        [cluster] = json.loads(ctl(sock, "cluster", "ls", "--format", "json"))
        assert cluster["spec"]["annotations"]["name"] == "default"
        # Control replies never carry the CA's key or the managers' server secret.
        assert cluster["root_ca"]["key_pem"] == ""
        assert cluster["server_key"]["secret"] == ""
        [again] = json.loads(ctl(sock, "cluster", "inspect", "default", "--format", "json"))
        assert again["id"] == cluster["id"] == ctl(sock, "cluster", "ls", "-q").strip()


def test_inspect_shows_what_it_finds_and_fails_for_the_rest() -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        client.call("service.create", {"spec": spec("web", 1)})
        wait_until(lambda: running(node, "web") == 1, what="1 running")
        out = subprocess.run(
            [tool("swarmctl"), "-s", sock, "node", "inspect", "node-1", "nosuch"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1
        assert node.node_id in out.stdout
        assert out.stderr.splitlines() == ["swarmctl: error: node nosuch not found"]
        # A task by the name `task ls` shows: its service and slot.
        [task] = node.store.tasks()
        shown = json.loads(ctl(sock, "task", "inspect", "web.1", "--format", "json"))
        assert [t["id"] for t in shown] == [task.id]


def test_services_as_json_quiet_several_and_removed_together() -> None:
    with one_node() as (node, client):
        sock = node.config.control_socket
        assert sock is not None
        ids = [client.call("service.create", {"spec": spec(n, 1)})["id"] for n in ("web", "db")]
        listed = json.loads(ctl(sock, "service", "ls", "--format", "json"))
        assert sorted(s["id"] for s in listed) == sorted(ids)
        assert {s["spec"]["annotations"]["name"] for s in listed} == {"web", "db"}
        assert sorted(ctl(sock, "service", "ls", "-q").split()) == sorted(ids)
        both = json.loads(ctl(sock, "service", "inspect", "web", "db", "--format", "json"))
        assert [s["spec"]["mode"]["replicas"] for s in both] == [1, 1]
        text = ctl(sock, "service", "inspect", "web", "db")
        assert text.count("Name              : ") == 2
        out = subprocess.run(
            [tool("swarmctl"), "-s", sock, "service", "rm", "web", "nosuch", "db"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1
        assert out.stdout.split() == ids
        assert out.stderr.splitlines() == ["swarmctl: error: service nosuch not found"]
        wait_until(lambda: not node.store.services(), what="both removed")
