"""The client's side of a log stream: open it, read until it ends (or, when
following, until interrupted), and print each line as Docker does: stdout
lines to stdout, stderr lines to stderr, each after its task's name."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pyswarmkit.api.errors import DeadlineExceeded, Unavailable
from pyswarmkit.logs.lines import STDERR, LogLine, format_line, prefix, task_name


class Client(Protocol):
    path: str

    def call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def alive(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Style:
    timestamps: bool = False
    no_task_ids: bool = False
    no_trunc: bool = False
    raw: bool = False


class Namer:
    """Each task's line prefix, from what the manager said of it."""

    def __init__(self, style: Style, padding: int) -> None:
        self.style = style
        self.padding = padding
        self.heads: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def learn(self, tasks: list[dict[str, Any]]) -> None:
        for t in tasks:
            name = task_name(
                str(t["service"]),
                int(t["slot"]),
                str(t["id"]),
                str(t["node"]),
                no_task_ids=self.style.no_task_ids,
                no_trunc=self.style.no_trunc,
            )
            self.names[t["id"]] = name
            self.heads[t["id"]] = prefix(name, int(t["slot"]), self.padding)

    def line(self, row: list[Any]) -> tuple[int, str]:
        task_id, stream, t, text = row
        head = self.heads.get(task_id, task_id + "    | ")
        out = format_line(
            LogLine(int(stream), float(t), str(text)),
            head,
            timestamps=self.style.timestamps,
            raw=self.style.raw,
        )
        return int(stream), out

    def task(self, task_id: str) -> str:
        return self.names.get(task_id, task_id)


def stream(
    client: Client,
    body: dict[str, Any],
    style: Style,
    out: Callable[[int, list[str]], None],
    error: Callable[[str], None],
) -> int:
    """Print a log stream; returns how many tasks' logs could not be read.
    Ctrl-C (KeyboardInterrupt) closes the stream on the manager, then goes on
    up to the caller."""
    opened = client.call("logs.open", body)
    sid = opened["stream"]
    namer = Namer(style, int(opened.get("padding", 1)))
    namer.learn(opened.get("tasks", []))
    failures = 0
    try:
        while True:
            try:
                page = client.call("logs.read", {"stream": sid})
            except DeadlineExceeded:
                if client.alive():
                    raise
                raise Unavailable(f"swarmd at {client.path} stopped") from None
            namer.learn(page.get("tasks", []))
            by_stream: dict[int, list[str]] = {}
            for row in page.get("lines", []):
                s, text = namer.line(row)
                by_stream.setdefault(s if s == STDERR else 1, []).append(text)
            for s, texts in by_stream.items():
                out(s, texts)
            for task_id, message in page.get("errors", []):
                failures += 1
                error(f"task {namer.task(task_id)}: {message}")
            if page.get("done"):
                return failures
    except BaseException:
        with contextlib.suppress(Exception):
            client.call("logs.close", {"stream": sid})
        raise
