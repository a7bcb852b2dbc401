"""``swarmctl stack``: deploy a Compose file's services as one stack, list
stacks, their services and tasks, and remove them, as ``docker stack`` does."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from pyswarmkit import display
from pyswarmkit.api import codec, typecheck
from pyswarmkit.api.errors import InvalidArgument, NotFound
from pyswarmkit.api.objects import Service, Task
from pyswarmkit.cli import (
    STATE,
    FormatOpt,
    Output,
    QuietOpt,
    _app,
    _echo,
    _json,
    _task_ls_rows,
    swarmctl_app,
)
from pyswarmkit.control.stacks import stack_of
from pyswarmkit.stack import files
from pyswarmkit.transport.control import MAX_REQUEST_BYTES

stack_app = _app("Deploy and manage stacks: the services of a Compose file, together.")

swarmctl_app.add_typer(stack_app, name="stack")

StackArg = Annotated[str, typer.Argument(metavar="STACK", help="The stack's name.")]


def _err(text: str) -> None:
    typer.echo(text, err=True)


@stack_app.command("deploy")
def stack_deploy(
    stack: StackArg,
    compose_file: Annotated[
        str,
        typer.Option(
            "--compose-file", "-c", metavar="FILE", help="The Compose file (- for stdin)."
        ),
    ],
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove the stack's services the file no longer has.")
    ] = False,
) -> None:
    """Deploy a new stack or update an existing one. Everything is checked
    before anything changes, then applied in one step: services whose spec
    changed are updated (rolling, per their update_config), the others left
    as they are."""
    plan = files.load(compose_file, stack)
    body: dict[str, Any] = {
        "name": plan.stack,
        "services": list(plan.services),
        "secrets": list(plan.secrets),
        "configs": list(plan.configs),
        "prune": prune,
    }
    for spec in plan.services:
        # Values out of range (a replica count past 64 bits) are said here, not by swarmd.
        typecheck.check(spec, f"services[{spec.annotations.name}]")
    size = len(codec.packb(body))
    if size > MAX_REQUEST_BYTES - 4096:
        # The manager drops a larger request unread; say why here instead of timing out.
        raise InvalidArgument(
            f"the stack is too large to send in one request ({size} bytes, at most "
            f"{MAX_REQUEST_BYTES - 4096}): split its secrets and configs over several stacks"
        )
    result = STATE.call("stack.deploy", body)
    for name in result.get("secrets") or ():
        _echo(f"Creating secret {name}")
    for name in result.get("configs") or ():
        _echo(f"Creating config {name}")
    # Docker's lines, in the file's order.
    for name, action, service_id in result.get("services") or ():
        if action == "created":
            _echo(f"Creating service {name}")
        elif action == "updated":
            _echo(f"Updating service {name} (id: {service_id})")
        else:
            _echo(f"Service {name} unchanged (id: {service_id})")
    for name in result.get("removed") or ():
        _echo(f"Removing service {name}")


@stack_app.command("ls")
def stack_ls(output: FormatOpt = Output.table) -> None:
    """List stacks."""
    stacks = STATE.call("stack.list")["stacks"]
    if output is Output.json:
        _json(stacks)
        return
    rows = [[s["name"], str(s["services"])] for s in stacks]
    _echo(display.table(["NAME", "SERVICES"], rows))


def _services(stack: str) -> tuple[list[Service], dict[str, Any]]:
    result = STATE.call("service.list")
    mine = [s for s in result["services"] if stack_of(s.spec.annotations.labels) == stack]
    return mine, result


@stack_app.command("services")
def stack_services(
    stack: StackArg, quiet: QuietOpt = False, output: FormatOpt = Output.table
) -> None:
    """List the services of a stack."""
    services, result = _services(stack)
    if not services:
        _err(f"Nothing found in stack: {stack}")
        return
    if output is Output.json:
        _json(services)
        return
    if quiet:
        _echo("\n".join(s.id for s in services))
        return
    _echo(display.service_table(services, result["running"], result.get("counts") or {}))


@stack_app.command("ps")
def stack_ps(
    stack: StackArg,
    all_tasks: Annotated[bool, typer.Option("--all", "-a", help="Include finished tasks.")] = False,
    quiet: QuietOpt = False,
    output: FormatOpt = Output.table,
) -> None:
    """List the tasks of a stack's services."""
    services, _ = _services(stack)
    if not services:
        raise NotFound(f"nothing found in stack: {stack}")
    tasks: list[Task] = []
    nodes: dict[str, str] = {}
    client = STATE.client()
    try:
        for svc in services:
            for page in client.stream("task.list", {"service": svc.id, "all": all_tasks}):
                tasks.extend(page.get("tasks") or ())
                nodes.update(page.get("nodes") or {})
    finally:
        client.close()
    if output is Output.json:
        _json(tasks)
        return
    if quiet:
        if tasks:
            _echo("\n".join(t.id for t in tasks))
        return
    headers = ["ID", "Name", "Image", "Desired State", "Last State", "Node"]
    _echo(display.table(headers, _task_ls_rows(tasks, nodes, time.time())))


def _remove(stacks: list[str]) -> None:
    failed = False
    for stack in dict.fromkeys(stacks):
        result = STATE.call("stack.remove", {"name": stack})
        removed = [
            (kind, name)
            for kind in ("service", "secret", "config")
            for name in result.get(kind + "s") or ()
        ]
        problems = result.get("failed") or []
        if not removed and not problems:
            _err(f"Nothing found in stack: {stack}")
            continue
        for kind, name in removed:
            _echo(f"Removing {kind} {name}")
        for line in problems:
            _err(f"swarmctl: error: {line}")
            failed = True
    if failed:
        raise typer.Exit(1)


StacksArg = Annotated[list[str], typer.Argument(metavar="STACK...", help="Stack names.")]


@stack_app.command("rm")
def stack_rm(stacks: StacksArg) -> None:
    """Remove stacks: their services, and the secrets and configs they created."""
    _remove(stacks)


@stack_app.command("remove", hidden=True)
def stack_remove(stacks: StacksArg) -> None:
    _remove(stacks)


@stack_app.command("down", hidden=True)
def stack_down(stacks: StacksArg) -> None:
    _remove(stacks)
