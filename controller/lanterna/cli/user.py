"""`lanterna user add|list|remove|passwd|role`: the operators of the web console
(lanterna.operators; docs/security.md, "Operators and the audit log").

There is no default account: the first admin is added here, on the controller's
machine. A password is typed twice at a hidden prompt, read from stdin
(``--password-stdin``, one line) or generated (``--generate``: printed once on stdout,
the only place it ever appears). Every change is in the audit log (`lanterna audit`),
never with a password. Exit statuses as everywhere (docs/cli.md): 4 a malformed name,
role or password, 3 an unknown operator, 1 a name taken or the last admin kept.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from lanterna.cli.audit import note
from lanterna.cli.options import json_option, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.context import Ctx, store_errors
from lanterna.operators import ROLES, Operators, check_name, check_role, generate_password

ROLE_HELP = f"What the operator may do: {', '.join(ROLES)} (docs/security.md)."


_STDIN = click.option("--password-stdin", is_flag=True, help="Read it from stdin (one line).")
_GENERATE = click.option("--generate", is_flag=True, help="Make one; print it once on stdout.")


def password_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--password-stdin, --generate; neither: a hidden prompt, twice."""
    return _STDIN(_GENERATE(fn))


def _password(password_stdin: bool, generate: bool) -> str:
    if password_stdin and generate:
        raise click.UsageError("give --password-stdin or --generate, not both")
    if generate:
        return generate_password()
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


def _local(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


@click.group()
def user() -> None:
    """Operators of the web console: their roles and passwords."""


@user.command("add")
@click.argument("name")
@click.option("--role", required=True, metavar="|".join(ROLES), help=ROLE_HELP)
@password_options
@pass_ctx
@store_errors
def user_add(c: Ctx, name: str, role: str, password_stdin: bool, generate: bool) -> None:
    """Add an operator NAME (2-32 characters: a-z first, then a-z, 0-9, '.', '_', '-')
    with a password of at least 12 characters.

    \b
    Examples:
      lanterna user add alice --role admin
      lanterna user add bob --role operator --generate
      pass show lanterna/carol | lanterna user add carol --role viewer --password-stdin
    """
    check_name(name)
    check_role(role)
    ops = Operators(c.store())
    ops.check_free(name)  # before asking for a password that would be thrown away
    password = _password(password_stdin, generate)
    ops.add(name, role, password)
    note(c, "user.add", f"user {name}", [], {"role": role, "generated": generate}, "ok")
    if generate:
        click.echo(password)
        click.echo(f"added {name} as {role}: the password above is shown once", err=True)
    else:
        click.echo(f"added {name} as {role}")


@user.command("list")
@json_option
@pass_ctx
@store_errors
def user_list(c: Ctx, as_json: bool) -> None:
    """The operators and their roles (never a password or its hash)."""
    ops = Operators(c.store()).list()
    if as_json:
        emit_json(ops)
        return
    rows = [(o["name"], o["role"], _local(o["created"]), _local(o["changed"])) for o in ops]
    click.echo(table(("name", "role", "created", "changed"), rows))


@user.command("remove")
@click.argument("name")
@pass_ctx
@store_errors
def user_remove(c: Ctx, name: str) -> None:
    """Remove an operator (the last admin stays: add another first)."""
    Operators(c.store()).remove(name)
    note(c, "user.remove", f"user {name}", [], {}, "ok")
    click.echo(f"removed {name}")


@user.command("passwd")
@click.argument("name")
@password_options
@pass_ctx
@store_errors
def user_passwd(c: Ctx, name: str, password_stdin: bool, generate: bool) -> None:
    """Set an operator's password.

    \b
    Example:
      lanterna user passwd bob --generate
    """
    ops = Operators(c.store())
    ops.get(name)  # unknown: exit 3 before the prompt
    password = _password(password_stdin, generate)
    ops.set_password(name, password)
    note(c, "user.passwd", f"user {name}", [], {"generated": generate}, "ok")
    if generate:
        click.echo(password)
        click.echo(f"new password for {name}: shown once, above", err=True)
    else:
        click.echo(f"new password for {name}")


@user.command("role")
@click.argument("name")
@click.argument("role", metavar="|".join(ROLES).upper())
@pass_ctx
@store_errors
def user_role(c: Ctx, name: str, role: str) -> None:
    """Change an operator's role (the last admin stays one).

    \b
    Example:
      lanterna user role bob viewer
    """
    ops = Operators(c.store())
    was = ops.get(name)["role"]
    ops.set_role(name, role)
    note(c, "user.role", f"user {name}", [], {"role": role, "was": was}, "ok")
    click.echo(f"{name} is {role} (was {was})")


COMMANDS = [user]
