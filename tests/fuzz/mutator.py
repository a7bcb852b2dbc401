"""A seeded mutator: turns a corpus of valid inputs into a stream of broken ones.

Every choice comes from one ``random.Random``, so a seed and an index name an
input exactly. Byte-level operations (bit flips, inserts, deletes, truncation,
splicing two inputs, repeated chunks, dictionary tokens) are mixed with
structure-aware ones: the input is decoded (MessagePack, or TOML for text
surfaces), one value somewhere in the tree is replaced by a value of another
type, a huge or tiny number, a long string, a deep nest, or removed or
duplicated, and the tree is encoded again. Bytes fields that hold MessagePack
themselves (Raft payloads, objects in ext values) are mutated the same way,
one level down.
"""

from __future__ import annotations

import datetime
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

# Placeholders put in a tree and swapped for raw bytes after encoding: things
# an encoder will not write (nesting deeper than it recurses, invalid UTF-8).
_DEEP = "\x00deep-sentinel\x00"
_BADUTF8 = "\x00utf8-sentinel\x00"

MAX_INPUT = 1024 * 1024

INTERESTING_BYTES = (
    0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC7, 0xCA, 0xCB,
    0xCC, 0xCF, 0xD0, 0xD3, 0xD4, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF,
    0x90, 0x9F, 0x80, 0x8F, 0xA0, 0xBF, 0xE0,
)  # fmt: skip

MSGPACK_TOKENS: tuple[bytes, ...] = (
    b"\xc0", b"\xc2", b"\xc3", b"\x90", b"\x80", b"\xa0", b"\xc4\x00",
    b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff",
    b"\xc6\xff\xff\xff\xff", b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", b"\xd4\x01\x00", b"\xc7\x00\x20",
)  # fmt: skip

TOML_TOKENS: tuple[bytes, ...] = (
    b"[[node]]\n", b"[[service]]\n", b"[node]\n", b"=", b'"', b"'''", b'"""', b"[", b"]",
    b"{", b"}", b",", b"\n", b"#", b"\\", b"\\u0000", b"\\uD800", b"nan", b"inf", b"-0",
    b"1979-05-27T07:32:00Z", b"0x7fffffffffffffff", b"99999999999999999999", b"1e999",
    b'hostname = "', b"replicas = ", b'role = "manager"\n', b'role = "worker"\n',
    b"heartbeat_period = ", b'listen_remote_api = "', b"command = [", b"\x00", b"\xff",
    b"\r", b"\t", b" = ", b"a.b.c = 1\n",
)  # fmt: skip


@dataclass(frozen=True)
class Structure:
    """How a surface's inputs decode to a tree of values and encode back."""

    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]
    tokens: tuple[bytes, ...]
    odd: Callable[[random.Random], Any]
    # Swaps the placeholders of ``_DEEP`` and ``_BADUTF8`` for raw bytes.
    finish: Callable[[bytes, random.Random], bytes]


# --- MessagePack -------------------------------------------------------------------


def _keep_ext(code: int, data: memoryview) -> msgspec.msgpack.Ext:
    return msgspec.msgpack.Ext(code, bytes(data))


def msgpack_decode(data: bytes) -> Any:
    return msgspec.msgpack.decode(data, ext_hook=_keep_ext)


def msgpack_encode(tree: Any) -> bytes:
    return msgspec.msgpack.encode(tree)


def _msgpack_odd(rng: random.Random) -> Any:
    choices: tuple[Callable[[], Any], ...] = (
        lambda: None,
        lambda: rng.choice((True, False)),
        lambda: rng.choice((0, -1, 1, 2**63 - 1, -(2**63), 2**64 - 1, 2**32, 2**31, 255, 65536)),
        lambda: rng.randrange(-1000, 1000),
        lambda: rng.choice((0.0, -0.0, 1e308, -1e308, math.nan, math.inf, -math.inf, 1e16, 5e-324)),
        lambda: rng.choice(("", "x", "default", "web", "manager", "worker", "node.labels.a==b")),
        lambda: "a" * rng.choice((65, 256, 301, 4097, 100_000)),
        lambda: rng.choice(("\x00", "a\x00b", "\u00e9\u4e2d\U0001f600", "..", "/", "-1", "1e3")),
        lambda: rng.randbytes(rng.choice((0, 1, 31, 32, 33, 64, 1000))),
        lambda: [],
        lambda: [None] * rng.choice((1, 2, 13, 100)),
        lambda: {},
        lambda: {"": None},
        lambda: {rng.randrange(-5, 5): "x"},
        lambda: {"spec": {}, "ref": "x", "id": 0},
        lambda: msgspec.msgpack.Ext(rng.randrange(0, 128), rng.randbytes(rng.randrange(0, 16))),
        lambda: _DEEP,
        lambda: _BADUTF8,
    )
    return rng.choice(choices)()


