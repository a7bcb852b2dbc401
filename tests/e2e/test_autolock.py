"""Encryption at rest and autolock with real swarmd processes: nothing of the
store in clear under a manager's state dir; a manager restarted under
autolock serves nothing that needs the store until it gets the unlock key."""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import subprocess
from pathlib import Path

import pytest
from cluster import (
    Swarm,
    ctl,
    free_port,
    join_managers,
    manager_args,
    services,
    sleepers_args,
    sock,
)
from helpers import swarmctl, tool, wait_until

from pyswarmkit.raft import DurableStorage, WalCorruptError
from pyswarmkit.raft.crypt import Sealer

pytestmark = pytest.mark.e2e

LOCKED = "swarmctl: error: swarm is locked: unlock it with swarmctl swarm unlock"
INVALID = "swarmctl: error: swarm could not be unlocked: invalid key provided"
KEY_LINE = re.compile(r"^    (SWMKEY-1-\S+)$", re.M)


def manager(swarm: Swarm, *extra: str) -> list[str]:
    return ["--listen-control-api", swarm.socket, "--listen-remote-api", swarm.addr, *extra]


def restart(swarm: Swarm, *extra: str) -> None:
    """Stop node-1 and start it again; returns once its control socket answers."""
    proc = swarm.procs["node-1"]
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    swarm.start("node-1", *manager(swarm, *extra))

    def answers() -> bool:
        result = swarm.run("node", "ls")
        return result.returncode == 0 or result.stderr.strip() == LOCKED

    wait_until(answers, timeout=30, what="node-1 answering")


def unlock(swarm: Swarm, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        swarmctl(swarm.socket, "swarm", "unlock"),
        input=key + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )


def dek(swarm: Swarm) -> dict[str, object]:
    doc: dict[str, object] = json.loads(
        (swarm.root / "node-1" / "certificates" / "raft-dek.json").read_text()
    )
    return doc


