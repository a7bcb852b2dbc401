"""Join tokens: their exact shape, parsing that never repeats a token, and
constant-time matching against both tokens."""

from __future__ import annotations

import hmac
import os
import re

import pytest

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import JoinTokens
from pyswarmkit.api.states import NodeRole
from pyswarmkit.ca import tokens as tokens_module
from pyswarmkit.ca.tokens import (
    JoinToken,
    new_join_tokens,
    new_token,
    parse_token,
    role_for_token,
    rotate,
)

pytestmark = pytest.mark.unit

SHAPE = re.compile(r"^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$")


def test_round_trip_and_shape() -> None:
    for _ in range(200):
        key, secret = os.urandom(32), os.urandom(16)
        token = new_token(key, secret)
        assert SHAPE.match(token), token
        assert parse_token(token) == JoinToken(key, secret)


def test_extremes_are_padded() -> None:
    zero = new_token(bytes(32), bytes(16))
    assert zero == "SWMTKN-1-" + "0" * 50 + "-" + "0" * 25
    top = new_token(b"\xff" * 32, b"\xff" * 16)
    assert SHAPE.match(top)
    assert parse_token(top) == JoinToken(b"\xff" * 32, b"\xff" * 16)


def test_fresh_secret_each_time() -> None:
    key = os.urandom(32)
    a, b = new_token(key), new_token(key)
    assert a != b
    assert parse_token(a).server_key == parse_token(b).server_key == key


def test_surrounding_whitespace_is_ignored() -> None:
    key, secret = os.urandom(32), os.urandom(16)
    assert parse_token("  " + new_token(key, secret) + "\n") == JoinToken(key, secret)


def test_new_token_refuses_wrong_sizes() -> None:
    with pytest.raises(InvalidArgument):
        new_token(b"short")
    with pytest.raises(InvalidArgument):
        new_token(os.urandom(32), b"short")


# Fixed bytes: test IDs are built from these, and parallel runs (pytest -n)
# must collect the same IDs in every worker.
GOOD = new_token(bytes(range(32)), bytes(range(100, 116)))
_, _, GOOD_KEY, GOOD_SECRET = GOOD.split("-")
BAD = [
    "",
    "hello",
    GOOD.replace("SWMTKN", "SWMTKX"),
    GOOD.replace("SWMTKN-1", "SWMTKN-2"),
    GOOD[:-1],
    GOOD + "a",
    GOOD.upper(),
    GOOD + "-extra",
    f"SWMTKN-1-{GOOD_KEY[:-1]}!-{GOOD_SECRET}",
    f"SWMTKN-1-{GOOD_KEY}-{GOOD_SECRET[:-1]}é",
    # Valid characters, but more than 32 (or 16) bytes' worth.
    f"SWMTKN-1-{'z' * 50}-{GOOD_SECRET}",
    f"SWMTKN-1-{GOOD_KEY}-{'z' * 25}",
]


@pytest.mark.parametrize("text", BAD)
def test_parse_errors_never_contain_the_token(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_token(text)
    message = str(caught.value)
    assert message.startswith("invalid join token: ")
    assert "\n" not in message
    for part in [text, GOOD_KEY, GOOD_SECRET, GOOD_KEY[:10], GOOD_SECRET[:10], "z" * 10]:
        if part:
            assert part not in message


def test_repr_hides_the_secret() -> None:
    token = JoinToken(b"\x01" * 32, b"\xab" * 16)
    assert "ab" * 4 not in repr(token)


def test_role_for_token() -> None:
    key = os.urandom(32)
    tokens = new_join_tokens(key)
    assert tokens.worker != tokens.manager
    assert role_for_token(tokens.worker, tokens) == NodeRole.WORKER
    assert role_for_token(tokens.manager, tokens) == NodeRole.MANAGER
    assert role_for_token(" " + tokens.worker + "\n", tokens) == NodeRole.WORKER
    assert role_for_token(new_token(key), tokens) is None
    assert role_for_token("", tokens) is None
    assert role_for_token("é", tokens) is None
    assert role_for_token(tokens.worker.upper(), tokens) is None


def test_unset_tokens_match_nothing() -> None:
    assert role_for_token("", JoinTokens()) is None
    assert role_for_token("", JoinTokens(worker="", manager="x")) is None


def test_both_tokens_always_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(tokens_module.hmac, "compare_digest", counting)
    tokens = new_join_tokens(os.urandom(32))
    for given in (tokens.worker, tokens.manager, "nonsense"):
        calls.clear()
        role_for_token(given, tokens)
        assert sorted(calls) == sorted([tokens.worker.encode(), tokens.manager.encode()])


def test_rotate_changes_only_the_one_named() -> None:
    key = os.urandom(32)
    tokens = new_join_tokens(key)
    worker = rotate(tokens, "worker", key)
    assert worker.manager == tokens.manager
    assert worker.worker != tokens.worker
    assert parse_token(worker.worker).server_key == key
    assert role_for_token(tokens.worker, worker) is None
    manager = rotate(tokens, "manager", key)
    assert manager.worker == tokens.worker
    assert manager.manager != tokens.manager


def test_rotate_unknown_kind() -> None:
    with pytest.raises(InvalidArgument, match="choose worker or manager"):
        rotate(new_join_tokens(os.urandom(32)), "admin", os.urandom(32))
