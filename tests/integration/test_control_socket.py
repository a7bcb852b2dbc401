"""What --listen-control-api may replace: only a stale unix socket."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyswarmkit.api.errors import InvalidArgument, Unavailable
from pyswarmkit.transport.control import ControlServer, check_socket_path

pytestmark = pytest.mark.integration


@pytest.fixture
def short_dir() -> Iterator[Path]:
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="swk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_regular_file_is_refused_and_kept(short_dir: Path) -> None:
    path = short_dir / "notes.txt"
    path.write_text("precious\n")
    with pytest.raises(InvalidArgument, match="exists and is not a socket"):
        check_socket_path(str(path))
    with pytest.raises(InvalidArgument, match="exists and is not a socket"):
        ControlServer(str(path), lambda req: None).start()
    assert path.read_text() == "precious\n"


def test_a_directory_is_refused_and_kept(short_dir: Path) -> None:
    path = short_dir / "sub"
    path.mkdir()
    (path / "inside").write_text("x")
    with pytest.raises(InvalidArgument, match="exists and is a directory"):
        check_socket_path(str(path))
    assert (path / "inside").read_text() == "x"


def test_a_symlink_is_refused_and_its_target_kept(short_dir: Path) -> None:
    target = short_dir / "target"
    target.write_text("t")
    link = short_dir / "link"
    link.symlink_to(target)
    with pytest.raises(InvalidArgument, match="not a socket"):
        check_socket_path(str(link))
    assert link.is_symlink() and target.read_text() == "t"


def test_a_live_socket_is_refused(short_dir: Path) -> None:
    path = short_dir / "live.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        with pytest.raises(Unavailable, match="already serving"):
            check_socket_path(str(path))
    finally:
        listener.close()


def test_a_stale_socket_is_replaced(short_dir: Path) -> None:
    path = short_dir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    check_socket_path(str(path))
    server = ControlServer(str(path), lambda req: None)
    server.start()
    try:
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    finally:
        server.stop()


def test_a_long_listing_streams_in_pages(short_dir: Path) -> None:
    from pyswarmkit.transport.control import ControlClient

    items = list(range(2500))

    def deliver(req: Any) -> None:
        req.reply({"ok": True, "result": {"tasks": items, "nodes": {"n1": "node-1"}}})

    server = ControlServer(str(short_dir / "s.sock"), deliver)
    server.start()
    client = ControlClient(str(short_dir / "s.sock"))
    try:
        pages = list(client.stream("task.list", {"page_size": 1000}))
        assert [len(p["tasks"]) for p in pages] == [1000, 1000, 500]
        # Fields beside the list come once, with the first page.
        assert pages[0]["nodes"] == {"n1": "node-1"} and "nodes" not in pages[1]
        assert [t for p in pages for t in p["tasks"]] == items
        # A plain call gets the whole result, pages joined.
        whole = client.call("task.list")
        assert list(whole["tasks"]) == items and whole["nodes"] == {"n1": "node-1"}
        # A tiny page size cannot flood the socket: pages grow to stay few.
        tiny = list(client.stream("task.list", {"page_size": 1}))
        assert len(tiny) <= 200
        assert [t for p in tiny for t in p["tasks"]] == items
    finally:
        client.close()
        server.stop()
