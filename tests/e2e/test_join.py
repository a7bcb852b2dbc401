"""Nodes on the wire, as a user runs them: one swarmd starts a swarm, others
join it over CurveZMQ with its tokens, each in its own process and state dir."""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cluster import Swarm, task_nodes
from cryptography import x509
from cryptography.x509.oid import NameOID
from helpers import tool, wait_until

pytestmark = pytest.mark.e2e

TOKEN = re.compile(r"SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}")


def certificate(state_dir: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(
        (state_dir / "certificates" / "swarm-node.crt").read_bytes()
    )


def name_of(cert: x509.Certificate, part: x509.Name, oid: x509.ObjectIdentifier) -> str:
    return str(part.get_attributes_for_oid(oid)[0].value)


def test_nodes_join_with_tokens_rotate_and_renew(swarm: Swarm) -> None:
    swarm.init()
    worker_token, manager_token = swarm.tokens()
    assert TOKEN.fullmatch(worker_token) and TOKEN.fullmatch(manager_token)
    assert worker_token != manager_token
    inspect = swarm.ctl("cluster", "inspect", "default")
    assert "Certificate Validity Duration: 2160h0m0s" in inspect
    assert "Join Tokens:" in inspect

    swarm.join_workers(worker_token, "node-2", "node-3")
    swarm.sleepers("web", 6)
    wait_until(
        lambda: (
            sorted(set(task_nodes(swarm, "web").values())) == ["node-1", "node-2", "node-3"]
            and len(task_nodes(swarm, "web")) == 6
        ),
        timeout=60,
        what="six tasks running on all three nodes",
    )

    # Every certificate on disk is the CA's, for its node, role and swarm.
    cluster_id = swarm.ctl("cluster", "ls").splitlines()[2].split()[0]
    ids = {line.split()[1]: line.split()[0] for line in swarm.ctl("node", "ls").splitlines()[1:]}
    for name, role in (
        ("node-1", "swarm-manager"),
        ("node-2", "swarm-worker"),
        ("node-3", "swarm-worker"),
    ):
        cert = certificate(swarm.root / name)
        assert name_of(cert, cert.issuer, NameOID.COMMON_NAME) == "swarm-ca"
        assert name_of(cert, cert.subject, NameOID.COMMON_NAME) == ids[name]
        assert name_of(cert, cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == role
        assert name_of(cert, cert.subject, NameOID.ORGANIZATION_NAME) == cluster_id
        key = swarm.root / name / "certificates" / "swarm-node.key"
        assert os.stat(key).st_mode & 0o777 == 0o600

    # Rotation: the old worker token is refused with one clear line, the new one works,
    # and the nodes that joined with the old one stay.
    swarm.ctl("cluster", "update", "default", "--rotate-join-token", "worker")
    new_worker, same_manager = swarm.tokens()
    assert new_worker != worker_token and same_manager == manager_token
    refused = subprocess.run(
        [
            tool("swarmd"),
            "-d",
            str(swarm.root / "node-x"),
            "--hostname",
            "node-x",
            "--join-addr",
            swarm.addr,
            "--join-token",
            worker_token,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1] == (
        "swarmd: error: join refused: invalid join token"
    )
    assert worker_token not in swarm.log("node-1")

    # A short certificate validity, and a clock for renewals sped up 200 times:
    # node-4 renews its certificate every few seconds and keeps its work and session.
    swarm.ctl("cluster", "update", "default", "--cert-expiry", "30m")
    assert "Certificate Validity Duration: 30m0s" in swarm.ctl("cluster", "inspect", "default")
    swarm.join("node-4", new_worker, "--cert-renewal-scale", "0.005")
    wait_until(lambda: len(swarm.ready()) == 4, timeout=60, what="four nodes READY")
    swarm.ctl("service", "update", "web", "--replicas", "8")
    wait_until(
        lambda: "node-4" in task_nodes(swarm, "web").values(), timeout=60, what="a task on node-4"
    )
    on_node_4 = {t for t, n in task_nodes(swarm, "web").items() if n == "node-4"}
    first = certificate(swarm.root / "node-4")
    # Counted from here: on a loaded machine renewals may have come before.
    seen = swarm.log("node-4").count("certificate renewed")
    wait_until(
        lambda: swarm.log("node-4").count("certificate renewed") >= seen + 2,
        timeout=60,
        what="two renewals on node-4",
    )
    renewed = certificate(swarm.root / "node-4")
    assert renewed.public_key() != first.public_key()
    assert renewed.not_valid_after_utc - renewed.not_valid_before_utc <= timedelta(minutes=40)
    time.sleep(1)
    assert "node-4" in swarm.ready()
    # The same tasks still run there, and the agent registered only once.
    assert {t for t, n in task_nodes(swarm, "web").items() if n == "node-4"} == on_node_4
    assert swarm.log("node-4").count("registered with dispatcher") == 1
