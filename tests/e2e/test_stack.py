"""A stack from a compose file with real swarmd processes (a manager and a
worker, the process executor): deploy, redeploy with one change (only that
service's tasks are replaced), and stack rm removing everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster import Swarm, task_pids
from helpers import wait_until

pytestmark = pytest.mark.e2e

COMPOSE = """\
version: "3.8"
services:
  web:
    image: web:1
    command: sleep 1000
    deploy: {replicas: 2}
    secrets:
      - source: pw
        target: password
        mode: 0400
  agent:
    command: ["sleep", "1001"]
    deploy:
      mode: global
  api:
    command: sleep API
    deploy:
      replicas: 2
      update_config: {parallelism: 2, delay: 1s, monitor: 1s, order: start-first}
secrets:
  pw:
    file: pw.txt
"""


def stack_tasks(swarm: Swarm) -> dict[str, tuple[str, str]]:
    """Task ID -> (service, node ID) of the stack's tasks desired and seen RUNNING."""
    tasks = json.loads(swarm.ctl("stack", "ps", "app", "--format", "json"))
    return {
        t["id"]: (t["service_name"], t["node_id"])
        for t in tasks
        if t["desired_state"] == "running" and t["status"]["state"] == "running"
    }


def by_service(tasks: dict[str, tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for task_id, (service, _) in tasks.items():
        out.setdefault(service, set()).add(task_id)
    return out


def test_deploy_redeploy_one_change_and_remove(swarm: Swarm, short_tmp: Path) -> None:
    swarm.init()
    token, _ = swarm.tokens()
    swarm.join_workers(token, "node-2")
    (short_tmp / "pw.txt").write_bytes(b"stack-e2e-secret")
    compose = short_tmp / "compose.yml"
    compose.write_text(COMPOSE.replace("API", "1002"))

    out = swarm.ctl("stack", "deploy", "-c", str(compose), "app")
    assert out.splitlines() == [
        "Creating secret app_pw",
        "Creating service app_web",
        "Creating service app_agent",
        "Creating service app_api",
    ]
    wait_until(
        lambda: len(stack_tasks(swarm)) == 6, timeout=30, what="six tasks of the stack running"
    )
    before = by_service(stack_tasks(swarm))
    assert {s: len(t) for s, t in before.items()} == {"app_web": 2, "app_agent": 2, "app_api": 2}
    agent_nodes = {n for s, n in stack_tasks(swarm).values() if s == "app_agent"}
    assert len(agent_nodes) == 2
    assert "app_pw" in swarm.ctl("secret", "ls")
    assert swarm.ctl("stack", "ls").splitlines()[2].split() == ["app", "3"]

    # One change, to the service with an update_config: only its tasks are replaced.
    compose.write_text(COMPOSE.replace("API", "1003"))
    out = swarm.ctl("stack", "deploy", "-c", str(compose), "app")
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["Service", "app_web", "unchanged"],
        ["Service", "app_agent", "unchanged"],
        ["Updating", "service", "app_api"],
    ]

    def api_replaced() -> bool:
        now = by_service(stack_tasks(swarm))
        api = now.get("app_api", set())
        return len(api) == 2 and not api & before["app_api"]

    wait_until(api_replaced, timeout=30, what="both api tasks replaced")
    after = by_service(stack_tasks(swarm))
    assert after["app_web"] == before["app_web"]
    assert after["app_agent"] == before["app_agent"]
    inspect = swarm.ctl("service", "inspect", "app_api")
    assert "sleep 1003" in inspect

    out = swarm.ctl("stack", "rm", "app")
    assert out.splitlines() == [
        "Removing service app_agent",
        "Removing service app_api",
        "Removing service app_web",
        "Removing secret app_pw",
    ]
    assert swarm.ctl("service", "ls", "-q") == ""
    assert swarm.ctl("secret", "ls", "-q") == ""
    assert swarm.ctl("stack", "ls").splitlines()[2:] == []
    wait_until(
        lambda: not task_pids(swarm, "node-1") and not task_pids(swarm, "node-2"),
        timeout=30,
        what="every task process of the stack ended on both nodes",
    )
