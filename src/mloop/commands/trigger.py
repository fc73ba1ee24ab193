"""``mloop trigger ...``: git-push triggers of the team server: create, list, delete, deliveries."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from mloop.commands._common import open_cli_backend, out, when

trigger_app = typer.Typer(no_args_is_help=True,
                          help="Git-push triggers: a push to a repository queues a run of its workflow file.")


def _pairs(items: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="-p")
        pairs[key.strip()] = value
    return pairs


@trigger_app.command("create")
def trigger_create(
    name: str = typer.Argument(..., help="trigger name: 1-64 letters, digits, '-' or '_'"),
    repo: str = typer.Option(..., "--repo", help="git URL the server fetches pushed commits from"),
    workflow: str = typer.Option(..., "--workflow", help="the workflow file's path in the repository"),
    branch: list[str] = typer.Option([], "--branch", help="only pushes to branches matching this (repeatable)"),
    path: list[str] = typer.Option([], "--path", help="only pushes changing a path matching this (repeatable)"),
    param: list[str] = typer.Option([], "-p", "--param", help="NAME=VALUE placeholder value for the runs"),
    secret: Optional[str] = typer.Option(None, "--secret", help="webhook secret (default: a new random one)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Define a trigger; prints its webhook secret (once) and the URL path to configure."""
    from mloop.triggers.service import create_trigger, mask_url, webhook_path

    with open_cli_backend() as ctx:
        trigger, made_secret = create_trigger(ctx, name, repo_url=repo, workflow_path=workflow, branches=branch,
                                              paths=path, params=_pairs(param), secret=secret)
    if as_json:
        out.print_json(json.dumps({**trigger.public(), "repo_url": mask_url(trigger.repo_url), "secret": made_secret,
                                   "webhook_path": webhook_path(name)}))
        return
    out.print(f"trigger [bold]{escape(name)}[/] created: pushes to {escape(mask_url(trigger.repo_url))} "
              f"queue runs of {escape(trigger.workflow_path)}")
    out.print(f"webhook URL:  <server>{webhook_path(name)}  (content type application/json, push events)")
    out.print(f"secret:       {escape(made_secret)}")
    out.print("[dim]the secret is shown this once: set it in the webhook's settings "
              "(GitHub/Gitea: Secret; GitLab: Secret token)[/]", highlight=False)


@trigger_app.command("list")
def trigger_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """The triggers (secrets left out)."""
    from mloop.triggers.service import list_triggers, mask_url

    with open_cli_backend() as ctx:
        triggers = list_triggers(ctx)
    if as_json:
        out.print_json(json.dumps([{**t.public(), "repo_url": mask_url(t.repo_url)} for t in triggers]))
        return
    if not triggers:
        out.print("no triggers (mloop trigger create NAME --repo URL --workflow PATH)")
        return
    table = Table("name", "repository", "workflow", "branches", "paths", "created")
    for t in triggers:
        table.add_row(escape(t.name), escape(mask_url(t.repo_url)), escape(t.workflow_path),
                      escape(", ".join(t.branches) or "any"), escape(", ".join(t.paths) or "any"), when(t.created_at))
    out.print(table)


@trigger_app.command("delete")
def trigger_delete(name: str = typer.Argument(..., help="trigger name")) -> None:
    """Remove a trigger and its delivery history."""
    from mloop.triggers.service import delete_trigger

    with open_cli_backend() as ctx:
        delete_trigger(ctx, name)
    out.print(f"trigger {escape(name)} deleted")


@trigger_app.command("deliveries")
def trigger_deliveries(
    name: str = typer.Argument(..., help="trigger name"),
    limit: int = typer.Option(20, "--limit", help="at most this many, newest first"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """The push events a trigger received, newest first, and what came of each."""
    from mloop.triggers.service import list_deliveries

    with open_cli_backend() as ctx:
        deliveries = list_deliveries(ctx, name, limit=limit)
    if as_json:
        out.print_json(json.dumps([d.model_dump(mode="json") for d in deliveries]))
        return
    if not deliveries:
        out.print(f"no deliveries for {escape(name)} yet")
        return
    table = Table("received", "provider", "delivery", "ref", "commit", "status", "run", "message")
    for d in deliveries:
        table.add_row(when(d.received_at), d.provider, escape(d.delivery_id), escape(d.ref or ""),
                      (d.commit or "")[:12], d.status, (d.run_id or "")[:12], escape(d.message or ""))
    out.print(table)