def _fill(data: bytes, placeholder: bytes, make: Callable[[int], bytes]) -> bytes:
    """Each ``placeholder`` in ``data`` swapped for ``make(n)`` (n counts from 0),
    in one pass: a placeholder may have been copied hundreds of times."""
    if placeholder not in data:
        return data
    parts = data.split(placeholder)
    out = [parts[0]]
    for n, part in enumerate(parts[1:]):
        out.append(make(n))
        out.append(part)
    return b"".join(out)


def _msgpack_finish(data: bytes, rng: random.Random) -> bytes:
    def nest(n: int) -> bytes:
        # Only the first few are deep: the input stays a few megabytes at most.
        depth = rng.choice((64, 1000, 10_000, 100_000)) if n < 3 else 64
        return rng.choice((b"\x91", b"\x81\xa1a", b"\xdc\x00\x01")) * depth + b"\xc0"

    data = _fill(data, msgspec.msgpack.encode(_DEEP), nest)
    bad = (b"\xa2\xff\xfe", b"\xa3\xed\xa0\x80", b"\xa1\x80")
    return _fill(data, msgspec.msgpack.encode(_BADUTF8), lambda _n: rng.choice(bad))


MSGPACK = Structure(msgpack_decode, msgpack_encode, MSGPACK_TOKENS, _msgpack_odd, _msgpack_finish)


# --- TOML ----------------------------------------------------------------------------


def toml_decode(data: bytes) -> Any:
    import tomllib

    return tomllib.loads(data.decode("utf-8"))


_TOML_ESCAPES = {o: f"\\u{o:04x}" for o in [*range(0x20), 0x7F]} | {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}


