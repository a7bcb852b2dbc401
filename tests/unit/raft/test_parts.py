"""Raft messages too large for one frame go in parts and are put together
per sender; a part missing or out of order spoils only its bundle."""

from __future__ import annotations

import os

from pyswarmkit.raft.parts import Assembler, split


def test_parts_in_order_give_the_bundle_back_whole() -> None:
    data = os.urandom(10_000)
    parts = split(data, 3_000)
    assert [off for off, _ in parts] == [0, 3_000, 6_000, 9_000]
    asm = Assembler()
    results = [asm.add("m1", 7, off, len(data), chunk) for off, chunk in parts]
    assert all(why == "" for _, why in results)
    assert [whole for whole, _ in results[:-1]] == [None, None, None]
    assert results[-1][0] == data


def test_a_missing_part_spoils_its_bundle_and_the_next_starts_clean() -> None:
    data = os.urandom(9_000)
    parts = split(data, 3_000)
    asm = Assembler()
    asm.add("m1", 1, 0, len(data), parts[0][1])
    whole, why = asm.add("m1", 1, parts[2][0], len(data), parts[2][1])
    assert whole is None and "offset 6000" in why
    # The rest of that bundle is refused; a new one from its start is taken.
    assert asm.add("m1", 1, parts[1][0], len(data), parts[1][1])[1]
    got = [asm.add("m1", 2, off, len(data), chunk) for off, chunk in parts]
    assert got[-1] == (data, "")


def test_senders_do_not_mix_and_sizes_are_bounded() -> None:
    asm = Assembler(max_size=100)
    assert asm.add("m1", 1, 0, 10, b"abcde") == (None, "")
    assert asm.add("m2", 1, 0, 10, b"ABCDE") == (None, "")
    assert asm.add("m2", 1, 5, 10, b"FGHIJ") == (b"ABCDEFGHIJ", "")
    assert asm.add("m1", 1, 5, 10, b"fghij") == (b"abcdefghij", "")
    whole, why = asm.add("m1", 2, 0, 101, b"x")
    assert whole is None and "at most 100" in why
    # A part that runs past the size it announced.
    assert asm.add("m1", 3, 0, 4, b"12345")[1]
