"""cluster.update --autolock and swarm.unlock_key, as pure handlers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyswarmkit.api.errors import FailedPrecondition, InvalidArgument
from pyswarmkit.api.objects import Cluster
from pyswarmkit.ca import signer
from pyswarmkit.control.handlers import Handlers, Reply, Write
from pyswarmkit.raft.crypt import parse_unlock_key
from pyswarmkit.store import Change, MemoryStore

pytestmark = pytest.mark.unit


def swarm() -> MemoryStore:
    store = MemoryStore()
    store.apply([Change("create", signer.bootstrap(Cluster(id="c1"), 1000.0))], 1, 1.0)
    return store


def write(store: MemoryStore, method: str, body: dict[str, Any]) -> dict[str, Any]:
    outcome = Handlers().handle(store, method, body)
    assert isinstance(outcome, Write)
    changes = outcome.build(store)
    batch = store.apply(changes, store.index + 1, 2.0) if changes else None
    return outcome.result(batch)


def autolock(store: MemoryStore, on: bool) -> dict[str, Any]:
    return write(store, "cluster.update", {"ref": "default", "autolock": on})


def shown_key(store: MemoryStore) -> str:
    reply = Handlers().handle(store, "swarm.unlock_key", {})
    assert isinstance(reply, Reply)
    key: str = reply.value["unlock_key"]
    return key


def test_autolock_on_sets_a_key_the_reply_and_unlock_key_show() -> None:
    store = swarm()
    with pytest.raises(FailedPrecondition, match="no unlock key is set"):
        shown_key(store)
    result = autolock(store, True)
    cluster = store.clusters()[0]
    assert cluster.spec.autolock_managers
    assert parse_unlock_key(result["unlock_key"]) == cluster.unlock_key
    assert shown_key(store) == result["unlock_key"]
    # Asking again keeps the key (and shows it again).
    assert autolock(store, True)["unlock_key"] == result["unlock_key"]
    # Never in what cluster inspect shows.
    inspect = Handlers().handle(store, "cluster.inspect", {"ref": "default"})
    assert isinstance(inspect, Reply) and inspect.value["cluster"].unlock_key == b""


def test_rotation_replaces_the_key_and_off_drops_it() -> None:
    store = swarm()
    first = autolock(store, True)["unlock_key"]
    rotated = write(store, "swarm.unlock_key", {"rotate": True})["unlock_key"]
    assert rotated != first and shown_key(store) == rotated
    assert autolock(store, False) == {}
    cluster = store.clusters()[0]
    assert not cluster.spec.autolock_managers and cluster.unlock_key == b""
    with pytest.raises(FailedPrecondition, match="autolock is not turned on"):
        write(store, "swarm.unlock_key", {"rotate": True})


def test_bad_requests_are_one_line() -> None:
    store = swarm()
    with pytest.raises(InvalidArgument, match="--autolock takes true or false"):
        Handlers().handle(store, "cluster.update", {"ref": "default", "autolock": "yes"})
    with pytest.raises(InvalidArgument, match="'rotate' must be a bool"):
        Handlers().handle(store, "swarm.unlock_key", {"rotate": 1})


def test_an_unlock_key_file_that_is_missing_or_malformed_is_one_line(tmp_path: Path) -> None:
    from pyswarmkit.cli import _read_unlock_key

    with pytest.raises(InvalidArgument, match=r"--unlock-key-file: cannot read .*missing"):
        _read_unlock_key(tmp_path / "missing")
    (tmp_path / "bad").write_text("hello\n")
    with pytest.raises(InvalidArgument, match="invalid unlock key: it must start with SWMKEY-1-"):
        _read_unlock_key(tmp_path / "bad")
    (tmp_path / "good").write_text("SWMKEY-1-" + "A" * 43 + "\n")
    assert _read_unlock_key(tmp_path / "good") == "SWMKEY-1-" + "A" * 43
