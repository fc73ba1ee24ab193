"""``mloop schedule ...``: cron-driven runs of released workflows (the team server fires them)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional
from zoneinfo import ZoneInfo

import typer

from mloop.commands._common import open_cli_backend, out, parse_pairs

if TYPE_CHECKING:
    from mloop.store.schedules import ScheduleRecord

schedule_app = typer.Typer(no_args_is_help=True,
                           help="Cron-driven runs of released workflows: create, list, pause, resume, delete.")


def _in_zone(value: datetime | None, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z") if value else ""


def _dump(rec: ScheduleRecord, upcoming: list[datetime]) -> dict[str, Any]:
    return {**rec.model_dump(mode="json"), "upcoming": [t.isoformat() for t in upcoming]}


@schedule_app.command("create")
def schedule_create(
    workflow: str = typer.Argument(..., help="a released workflow's name"),
    cron: str = typer.Option(..., "--cron", help="five-field cron expression, e.g. '0 3 * * 1-5'"),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone the expression is read in, e.g. Asia/Shanghai"),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="placeholder value NAME=VALUE (repeatable)"),
    name: Optional[str] = typer.Option(None, "--name", help="schedule name (default: WORKFLOW-N)"),
    catchup: str = typer.Option("one", "--catchup", help="missed fire times: skip | one (a run for the latest) | all"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Run a released workflow on a cron expression (the team server queues the runs)."""
    from mloop.services.schedules import create_schedule, next_fire_times

    with open_cli_backend() as backend:
        rec = create_schedule(backend, workflow, cron, tz=tz, params=parse_pairs(param), name=name,
                              catchup=catchup)
    upcoming = next_fire_times(rec, datetime.now(timezone.utc), 3)
    if as_json:
        print(json.dumps(_dump(rec, upcoming), indent=2))
        return
    out.print(f"schedule {rec.name}: {rec.workflow_name} at '{rec.cron}' ({rec.timezone}), catch-up {rec.catchup}")
    for t in upcoming:
        out.print(f"  next: {_in_zone(t, rec.timezone)}  ({t.strftime('%Y-%m-%d %H:%M')} UTC)")


@schedule_app.command("list")
def schedule_list(workflow: Optional[str] = typer.Option(None, "-w", "--workflow", help="only this workflow's"),
                  as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List schedules with their next fire time (in each schedule's zone)."""
    from rich.table import Table

    from mloop.services.schedules import list_schedules

    with open_cli_backend() as backend:
        records = list_schedules(backend, workflow)
    if as_json:
        print(json.dumps([_dump(r, [r.next_fire_at] if r.next_fire_at and not r.paused else []) for r in records],
                         indent=2))
        return
    if not records:
        out.print("no schedules yet: `mloop schedule create WORKFLOW --cron '0 3 * * *' --tz Asia/Shanghai`")
        return
    table = Table()
    for col in ("schedule", "workflow", "cron / zone", "next fire", "state"):
        table.add_column(col, overflow="fold", no_wrap=col == "next fire")
    for r in records:
        state = "[yellow]paused[/]" if r.paused else f"[green]on[/]\n{r.catchup}"
        table.add_row(r.name, r.workflow_name, f"{r.cron}\n{r.timezone}",
                      "" if r.paused else _in_zone(r.next_fire_at, r.timezone), state)
    out.print(table)


@schedule_app.command("pause")
def schedule_pause(name: str = typer.Argument(..., help="schedule name")) -> None:
    """Stop firing a schedule until it is resumed."""
    from mloop.services.schedules import pause_schedule

    with open_cli_backend() as backend:
        rec = pause_schedule(backend, name)
    out.print(f"schedule {rec.name} paused")


@schedule_app.command("resume")
def schedule_resume(name: str = typer.Argument(..., help="schedule name")) -> None:
    """Fire a paused schedule again (what fell due while paused is not caught up)."""
    from mloop.services.schedules import resume_schedule

    with open_cli_backend() as backend:
        rec = resume_schedule(backend, name)
    out.print(f"schedule {rec.name} resumed; next fire {_in_zone(rec.next_fire_at, rec.timezone)}")


@schedule_app.command("delete")
def schedule_delete(name: str = typer.Argument(..., help="schedule name")) -> None:
    """Remove a schedule and its fire history (the runs it started stay)."""
    from mloop.services.schedules import delete_schedule

    with open_cli_backend() as backend:
        rec = delete_schedule(backend, name)
    out.print(f"schedule {rec.name} deleted")