def _toml_str(s: str) -> str:
    return '"' + s.translate(_TOML_ESCAPES) + '"'


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, datetime.datetime | datetime.date | datetime.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{" + ", ".join(f"{_toml_str(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
        )
    raise TypeError(f"no TOML for {type(v).__name__}")


def toml_encode(tree: Any) -> bytes:
    """A TOML text for ``tree``: arrays of tables as ``[[key]]`` blocks, the
    rest as ``key = value`` lines with inline tables."""
    if not isinstance(tree, dict):
        return ("value = " + _toml_value(tree) + "\n").encode()
    head: list[str] = []
    blocks: list[str] = []
    for key, value in tree.items():
        if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
            for table in value:
                blocks.append(f"[[{_toml_str(str(key))}]]")
                blocks.extend(f"{_toml_str(str(k))} = {_toml_value(v)}" for k, v in table.items())
                blocks.append("")
        else:
            head.append(f"{_toml_str(str(key))} = {_toml_value(value)}")
    return ("\n".join([*head, "", *blocks]) + "\n").encode("utf-8", "surrogatepass")


def _toml_odd(rng: random.Random) -> Any:
    choices: tuple[Callable[[], Any], ...] = (
        lambda: rng.choice((True, False)),
        lambda: rng.choice((0, -1, 1, 2**63 - 1, -(2**63), 2**64, 10**30, 65536, 64, 65)),
        lambda: rng.choice((0.0, -0.0, 1e308, math.nan, math.inf, -math.inf, 1e16, 0.001)),
        lambda: rng.choice(("", "x", "manager", "worker", "process", "sim", "docker", "5s")),
        lambda: rng.choice(("1ms", "0s", "-5s", "1e400s", "999999999h", "nan", "5", "5x")),
        lambda: rng.choice(("127.0.0.1:0", "127.0.0.1:99999", ":", "[::1]:4242", "h:-1")),
        lambda: "a" * rng.choice((64, 65, 256, 4097, 100_000)),
        lambda: rng.choice(("\x00", "a b", "\u00e9\u4e2d\U0001f600", "..", "/", "../..", "~")),
        lambda: datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.UTC),
        lambda: datetime.date(2000, 1, 1),
        lambda: [],
        lambda: [1, "a"],
        lambda: {},
        lambda: {"node": 1},
        lambda: [{"hostname": "n"}] * rng.choice((2, 65)),
        lambda: _DEEP,
    )
    return rng.choice(choices)()


def _toml_finish(data: bytes, rng: random.Random) -> bytes:
    def nest(n: int) -> bytes:
        depth = rng.choice((100, 1000, 10_000)) if n < 3 else 10
        left, right = rng.choice((("[", "]"), ("{a = ", "}")))
        return (left * depth + "1" + right * depth).encode()

    return _fill(data, _toml_str(_DEEP).encode(), nest)


TOML = Structure(toml_decode, toml_encode, TOML_TOKENS, _toml_odd, _toml_finish)


# --- YAML (compose files) ----------------------------------------------------------

YAML_TOKENS: tuple[bytes, ...] = (
    b"services:\n", b"  web:\n", b"    image: ", b"    command: ", b"    deploy:\n",
    b"      replicas: ", b"      mode: global\n", b"secrets:\n", b"  s:\n    file: ",
    b"external: true\n", b"&a ", b"*a", b"<<: *a\n", b"!!python/object:os.system ",
    b"!!binary ", b"---\n", b"...\n", b"- ", b": ", b"{", b"}", b"[", b"]", b"'", b'"',
    b"|\n", b">\n", b"\t", b"\x00", b"\xff", b"~", b"null", b".nan", b".inf", b"0x", b"1e999",
    b"99999999999999999999", b"x-ext: 1\n", b"version: '3.8'\n", b"\n  ", b"? ",
)  # fmt: skip


def yaml_decode(data: bytes) -> Any:
    import yaml

    return yaml.safe_load(data)


def yaml_encode(tree: Any) -> bytes:
    import yaml

    return yaml.safe_dump(tree, allow_unicode=True, sort_keys=False).encode()


def _yaml_odd(rng: random.Random) -> Any:
    choices: tuple[Callable[[], Any], ...] = (
        lambda: rng.choice((True, False, None)),
        lambda: rng.choice((0, -1, 1, 2**63 - 1, -(2**63), 2**64, 10**30, 65536)),
        lambda: rng.choice((0.0, -0.0, 1e308, math.nan, math.inf, 0.5)),
        lambda: rng.choice(("", "x", "global", "replicated", "host", "ingress", "any", "none")),
        lambda: rng.choice(("1ms", "0s", "-5s", "1e400s", "999999999h", "5", "5x", "1.5G")),
        lambda: rng.choice(("8080:80", "80", "a:b:c", "99999:1", "80-90:80-90/udp", "/x:/y:ro")),
        lambda: "a" * rng.choice((64, 65, 256, 4097, 100_000)),
        lambda: rng.choice(("\x00", "a b", "\u00e9\u4e2d\U0001f600", "..", "/", "../..", "~")),
        lambda: [],
        lambda: [1, "a", None],
        lambda: {},
        lambda: {"file": "/etc/hostname"},
        lambda: {"external": True, "name": "x"},
        lambda: _DEEP,
    )
    return rng.choice(choices)()


def _yaml_finish(data: bytes, rng: random.Random) -> bytes:
    def nest(n: int) -> bytes:
        depth = rng.choice((100, 1000, 10_000)) if n < 3 else 10
        left, right = rng.choice((("[", "]"), ("{a: ", "}")))
        return (left * depth + "1" + right * depth).encode()

    return _fill(data, yaml_encode(_DEEP).strip().removesuffix(b"...").strip(), nest)


YAML = Structure(yaml_decode, yaml_encode, YAML_TOKENS, _yaml_odd, _yaml_finish)


# --- the mutator ---------------------------------------------------------------------


@dataclass
class Mutator:
    rng: random.Random
    corpus: Sequence[bytes]
    structure: Structure = MSGPACK
    # Share of inputs that are random bytes rather than a mutated corpus entry.
    random_share: float = 0.06
    _ops: list[Callable[[bytes], bytes]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.corpus:
            raise ValueError("a mutator needs at least one valid input")
        self._ops = [
            self.flip_bit,
            self.set_byte,
            self.insert_bytes,
            self.delete_range,
            self.truncate,
            self.splice,
            self.repeat_chunk,
            self.insert_token,
        ]
        # Half the changes know the structure: they get past the first
        # decoding, to the checks and the code behind it.
        self._ops += [self.structural] * len(self._ops)

    def input(self) -> bytes:
        """The next input: random bytes, or a corpus entry mutated 1-4 times."""
        rng = self.rng
        if rng.random() < self.random_share:
            return rng.randbytes(rng.choice((0, 1, 2, 5, 16, 64, 300, 2000)))
        data = rng.choice(self.corpus)
        for _ in range(1 + (rng.randrange(4) if rng.random() < 0.5 else 0)):
            data = rng.choice(self._ops)(data)
            if len(data) > MAX_INPUT:
                # Size limits are tested by their own tests; here time goes to variety.
                data = data[:MAX_INPUT]
        return data

    # --- bytes ---------------------------------------------------------------------

    def _at(self, data: bytes, extra: int = 0) -> int:
        return self.rng.randrange(len(data) + extra) if data or extra else 0

    def flip_bit(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self._at(data)
        return data[:i] + bytes((data[i] ^ (1 << self.rng.randrange(8)),)) + data[i + 1 :]

    def set_byte(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self._at(data)
        b = (
            self.rng.choice(INTERESTING_BYTES)
            if self.rng.random() < 0.7
            else self.rng.randrange(256)
        )
        return data[:i] + bytes((b,)) + data[i + 1 :]

    def insert_bytes(self, data: bytes) -> bytes:
        i = self._at(data, 1)
        return data[:i] + self.rng.randbytes(self.rng.choice((1, 2, 4, 8, 33))) + data[i:]

    def delete_range(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self._at(data)
        n = self.rng.randrange(1, min(len(data) - i, 64) + 1)
        return data[:i] + data[i + n :]

    def truncate(self, data: bytes) -> bytes:
        return data[: self._at(data)]

    def splice(self, data: bytes) -> bytes:
        other = self.rng.choice(self.corpus)
        return data[: self._at(data, 1)] + other[self._at(other, 1) :]

    def repeat_chunk(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self._at(data)
        n = self.rng.randrange(1, min(len(data) - i, 32) + 1)
        times = self.rng.choice((2, 3, 10, 100, 1000))
        return data[:i] + data[i : i + n] * times + data[i + n :]

    def insert_token(self, data: bytes) -> bytes:
        i = self._at(data, 1)
        return data[:i] + self.rng.choice(self.structure.tokens) + data[i:]

    # --- structure -----------------------------------------------------------------

    def structural(self, data: bytes) -> bytes:
        """Decode, change one value somewhere in the tree, encode; bytes that
        do not decode get a byte-level change instead."""
        try:
            tree = self.structure.decode(data)
        except Exception:
            return self.flip_bit(data)
        tree = self.mutate_tree(tree, depth=0)
        try:
            out = self.structure.encode(tree)
        except Exception:
            return self.set_byte(data)
        return self.structure.finish(out, self.rng)

    def mutate_tree(self, tree: Any, depth: int) -> Any:
        slots = _slots(tree, limit=4000)
        if not slots or self.rng.random() < 0.03:
            return self._changed(tree, depth)
        container, key = self.rng.choice(slots)
        container[key] = self._changed(container[key], depth)
        if isinstance(container, dict) and self.rng.random() < 0.2:
            self._reshape_map(container, key)
        elif isinstance(container, list) and self.rng.random() < 0.2:
            self._reshape_list(container, key)
        return tree

    def _reshape_map(self, m: dict[Any, Any], key: Any) -> None:
        rng = self.rng
        what = rng.randrange(3)
        if what == 0:
            m.pop(key, None)
        elif what == 1:
            m[rng.choice(("zzz", "", "v", "id", "spec", "body", "method", key))] = m.get(key)
        elif key in m and isinstance(key, str):
            m[key + rng.choice(("x", "_", "\u00e9"))] = m.pop(key)

    def _reshape_list(self, seq: list[Any], i: int) -> None:
        rng = self.rng
        what = rng.randrange(3)
        if what == 0:
            del seq[i]
        elif what == 1:
            seq.insert(i, seq[i])
        else:
            seq.extend([seq[i]] * rng.choice((1, 10, 500)))

    def _changed(self, value: Any, depth: int) -> Any:
        """``value`` replaced, nudged, or (for nested MessagePack) mutated inside."""
        rng = self.rng
        if isinstance(value, msgspec.msgpack.Ext) and depth < 2 and rng.random() < 0.7:
            return msgspec.msgpack.Ext(value.code, self._inner(bytes(value.data), depth))
        if isinstance(value, bytes) and len(value) > 2 and depth < 2 and rng.random() < 0.6:
            return self._inner(value, depth)
        if isinstance(value, bool) or rng.random() < 0.6:
            return self.structure.odd(rng)
        if isinstance(value, int):
            return rng.choice((value + 1, value - 1, -value, value * 2**32, ~value))
        if isinstance(value, str):
            if not value:
                return rng.choice(("x", "\x00"))
            i = rng.randrange(len(value) + 1)
            return value[:i] + rng.choice(("\x00", "x", " ", "\u00e9", "\n", "=", "*")) + value[i:]
        if isinstance(value, list | dict) and value:
            return self.mutate_tree(value, depth)
        return self.structure.odd(rng)

    def _inner(self, data: bytes, depth: int) -> bytes:
        """Bytes that hold MessagePack themselves, mutated one level down."""
        try:
            tree = msgpack_decode(data)
        except Exception:
            return self.flip_bit(data)
        try:
            out = msgpack_encode(self.mutate_tree(tree, depth + 1))
        except Exception:
            return self.flip_bit(data)
        return _msgpack_finish(out, self.rng)


def _slots(tree: Any, limit: int) -> list[tuple[Any, Any]]:
    """(container, key) of every value below ``tree``, breadth first, at most ``limit``."""
    found: list[tuple[Any, Any]] = []
    todo = [tree]
    while todo and len(found) < limit:
        node = todo.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                found.append((node, k))
                todo.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                found.append((node, i))
                todo.append(v)
    return found
