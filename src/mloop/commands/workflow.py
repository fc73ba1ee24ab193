"""``mloop workflow ...``: released workflows as objects (list, show, versions, diff, saved run
configurations, start, delete), and ``mloop copy RUN`` / ``mloop delete RUN``."""

from __future__ import annotations

import json
import os
import textwrap
from typing import TYPE_CHECKING, Any, Optional

import typer

from mloop.commands._common import err, open_cli_backend, out, parse_pairs, when

if TYPE_CHECKING:
    from mloop.store.workflows import RunConfigRecord

workflow_app = typer.Typer(no_args_is_help=True,
                           help="Released workflows: list, show, versions, diff, run configurations, start, delete.")
config_app = typer.Typer(no_args_is_help=True, help="Saved run configurations (placeholder values) of a workflow.")
workflow_app.add_typer(config_app, name="config")

#: Diff lines are folded to this width, so they read on an 80-column terminal.
DIFF_WIDTH = 80


def _steps(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _value(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@workflow_app.command("list")
def workflow_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List released workflows: latest version, how many versions and runs, the last run's status."""
    from rich.table import Table

    from mloop.console import status_text
    from mloop.services.workflows import list_workflows

    with open_cli_backend() as backend:
        records = list_workflows(backend)
    if as_json:
        _print_json([w.to_dict() for w in records])
        return
    if not records:
        out.print("no workflows released yet: `mloop release FILE`")
        return
    table = Table()
    for col in ("workflow", "latest", "versions", "runs", "last run"):
        table.add_column(col, no_wrap=True)
    for w in records:
        table.add_row(w.name, str(w.latest_version), str(w.versions), str(w.runs),
                      status_text(w.last_run_status) if w.last_run_status else "")
    out.print(table)


@workflow_app.command("show")
def workflow_show(name: str = typer.Argument(..., help="a released workflow's name"),
                  version: Optional[int] = typer.Option(None, "--version", "-v", help="this version (default: latest)"),
                  as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show a release: its steps, placeholders (with defaults), git facts and saved configurations."""
    from rich.table import Table

    from mloop.services.workflows import show_workflow

    with open_cli_backend() as backend:
        view = show_workflow(backend, name, version)
    if as_json:
        _print_json(view.to_dict())
        return
    out.print(f"[bold]{view.name}[/bold] version {view.version} of {len(view.versions)} "
              f"({view.spec_hash[:12]}, released {view.created_at[:19].replace('T', ' ')} UTC)", highlight=False)
    if view.description:
        out.print(f"  {view.description}", style="dim", highlight=False)
    git = view.extend
    if git.get("git_commit_id"):
        out.print(f"git {git['git_commit_id'][:12]}" + (f" on {git['git_branch']}" if git.get("git_branch") else ""),
                  highlight=False)
    table = Table(title="steps", title_justify="left")
    for col in ("step", "type", "inputs", "outputs"):
        table.add_column(col, overflow="fold")
    for s in view.steps:
        table.add_row(s["name"], s["type"], ", ".join(i["name"] for i in s["inputs"]),
                      ", ".join(o["name"] for o in s["outputs"]))
    out.print(table)
    if view.placeholders:
        ph = Table(title="placeholders", title_justify="left")
        for col in ("name", "kind", "type", "default", "required"):
            ph.add_column(col, overflow="fold")
        for p in view.placeholders:
            ph.add_row(p["name"], p["kind"], p["type"], _value(p["default"]), "yes" if p["required"] else "")
        out.print(ph)
    if view.configs:
        out.print("run configurations: " + ", ".join(view.configs), highlight=False)


@workflow_app.command("versions")
def workflow_versions(name: str = typer.Argument(..., help="a released workflow's name"),
                      as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List a workflow's versions, oldest first."""
    from rich.table import Table

    from mloop.services.workflows import list_versions

    with open_cli_backend() as backend:
        releases = list_versions(backend, name)
    if as_json:
        _print_json([r.model_dump(mode="json", exclude={"spec"}) for r in releases])
        return
    table = Table()
    for col in ("version", "spec hash", "released", "git"):
        table.add_column(col, no_wrap=True)
    for r in releases:
        table.add_row(str(r.version), r.spec_hash[:12], when(r.created_at), str(r.extend.get("git_commit_id", ""))[:12])
    out.print(table)


def _fold(line: str, width: int = DIFF_WIDTH) -> list[str]:
    """A diff line cut into pieces of at most ``width`` characters, each keeping its marker."""
    if len(line) <= width or line.startswith(("---", "+++", "@@")):
        return [line]
    marker, body = line[:1], line[1:]
    return [marker + piece for piece in textwrap.wrap(body, width - 1, drop_whitespace=False,
                                                      break_long_words=True, replace_whitespace=False)] or [line]


@workflow_app.command("diff")
def workflow_diff(name: str = typer.Argument(..., help="a released workflow's name"),
                  a: int = typer.Argument(..., help="the older version"),
                  b: int = typer.Argument(..., help="the newer version"),
                  as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show what changed between two versions: a summary, then a diff of their specs."""
    from rich.text import Text

    from mloop.services.workflows import diff_workflow

    with open_cli_backend() as backend:
        result = diff_workflow(backend, name, a, b)
    if as_json:
        _print_json(result.to_dict())
        return
    if result.same:
        out.print(f"versions {a} and {b} of {name} have the same spec", highlight=False)
        return
    for line in result.summary():
        out.print(line, highlight=False)
    out.print()
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in result.diff:
        style = "bold" if line.startswith(("---", "+++")) else styles.get(line[:1], "")
        for piece in _fold(line):
            out.print(Text(piece, style=style), highlight=False)


# -- run configurations --------------------------------------------------------------------------
def _config_dict(c: RunConfigRecord) -> dict[str, Any]:
    return c.model_dump(mode="json")


@config_app.command("save")
def config_save(workflow: str = typer.Argument(..., help="a released workflow's name"),
                name: str = typer.Argument(..., help="the configuration's name"),
                param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="placeholder value NAME=VALUE "
                                                          "(repeatable)"),
                steps: Optional[str] = typer.Option(None, "--steps", help="run only these steps (comma separated)"),
                description: str = typer.Option("", "--description", help="what it is for"),
                as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Save placeholder values under a name (checked against the latest release); saving again replaces them."""
    from mloop.services.workflows import save_config

    with open_cli_backend() as backend:
        rec = save_config(backend, workflow, name, parse_pairs(param), steps=_steps(steps), description=description)
    if as_json:
        _print_json(_config_dict(rec))
        return
    values = ", ".join(f"{k}={_value(v)}" for k, v in rec.params.items()) or "no values"
    out.print(f"saved run configuration [bold]{rec.name}[/bold] of {rec.workflow_name}: {values}", highlight=False)


@config_app.command("list")
def config_list(workflow: str = typer.Argument(..., help="a workflow's name"),
                as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List a workflow's saved run configurations."""
    from rich.table import Table

    from mloop.services.workflows import list_configs

    with open_cli_backend() as backend:
        records = list_configs(backend, workflow)
    if as_json:
        _print_json([_config_dict(c) for c in records])
        return
    if not records:
        out.print(f"{workflow} has no run configurations: `mloop workflow config save {workflow} NAME -p k=v`",
                  highlight=False)
        return
    table = Table()
    for col in ("config", "values", "steps", "updated"):
        table.add_column(col, overflow="fold")
    for c in records:
        table.add_row(c.name, ", ".join(f"{k}={_value(v)}" for k, v in c.params.items()), ", ".join(c.steps or []),
                      when(c.updated_at))
    out.print(table)


@config_app.command("delete")
def config_delete(workflow: str = typer.Argument(..., help="a workflow's name"),
                  name: str = typer.Argument(..., help="the configuration's name"),
                  as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Delete a saved run configuration."""
    from mloop.services.workflows import delete_config

    with open_cli_backend() as backend:
        rec = delete_config(backend, workflow, name)
    if as_json:
        _print_json(_config_dict(rec))
        return
    out.print(f"deleted run configuration {rec.name} of {rec.workflow_name}", highlight=False)


# -- start and delete ----------------------------------------------------------------------------
@workflow_app.command("start")
def workflow_start(name: str = typer.Argument(..., help="a released workflow's name"),
                   config: Optional[str] = typer.Option(None, "-c", "--config", help="start with this saved "
                                                        "run configuration"),
                   param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="placeholder value NAME=VALUE "
                                                             "(repeatable; overrides the configuration's)"),
                   version: Optional[int] = typer.Option(None, "--version", "-v", help="this version (default: latest)"),
                   follow: bool = typer.Option(False, "-f", "--follow", help="stream job logs while they run"),
                   quiet: bool = typer.Option(False, "-q", "--quiet", help="print only the run id"),
                   no_wait: bool = typer.Option(False, "--no-wait", help="return once the run only waits for input")
                   ) -> None:
    """Run a released workflow in this process (like `mloop run`), optionally with a saved configuration."""
    from mloop.console import Watcher
    from mloop.runs.service import raise_for_result, start_run
    from mloop.services.workflows import config_values, get_release
    from mloop.spec import load_spec

    with open_cli_backend() as backend:
        spec = load_spec(get_release(backend, name, version).spec, validate=False)
        values, steps = config_values(backend, name, config, parse_pairs(param))
        result = start_run(backend, spec, values, steps=steps, base_dir=os.getcwd(), detach_when_waiting=no_wait,
                           watch=Watcher(out, quiet=quiet, follow_logs=follow, print_id=True))
    raise_for_result(result)


@workflow_app.command("delete")
def workflow_delete(name: str = typer.Argument(..., help="a workflow's name"),
                    yes: bool = typer.Option(False, "-y", "--yes", help="don't ask"),
                    as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Delete a workflow: all its versions, its (ended) runs and its run configurations."""
    from mloop.services.workflows import delete_workflow

    if not yes and not typer.confirm(f"delete workflow {name} with all its versions, runs and configurations?"):
        raise typer.Abort()
    with open_cli_backend() as backend:
        deleted = delete_workflow(backend, name)
    if as_json:
        _print_json({"name": deleted.name, "releases": deleted.releases, "configs": deleted.configs,
                     "runs": deleted.run_ids})
        return
    out.print(f"deleted workflow {deleted.name}: {deleted.releases} version(s), {len(deleted.run_ids)} run(s), "
              f"{deleted.configs} configuration(s)", highlight=False)


def copy(run_id: str = typer.Argument(..., help="run id or prefix"),
         queue: bool = typer.Option(False, "--queue", help="only queue the copy, for a team server to run"),
         follow: bool = typer.Option(False, "-f", "--follow", help="stream job logs"),
         quiet: bool = typer.Option(False, "-q", "--quiet", help="print only the new run's id")) -> None:
    """Start a new run with the same release, values and steps as RUN (here, or --queue)."""
    from mloop.console import Watcher
    from mloop.runs.service import raise_for_result, run_to_end
    from mloop.runs.queue import copy_run

    with open_cli_backend() as backend:
        run = copy_run(backend, run_id, origin={"kind": "copy"}, queued=queue)
        if queue:
            if quiet:
                print(run.id)
            else:
                out.print(f"queued run {run.id[:12]} (#{run.number}), a copy of {run_id}", highlight=False)
            return
        watch = Watcher(out, quiet=quiet, follow_logs=follow, note=" (copy)", print_id=True)
        result = watch(run, lambda listener: run_to_end(backend, run.id, listener))
    raise_for_result(result)


def delete(run_id: str = typer.Argument(..., help="run id or prefix"),
           yes: bool = typer.Option(False, "-y", "--yes", help="don't ask"),
           as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Delete an ended run: its records and its files under <home>/runs (storage outputs stay)."""
    from mloop.services.workflows import delete_run

    if not yes and not typer.confirm(f"delete run {run_id} and its records?"):
        raise typer.Abort()
    with open_cli_backend() as backend:
        run = delete_run(backend, run_id)
    if as_json:
        _print_json({"deleted": run.id})
        return
    err.print(f"deleted run {run.id[:12]} ({run.workflow_name} #{run.number})")
