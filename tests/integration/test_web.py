"""`swarmd --listen-web`: the page, its JSON and its live stream over real
HTTP; only reads; loopback names only on a loopback bind; one clear error for
a port in use; gone when the node stops."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request

import pytest
from helpers import wait_until
from nodes import one_node, running, spec

from pyswarmkit.api.errors import Unavailable
from pyswarmkit.web.server import WebServer

pytestmark = pytest.mark.integration


def get(port: int, path: str, host: str = "127.0.0.1") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host})
    return conn.getresponse()


def test_the_page_and_its_data_follow_the_store() -> None:
    with one_node(listen_web="127.0.0.1:0") as (node, client):
        server = node._web_server
        assert server is not None
        page = get(server.port, "/")
        assert page.status == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        html = page.read().decode()
        assert "static/web.js" in html
        assert get(server.port, "/static/web.js").status == 200

        # The stream sends the swarm at once, then again as the store changes.
        stream = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        stream.request("GET", "/api/events")
        events = stream.getresponse()
        assert events.headers.get_content_type() == "text/event-stream"

        def next_data() -> dict[str, object]:
            while True:
                line = events.readline().decode()
                if line.startswith("data: "):
                    return json.loads(line[6:])  # type: ignore[no-any-return]

        first = next_data()
        assert [n["name"] for n in first["nodes"]] == ["node-1"]  # type: ignore[index]
        client.call("service.create", {"spec": spec("web", 2)})
        wait_until(lambda: running(node, "web") == 2, what="2 running")
        while True:
            data = next_data()
            services = data["services"]
            if services and services[0]["replicas"] == "2/2":  # type: ignore[index]
                break

        swarm = json.loads(get(server.port, "/api/swarm").read())
        assert swarm["services"][0]["name"] == "web"
        assert swarm["index"] == node.store.index
    # Stopped with the node, though a stream was still open.
    stream.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=2)


def test_it_only_reads() -> None:
    with one_node(listen_web="127.0.0.1:0") as (node, _):
        server = node._web_server
        assert server is not None
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/", "/api/swarm", "/api/events", "/static/web.js"):
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.request(method, path, body=b"{}")
                assert conn.getresponse().status == 405, (method, path)
                conn.close()


def test_a_loopback_bind_answers_loopback_names_only() -> None:
    with one_node(listen_web="127.0.0.1:0") as (node, _):
        server = node._web_server
        assert server is not None
        assert get(server.port, "/api/swarm", host=f"localhost:{server.port}").status == 200
        # Another site's name pointed at 127.0.0.1 (DNS rebinding) reads nothing.
        assert get(server.port, "/api/swarm", host="attacker.example").status == 400


def test_a_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            Unavailable, match=rf"cannot serve the web view on 127\.0\.0\.1:{port}: .*in use"
        ):
            WebServer(f"127.0.0.1:{port}", lambda: None)


def test_a_node_that_is_not_a_manager_says_so() -> None:
    server = WebServer("127.0.0.1:0", lambda: None)
    try:
        data = json.loads(get(server.port, "/api/swarm").read())
        assert "not a manager" in data["error"]
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=2)
