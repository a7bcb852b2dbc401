"""Object IDs: 25 random base36 characters, as SwarmKit's."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswarmkit.api import ids
from pyswarmkit.api.ids import ID_LENGTH, from_base36, is_id, new_id, to_base36

pytestmark = pytest.mark.unit

ALPHABET = set(string.digits + string.ascii_lowercase)


def test_new_id_is_25_lowercase_base36_characters() -> None:
    for _ in range(200):
        ident = new_id()
        assert len(ident) == ID_LENGTH == 25
        assert set(ident) <= ALPHABET
        assert is_id(ident)


def test_new_ids_do_not_repeat() -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000


@settings(max_examples=200, deadline=None)
@given(value=st.integers(min_value=0, max_value=36**25 - 1))
def test_base36_round_trips_at_full_width(value: int) -> None:
    text = to_base36(value, 25)
    assert len(text) == 25
    assert set(text) <= ALPHABET
    assert from_base36(text) == value


@settings(max_examples=200, deadline=None)
@given(value=st.integers(min_value=0, max_value=10**12), width=st.integers(1, 30))
def test_to_base36_pads_or_refuses(value: int, width: int) -> None:
    natural = len(to_base36(value, 30).lstrip("0") or "0")
    if natural <= width:
        text = to_base36(value, width)
        assert len(text) == width
        assert from_base36(text) == value
    else:
        with pytest.raises(ValueError, match="does not fit"):
            to_base36(value, width)


@pytest.mark.parametrize(
    ("value", "width", "text"),
    [(0, 3, "000"), (0, 1, "0"), (35, 1, "z"), (36, 2, "10"), (36**25 - 1, 25, "z" * 25)],
)
def test_to_base36_known_values(value: int, width: int, text: str) -> None:
    assert to_base36(value, width) == text


def test_to_base36_overflow_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not fit in 1"):
        to_base36(36, 1)
    with pytest.raises(ValueError, match="does not fit in 25"):
        to_base36(36**25, 25)


@pytest.mark.parametrize("extreme", ["zeros", "ones"])
def test_new_id_is_a_full_width_id_whatever_the_random_bits(
    extreme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The smallest draw must still be padded to 25 characters, and the largest
    # must fit: new_id is called on every create and may never fail.
    def randbits(k: int) -> int:
        return 0 if extreme == "zeros" else (1 << k) - 1

    monkeypatch.setattr(ids.secrets, "randbits", randbits)
    ident = ids.new_id()
    assert is_id(ident)
    assert ident == ("0" * 25 if extreme == "zeros" else to_base36(2**128 - 1, 25))


def test_to_base36_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        to_base36(-1, 25)


@pytest.mark.parametrize(
    "text", ["", "abc", "A" * 25, "a" * 24, "a" * 26, "-" * 25, "a" * 24 + "_"]
)
def test_is_id_refuses_what_is_not_an_id(text: str) -> None:
    assert not is_id(text)
