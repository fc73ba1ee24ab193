"""``mloop user add|list|disable|passwd``: console users of the team server (argon2 password
hashes), on the store this machine opens. ``POST /api/v1/login`` trades a user's name and
password for an API token of the user's scope."""

from __future__ import annotations

import json
import sys

import typer

from mloop.commands._common import err, open_cli_backend, out, when
from mloop.errors import UserError

user_app = typer.Typer(no_args_is_help=True,
                       help="Console users of the mloop server (scopes: read < run < admin).")


def _read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin, or typed twice at a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise UserError("no password on stdin", hint="pipe it in: `echo \"$PW\" | mloop user add NAME "
                                                         "--password-stdin`")
        return password
    typed: str = typer.prompt("password", hide_input=True, confirmation_prompt="repeat password")
    return typed


@user_app.command("add")
def user_add(name: str = typer.Argument(..., help="the login name, e.g. alice"),
             scope: str = typer.Option("run", "--scope", help="read | run | admin"),
             password_stdin: bool = typer.Option(False, "--password-stdin",
                                                 help="read the password from stdin (first line)")) -> None:
    """Add a user; the password is asked twice (hidden), or read from stdin."""
    from mloop.store.users import check_user_name

    check_user_name(name)
    password = _read_password(password_stdin)
    with open_cli_backend() as backend:
        record = backend.store.users.add(name, password, scope)
    out.print(f"added user {record.name} (scope {record.scope})", highlight=False)


@user_app.command("list")
def user_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Users: name, scope, when added, last login, disabled."""
    from rich.table import Table

    with open_cli_backend() as backend:
        records = backend.store.users.list()
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    if not records:
        out.print("no users yet: `mloop user add NAME` adds one")
        return
    table = Table()
    for col in ("name", "scope", "created", "last login", "state"):
        table.add_column(col, no_wrap=col == "name")
    for r in records:
        table.add_row(r.name, r.scope, when(r.created_at), when(r.last_login_at) if r.last_login_at else "-",
                      "disabled" if r.disabled else "active")
    out.print(table)


@user_app.command("disable")
def user_disable(name: str = typer.Argument(..., help="the user's name")) -> None:
    """Disable a user: logins are refused, and the tokens its logins made are revoked."""
    from mloop.store.users import revoke_login_tokens

    with open_cli_backend() as backend:
        record = backend.store.users.disable(name)
        revoked = revoke_login_tokens(backend.store.tokens, record.name)
    out.print(f"disabled user {record.name}" + (f"; revoked {revoked} login token(s)" if revoked else ""),
              highlight=False)


@user_app.command("passwd")
def user_passwd(name: str = typer.Argument(..., help="the user's name"),
                password_stdin: bool = typer.Option(False, "--password-stdin",
                                                    help="read the password from stdin (first line)")) -> None:
    """Set a user's password (asked twice, hidden, or read from stdin)."""
    with open_cli_backend() as backend:
        backend.store.users.get(name)  # no prompt for a user that does not exist
        password = _read_password(password_stdin)
        record = backend.store.users.set_password(name, password)
    err.print(f"password of {record.name} changed", highlight=False)
