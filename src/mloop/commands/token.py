"""``mloop token create|list|revoke``: the server's API tokens, on the store this machine opens."""

from __future__ import annotations

import json

import typer

from mloop.commands._common import err, open_cli_backend, out, when

token_app = typer.Typer(no_args_is_help=True,
                        help="API tokens of the mloop server (scopes: read < run < admin).")


@token_app.command("create")
def token_create(name: str = typer.Argument(..., help="what the token is for, e.g. ci-bot"),
                 scope: str = typer.Option("run", "--scope", help="read | run | admin")) -> None:
    """Make a token; it is printed once and only its hash is kept."""
    with open_cli_backend() as backend:
        record, text = backend.store.tokens.create(name, scope)
    err.print(f"token {record.name} ({record.id}, scope {record.scope}); shown once, keep it secret:",
              highlight=False)
    print(text)


@token_app.command("list")
def token_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Tokens: id, name, scope, when made, last used, revoked."""
    from rich.table import Table

    with open_cli_backend() as backend:
        records = backend.store.tokens.list()
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    if not records:
        out.print("no tokens yet: `mloop server` makes an admin token on first start; "
                  "`mloop token create NAME` makes more")
        return
    table = Table()
    for col in ("id", "name", "scope", "created", "last used", "state"):
        table.add_column(col, no_wrap=col in ("id", "name"))
    for r in records:
        table.add_row(r.id, r.name, r.scope, when(r.created_at), when(r.last_used_at) if r.last_used_at else "-",
                      "revoked" if r.revoked_at else "live")
    out.print(table)


@token_app.command("revoke")
def token_revoke(token: str = typer.Argument(..., help="the token's id (or its name, if unique)")) -> None:
    """Revoke a token: requests that carry it are refused from now on."""
    with open_cli_backend() as backend:
        record = backend.store.tokens.revoke(token)
    out.print(f"revoked token {record.name} ({record.id})", highlight=False)
