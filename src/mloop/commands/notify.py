"""``mloop notify ...``: subscriptions to run and step events, and the delivery log."""

from __future__ import annotations

import json
from typing import Optional

import typer

from mloop.commands._common import open_cli_backend, out, when

notify_app = typer.Typer(no_args_is_help=True,
                         help="Notifications of run and step events (webhook, Slack, e-mail): add, list, remove, "
                              "log, send.")

_EVENTS_HELP = ("comma-separated events: failed, succeeded, stopped, waiting_input, started (run_ or step_ "
                "by --step), or full names such as run_failed, step_succeeded; default: how runs (or the step) "
                "end or wait")


def _bad(message: str) -> typer.BadParameter:
    return typer.BadParameter(message)


@notify_app.command("add")
def add(name: str = typer.Argument(..., help="the subscription's name"),
        channel: str = typer.Option(..., "--channel", "-c", help="webhook, slack or email"),
        target: str = typer.Option(..., "--target", "-t", help="http(s) URL, or comma-separated e-mail addresses"),
        workflow: Optional[str] = typer.Option(None, "--workflow", "-w", help="only this workflow (default: all)"),
        step: Optional[str] = typer.Option(None, "--step", "-s", help="only this step's events"),
        events: Optional[str] = typer.Option(None, "--events", "-e", help=_EVENTS_HELP),
        secret: Optional[str] = typer.Option(None, "--secret", help="HMAC-SHA256 key signing webhook bodies"),
        replace: bool = typer.Option(False, "--replace", help="update the subscription of that name")) -> None:
    """Subscribe a webhook, a Slack channel or e-mail addresses to run and step events."""
    from mloop.notify.rules import check_channel, check_target, normalize_events

    try:
        check_channel(channel)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    try:
        target = check_target(channel, target)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    try:
        chosen = normalize_events(events, step=step)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    if secret and channel != "webhook":
        raise _bad("--secret signs webhook bodies; slack and email subscriptions take none")
    with open_cli_backend() as backend:
        sub = backend.store.notify.add_subscription(name, channel=channel, target=target, events=chosen,
                                                    workflow_name=workflow, step_name=step, secret=secret,
                                                    replace=replace)
    scope = f"{sub.workflow_name or 'every workflow'}" + (f", step {sub.step_name}" if sub.step_name else "")
    out.print(f"[green]subscribed[/green] [bold]{sub.name}[/bold]: {', '.join(sub.events)} of {scope} "
              f"-> {sub.channel} {sub.target}", highlight=False)


@notify_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List subscriptions (those in mloop.toml included, once a run or `mloop notify send` stored them)."""
    from rich.table import Table

    with open_cli_backend() as backend:
        if backend.settings.notify:
            from mloop.notify.notifier import sync_from_settings

            sync_from_settings(backend)
        subs = backend.store.notify.list_subscriptions()
    if as_json:
        out.print_json(json.dumps([s.model_dump(mode="json", exclude={"secret"}) | {"signed": bool(s.secret)}
                                   for s in subs]))
        return
    if not subs:
        out.print("no subscriptions yet (mloop notify add NAME --channel webhook --target https://...)")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "workflow", "step", "events", "channel", "target"):
        table.add_column(column, overflow="fold")
    for s in subs:
        table.add_row(s.name + ("" if s.enabled else " (off)"), s.workflow_name or "*", s.step_name or "*",
                      ",".join(e.replace("run_", "").replace("step_", "") for e in s.events), s.channel,
                      s.target + (" (signed)" if s.secret else ""))
    out.print(table)


@notify_app.command("remove")
def remove(name: str = typer.Argument(..., help="the subscription to remove")) -> None:
    """Remove a subscription (and its queued notifications)."""
    from mloop.errors import NotFoundError

    with open_cli_backend() as backend:
        if not backend.store.notify.remove_subscription(name):
            known = [s.name for s in backend.store.notify.list_subscriptions()][:10]
            raise NotFoundError(f"no subscription named {name!r}",
                                hint=f"known subscriptions: {', '.join(known) or 'none'}")
        declared = any(spec.name == name for spec in backend.settings.notify)
    out.print(f"removed subscription [bold]{name}[/bold]", highlight=False)
    if declared:
        out.print(f"note: mloop.toml declares {name!r}; it comes back with the next run unless removed there",
                  style="yellow", highlight=False)


@notify_app.command("log")
def log(limit: int = typer.Option(20, "--limit", "-n", min=1, help="how many, newest first"),
        status: Optional[str] = typer.Option(None, "--status", help="pending, sent or failed"),
        as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """The delivery log: each notification's status, attempts and last error."""
    with open_cli_backend() as backend:
        notes = backend.store.notify.list_notifications(limit=limit, status=status)
    if as_json:
        out.print_json(json.dumps([n.model_dump(mode="json") for n in notes]))
        return
    if not notes:
        out.print("no notifications yet")
        return
    # Plain fixed columns, so a line fits 80 columns whatever the names: cut, never wrapped.
    out.print(f"{'id':>5} {'when':<11} {'to':<10} {'run/event':<24} {'status':<7} {'try':>3} last error",
              style="bold", highlight=False)
    for n in notes:
        what = f"{n.payload.get('workflow', '?')}#{n.payload.get('run_number', '?')} " + \
            (f"{n.step_name}." if n.step_name else "") + n.event.split("_", 1)[1]
        error = (n.last_error or "").splitlines()[0] if n.last_error else ""
        color = {"sent": "green", "failed": "red"}.get(n.status, "yellow")
        line = (f"{n.id:>5} {when(n.sent_at or n.created_at)[5:16]:<11} {_cut(n.subscription_name or '?', 10):<10} "
                f"{_cut(what, 24):<24} [{color}]{n.status:<7}[/{color}] {n.attempts:>3} {_cut(error, 14)}")
        out.print(line, highlight=False)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


@notify_app.command("send")
def send_now(seconds: float = typer.Option(30.0, "--max-seconds", help="stop sending after this long")) -> None:
    """Queue notifications for new events and send those due now (what runs do when they end)."""
    from mloop.notify.notifier import Notifier

    with open_cli_backend() as backend:
        result = Notifier(backend).pump(max_seconds=seconds)
        pending = len(backend.store.notify.list_notifications(limit=1000, status="pending"))
    out.print(f"queued {result.queued}, sent {result.sent}, failed attempts {result.failed}, "
              f"{pending} pending", highlight=False)
