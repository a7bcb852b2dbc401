"""The ZAP (ZeroMQ authentication protocol, RFC 27) answer of a bus.

Every Curve key is admitted at the handshake: whether a key may do anything
is decided per message, from the certificates the managers issued. The
answer's User-Id is the key's z85 text, which libzmq then attaches to every
message arriving on that connection.
"""

from __future__ import annotations

from zmq.utils import z85

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_VERSION = b"1.0"


def zap_reply(request: list[bytes]) -> list[bytes]:
    """The reply to one ZAP request as a ROUTER receives it (routing id, empty
    delimiter, then the request's frames)."""
    if len(request) < 9 or request[1] != b"" or request[2] != ZAP_VERSION:
        # Not a ZAP request this handler understands: libzmq never sends
        # one, so refuse it plainly rather than guess.
        request_id = request[3] if len(request) > 3 else b""
        return [request[0], b"", ZAP_VERSION, request_id, b"400", b"malformed request", b"", b""]
    routing_id, request_id, mechanism = request[0], request[3], request[7]
    credentials = request[8:]
    if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
        return [routing_id, b"", ZAP_VERSION, request_id, b"400", b"CURVE only", b"", b""]
    user_id = z85.encode(credentials[0])
    return [routing_id, b"", ZAP_VERSION, request_id, b"200", b"OK", user_id, b""]
