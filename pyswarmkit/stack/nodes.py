"""Reading a YAML node tree with the file position of every value.

PyYAML's ``compose`` gives nodes that remember where they were in the file;
``At`` wraps one with its key path so that every complaint says where:
``compose.yml:7:5: services.web.deploy.replicas: expected an integer, got 'three'``.
Pure: it reads only the nodes it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import INT64_MAX, INT64_MIN

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
# Keys starting with this are Compose's extension fields: anchors to merge from.
EXTENSION = "x-"


class ComposeError(InvalidArgument):
    """A compose file that cannot be deployed; the message names the place."""


def _scalar(node: yaml.Node) -> Any:
    """A scalar node's value as YAML 1.1 reads it (0400 is octal, yes is true)."""
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except (ConstructorError, ValueError):
        return node.value


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    value = _scalar(node)
    return repr(value) if node.tag == _STR else str(node.value)


@dataclass(frozen=True, slots=True)
class At:
    """A node and where it is: the file's name (as the user gave it) and the
    dotted key path (``services.web.deploy``)."""

    node: yaml.Node
    file: str
    path: str

    @property
    def where(self) -> str:
        mark = self.node.start_mark
        place = f"{self.file}:{mark.line + 1}:{mark.column + 1}"
        return f"{place}: {self.path}" if self.path else place

    def fail(self, message: str) -> NoReturn:
        raise ComposeError(f"{self.where}: {message}")

    def _expected(self, what: str) -> NoReturn:
        self.fail(f"expected {what}, got {_describe(self.node)}")

    def child(self, node: yaml.Node, key: str | int) -> At:
        path = f"{self.path}[{key}]" if isinstance(key, int) else _join(self.path, key)
        return At(node, self.file, path)

    # --- shapes ---------------------------------------------------------------

    @property
    def is_null(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag == _NULL

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    @property
    def is_list(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    def mapping(
        self,
        allowed: frozenset[str] | None = None,
        unsupported: frozenset[str] = frozenset(),
    ) -> dict[str, At]:
        """The entries of a mapping, in file order. ``allowed``: the keys we
        read (None: any key, as a map of names); a key in ``unsupported`` is
        Compose's but not ours. A key given twice is refused (PyYAML would
        silently keep the last); ``<<`` merges are followed, their keys
        yielding to the mapping's own; extension keys (``x-``) are skipped."""
        if self.is_null:
            return {}
        if not isinstance(self.node, yaml.MappingNode):
            self._expected("a mapping")
        out: dict[str, At] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in self.node.value:
            if key_node.tag == _MERGE:
                continue
            key = self._key(key_node)
            where = At(key_node, self.file, _join(self.path, key))
            if key in lines:
                where.fail(f"duplicate key {key!r} (first given on line {lines[key]})")
            lines[key] = key_node.start_mark.line + 1
            if key.startswith(EXTENSION):
                continue
            if allowed is not None and key not in allowed:
                if key in unsupported:
                    where.fail(f"{key!r} is not supported by swarmctl stack deploy")
                where.fail(f"unknown key {key!r}")
            out[key] = At(value_node, self.file, _join(self.path, key))
        for key_node, value_node in self.node.value:
            if key_node.tag == _MERGE:
                for merged_key, merged in self._merged(At(value_node, self.file, self.path)):
                    if merged_key in out or merged_key.startswith(EXTENSION):
                        continue
                    if allowed is not None and merged_key not in allowed:
                        merged.fail(f"unknown key {merged_key!r} (merged from <<)")
                    out[merged_key] = merged
        return out

    def _merged(self, source: At) -> list[tuple[str, At]]:
        sources = (
            [source.child(n, i) for i, n in enumerate(source.node.value)]
            if (source.is_list)
            else [source]
        )
        pairs: list[tuple[str, At]] = []
        for s in sources:
            if not s.is_mapping:
                s.fail(f"<< merges a mapping, not {_describe(s.node)}")
            for key_node, value_node in s.node.value:
                if key_node.tag != _MERGE:
                    key = s._key(key_node)
                    pairs.append((key, At(value_node, self.file, _join(self.path, key))))
        return pairs

    def _key(self, key_node: yaml.Node) -> str:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in (_NULL,):
            At(key_node, self.file, self.path).fail("a key must be a plain string")
        return str(key_node.value)

    def items(self) -> list[At]:
        if self.is_null:
            return []
        if not isinstance(self.node, yaml.SequenceNode):
            self._expected("a list")
        return [self.child(n, i) for i, n in enumerate(self.node.value)]

    # --- scalars --------------------------------------------------------------

    def _plain(self) -> yaml.ScalarNode:
        if not isinstance(self.node, yaml.ScalarNode):
            self._expected("a single value")
        return self.node

    def string(self) -> str:
        """A string; a number or a boolean is taken as written."""
        node = self._plain()
        if node.tag == _NULL:
            self._expected("a string")
        return str(node.value)

    def text(self) -> str:
        """A value that is text, never a number or a boolean read as text."""
        node = self._plain()
        if node.tag != _STR:
            self._expected("a string")
        return str(node.value)

    def integer(self) -> int:
        node = self._plain()
        value = _scalar(node) if node.tag == _INT else None
        if not isinstance(value, int) or isinstance(value, bool):
            self._expected("an integer")
        if not INT64_MIN <= value <= INT64_MAX:
            self.fail(f"{node.value} is out of range (64-bit integers)")
        return value

    def number(self) -> float:
        node = self._plain()
        value = _scalar(node) if node.tag in (_INT, _FLOAT) else None
        if not isinstance(value, int | float) or isinstance(value, bool):
            self._expected("a number")
        return float(value)

    def boolean(self) -> bool:
        node = self._plain()
        value = _scalar(node) if node.tag == _BOOL else None
        if not isinstance(value, bool):
            self._expected("true or false")
        return value

    def strings(self) -> list[str]:
        """A list of strings."""
        return [item.string() for item in self.items()]

    def string_or_strings(self) -> str | list[str]:
        if self.is_list:
            return self.strings()
        return self.string()

    def scalar_text(self) -> str | None:
        """A scalar as text (numbers and booleans as written, true as 'true');
        None for null."""
        node = self._plain()
        if node.tag == _NULL:
            return None
        if node.tag == _BOOL:
            return "true" if _scalar(node) else "false"
        return str(node.value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse(text: str, file: str) -> At:
    """The document's root, or a ComposeError at the place YAML gave up."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = exc.problem or exc.context or "invalid YAML"
        raise ComposeError(f"{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ComposeError(f"{file}: {exc}") from None
    except RecursionError:
        # PyYAML's parser recurses once per level of nesting.
        raise ComposeError(f"{file}: nested too deeply to read") from None
    if root is None:
        raise ComposeError(f"{file}: the file is empty: it needs a services section")
    return At(root, file, "")