def start_fails(swarm: Swarm, key_file: Path) -> str:
    """swarmd given ``key_file`` exits non-zero: its one error line."""
    argv = [tool("swarmd"), "-d", str(swarm.root / "node-1"), "--hostname", "node-1"]
    result = subprocess.run(
        [*argv, *manager(swarm, "--unlock-key-file", str(key_file))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("swarmd: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_no_file_under_a_managers_state_dir_holds_the_store_in_clear(swarm: Swarm) -> None:
    secret = f"s3cr3t-{secrets.token_hex(8)}"
    swarm.init()
    # Snapshots too: one every few entries.
    swarm.ok("cluster", "update", "default", "--snapshot-interval", "3")
    swarm.ok(*sleepers_args("vault", 1), "--env", f"PASSWORD={secret}")
    for k in range(4):
        swarm.ok("service", "create", "--name", f"{secret}-{k}", "--command", "true")
    wait_until(lambda: secret in swarm.ok("service", "ls"), what="services listed")
    state = swarm.root / "node-1"
    wait_until(lambda: any((state / "raft" / "snap").iterdir()), what="a snapshot")
    found = [
        str(path.relative_to(state))
        for path in state.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]
    assert found == []
    assert (state / "certificates" / "raft-dek.json").stat().st_mode & 0o777 == 0o600
    # And it all comes back after a restart.
    restart(swarm)
    assert "vault" in swarm.ok("service", "ls")


def test_a_manager_restarted_under_autolock_is_locked_until_given_the_key(
    swarm: Swarm, tmp_path: Path
) -> None:
    swarm.init()
    swarm.sleepers("web", 2)
    swarm.ok("service", "create", "--name", "api", "--command", "sleep", "--args", "1000")
    with pytest.raises(AssertionError, match="no unlock key is set"):
        swarm.ok("swarm", "unlock-key")

    clear_dek = dek(swarm)["dek"]
    out = swarm.ok("cluster", "update", "default", "--autolock=true")
    assert out.startswith("Swarm updated.\nTo unlock a swarm manager after it restarts, run the")
    assert "`swarmctl swarm unlock`" in out and "password manager" in out
    match = KEY_LINE.search(out)
    assert match, out
    key = match.group(1)
    assert swarm.ok("swarm", "unlock-key", "-q").strip() == key
    inspect = swarm.ok("cluster", "inspect", "default")
    assert "SWMKEY" not in inspect and "Autolock managers: true" in inspect
    wait_until(lambda: "wrapped" in dek(swarm), what="the raft key wrapped")

    restart(swarm)
    # Locked: reads and writes alike get one line, exit 1; the daemon keeps running.
    for args in (("service", "ls"), sleepers_args("more", 1), ("swarm", "unlock-key")):
        result = swarm.run(*args)
        assert (result.returncode, result.stderr.strip()) == (1, LOCKED), args
    wrong = unlock(swarm, "SWMKEY-1-" + "A" * 42 + "E")
    assert (wrong.returncode, wrong.stderr.strip()) == (1, INVALID)
    malformed = unlock(swarm, "SWMKEY-1-nope")
    assert malformed.returncode == 1
    assert malformed.stderr.strip().startswith("swarmctl: error: invalid unlock key")
    assert swarm.run("service", "ls").stderr.strip() == LOCKED
    assert swarm.procs["node-1"].poll() is None

    done = unlock(swarm, key)
    assert done.returncode == 0, done.stderr
    listed = swarm.ok("service", "ls")
    assert "web" in listed and "api" in listed
    wait_until(lambda: "2/2" in swarm.ok("service", "ls"), timeout=30, what="web 2/2")
    again = unlock(swarm, key)
    assert again.stderr.strip() == "swarmctl: error: swarm is not locked"

    # Rotation: the old key stops working, --unlock-key-file starts unlocked.
    rotated = swarm.ok("swarm", "unlock-key", "--rotate")
    assert rotated.startswith("Successfully rotated manager unlock key.\n\nTo unlock")
    match = KEY_LINE.search(rotated)
    assert match
    new_key = match.group(1)
    assert new_key != key
    wait_until(lambda: dek(swarm) != {} and _opens(swarm, new_key), what="re-wrapped")
    swarm.procs["node-1"].send_signal(signal.SIGTERM)
    swarm.procs["node-1"].wait(30)
    # Unlocking replayed a history where autolock was off: the key never went
    # back to clear (which would have drawn yet another pending key).
    assert set(dek(swarm)) == {"format", "wrapped"}
    # The key that was on disk in clear before autolock opens nothing any more.
    raft = str(swarm.root / "node-1" / "raft")
    with pytest.raises(WalCorruptError, match="does not decrypt with this key"):
        DurableStorage(raft, sealer=Sealer(base64.b64decode(str(clear_dek))))
    old_file, new_file = tmp_path / "old", tmp_path / "new"
    old_file.write_text(key + "\n")
    new_file.write_text(new_key + "\n")
    assert start_fails(swarm, old_file) == (
        "swarmd: error: --unlock-key-file: swarm could not be unlocked: invalid key provided"
    )
    assert "cannot read" in start_fails(swarm, tmp_path / "missing")
    swarm.start("node-1", *manager(swarm, "--unlock-key-file", str(new_file)))
    wait_until(lambda: "api" in swarm.ctl("service", "ls", check=False), what="unlocked at start")

    # Autolock off: the key is kept in clear again, a restart needs nothing.
    assert swarm.ok("cluster", "update", "default", "--autolock=false") == "Swarm updated.\n"
    wait_until(lambda: "dek" in dek(swarm), what="the raft key in clear")
    restart(swarm)
    wait_until(lambda: "api" in swarm.ctl("service", "ls", check=False), what="services back")


def _opens(swarm: Swarm, key: str) -> bool:
    from pyswarmkit.raft import dekfile
    from pyswarmkit.raft.crypt import UnlockKeyError, parse_unlock_key

    found = dekfile.read(swarm.root / "node-1")
    try:
        return found is not None and bool(found.open(parse_unlock_key(key)))
    except UnlockKeyError:
        return False


def test_a_locked_manager_of_three_rejoins_once_unlocked(swarm: Swarm) -> None:
    """Autolock reaches every manager; node-2 restarted is locked, the swarm
    goes on without it, and once unlocked it catches up on what it missed."""
    ports = {"node-1": swarm.port, "node-2": free_port(), "node-3": free_port()}
    swarm.init()
    _, manager_token = swarm.tokens()
    join_managers(swarm, manager_token, ports, "node-2", "node-3")
    out = swarm.ok("cluster", "update", "default", "--autolock=true")
    match = KEY_LINE.search(out)
    assert match
    key = match.group(1)

    def wrapped(name: str) -> bool:
        path = swarm.root / name / "certificates" / "raft-dek.json"
        return "wrapped" in json.loads(path.read_text())

    wait_until(lambda: all(wrapped(n) for n in ("node-1", "node-2", "node-3")), what="all wrapped")
    swarm.procs["node-2"].send_signal(signal.SIGTERM)
    swarm.procs["node-2"].wait(30)
    swarm.start("node-2", *manager_args(swarm, "node-2", ports["node-2"]))
    wait_until(
        lambda: ctl(swarm, "node-2", "service", "ls").stderr.strip() == LOCKED,
        timeout=30,
        what="node-2 locked",
    )
    swarm.ok(*sleepers_args("while-locked", 0))
    result = subprocess.run(
        swarmctl(sock(swarm, "node-2"), "swarm", "unlock"),
        input=key + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    wait_until(
        lambda: "while-locked" in (services(swarm, "node-2") or []),
        timeout=30,
        what="node-2 caught up",
    )


def test_unlocking_a_swarm_that_is_not_locked_says_so_before_asking_for_a_key(swarmd) -> None:  # type: ignore[no-untyped-def]
    # A well-formed key on stdin: the answer must not be about the key.
    out = subprocess.run(
        swarmctl(swarmd.socket, "swarm", "unlock"),
        input="SWMKEY-1-" + "A" * 43 + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["swarmctl: error: swarm is not locked"], out.stderr
    # Nothing on stdin at all: still not asked for.
    out = swarmd.ctl("swarm", "unlock", check=False)
    assert out.stderr.strip().splitlines() == ["swarmctl: error: swarm is not locked"], out.stderr
