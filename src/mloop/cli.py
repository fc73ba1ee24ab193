"""The ``mloop`` command: a thin typer layer over :mod:`mloop.services`, rendered with rich."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from mloop import __version__
from mloop.commands.compare import compare as compare_command
from mloop.commands.dataset import dataset_app
from mloop.commands.label import label_app
from mloop.commands.model import model_app
from mloop.commands.notify import notify_app
from mloop.commands.schedule import schedule_app
from mloop.commands.serve import serve
from mloop.commands.server import server
from mloop.commands.service import service_app
from mloop.commands.token import token_app
from mloop.commands.train import train as train_command
from mloop.commands.trigger import trigger_app
from mloop.commands.worker import worker
from mloop.commands.user import user_app
from mloop.commands.workflow import copy as copy_run_command, delete as delete_run_command, workflow_app
from mloop.errors import BadArgumentError, MloopError, NotFoundError, Problem, SpecValidationError, StepFailed

if TYPE_CHECKING:
    from mloop.config import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="mloop: continuous training of ML models. Run a ModelArts-style workflow locally, "
                       "record every run, retry what failed.")
algorithm_app = typer.Typer(no_args_is_help=True, help="The local algorithm registry (wf.Algorithm, wf.AIGalleryAlgorithm).")
db_app = typer.Typer(no_args_is_help=True, help="The metadata database.")
app.add_typer(algorithm_app, name="algorithm")
app.add_typer(db_app, name="db")
app.add_typer(dataset_app, name="dataset")
app.add_typer(label_app, name="label")
app.add_typer(model_app, name="model")
app.add_typer(service_app, name="service")
app.add_typer(schedule_app, name="schedule")
app.add_typer(notify_app, name="notify")
app.add_typer(token_app, name="token")
app.add_typer(trigger_app, name="trigger")
app.add_typer(user_app, name="user")
app.add_typer(workflow_app, name="workflow")
app.command("copy")(copy_run_command)
app.command("delete")(delete_run_command)
app.command("compare")(compare_command)
app.command("serve")(serve)
app.command("server")(server)
app.command("train")(train_command)
app.command("worker")(worker)

# One pair of consoles for every command, the sub-command modules' included.
from mloop.commands._common import err, out, parse_pairs  # noqa: E402,F401 - parse_pairs: mloop.cli's API


# -- loading workflows ---------------------------------------------------------------------------
def load_workflow(target: str) -> Any:
    """The spec of ``FILE[:VARIABLE]``: a Python file defining a Workflow, or a compiled spec JSON."""
    from mloop.spec import load_spec

    path_text, _, variable = target.partition(":") if not os.path.exists(target) else (target, "", "")
    path = Path(path_text)
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}", hint="give a Python file that defines a Workflow, or a spec .json")
    if path.suffix == ".json":
        return load_spec(path)
    from mloop.workflow.loading import load_workflow_file

    return load_workflow_file(path, variable)


def _settings() -> Settings:
    from mloop.config import Settings  # here, not at the top: `mloop --help` needs no pydantic

    return Settings()


def _backend() -> Any:
    from mloop.commands._common import open_cli_backend

    return open_cli_backend(_settings())


def _client() -> Any:
    """The server's client in client mode (MLOOP_SERVER_URL / ``mloop login``), else None."""
    from mloop.commands._common import cli_client

    return cli_client(_settings())


# -- workflow commands -------------------------------------------------------------------------
@app.command()
def validate(file: str = typer.Argument(..., help="workflow file (FILE or FILE:VARIABLE) or spec .json")) -> None:
    """Check a workflow against every rule and make the pre-flight checks of a run (code_dir,
    boot file, algorithm, flavor) without starting anything; lists all problems found."""
    from mloop.runs.preflight import check_spec

    spec = load_workflow(file)
    report = check_spec(spec, _settings())
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    report.raise_for_problems()
    params = ", ".join([p.name for p in spec.parameters] + [d.name for d in spec.data_requirements]) or "none"
    out.print(f"[green]ok[/green] workflow [bold]{spec.name}[/bold]: {len(spec.steps)} steps, "
              f"placeholders: {params}", highlight=False)


@app.command()
def compile(file: str = typer.Argument(..., help="workflow file"),
            output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the spec here (default stdout)")) -> None:
    """Compile a workflow to its versioned JSON spec."""
    from mloop.spec import dump_spec

    text = json.dumps(dump_spec(load_workflow(file)), indent=2, ensure_ascii=False)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n")
        err.print(f"wrote {output}")


@app.command()
def login(url: str = typer.Argument(..., help="the server, e.g. http://mloop.internal:8080"),
          token: Optional[str] = typer.Option(None, "--token", help="an API token (default: asked for, hidden)")) -> None:
    """Use a server from now on (client mode): checks the token, then keeps URL and token in an
    owner-only file (~/.config/mloop/credentials.json)."""
    from mloop.client import Client, save_credentials

    token = token or typer.prompt("token", hide_input=True)
    with Client(url, token) as client:
        client.call("GET", "/runs", params={"limit": 1})  # a bad token or URL fails here, before saving
    path = save_credentials(url.rstrip("/"), token)
    out.print(f"logged in to {url}; saved to {path} (`mloop logout` forgets it)", highlight=False)


@app.command()
def logout() -> None:
    """Forget the server `mloop login` saved (back to running here)."""
    from mloop.client import credentials_path

    path = credentials_path()
    if path.exists():
        path.unlink()
        out.print(f"logged out (removed {path})", highlight=False)
    else:
        out.print("not logged in")


@app.command()
def release(file: str = typer.Argument(..., help="workflow file (FILE or FILE:VARIABLE) or spec .json")) -> None:
    """Release a workflow: store its spec as the next version (unchanged: the same version), so
    schedules, triggers and `POST /api/v1/runs` can start it by name."""
    from mloop.runs import release_spec

    spec = load_workflow(file)
    client = _client()
    if client is not None:
        from mloop.commands import remote

        with client:
            remote.release(client, spec)
        return
    with _backend() as backend:
        rec = release_spec(backend, spec)
    out.print(f"released [bold]{rec.workflow_name}[/bold] version {rec.version} ({rec.spec_hash[:12]})",
              highlight=False)


@app.command()
def run(file: str = typer.Argument(..., help="workflow file or spec .json"),
        param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="placeholder value NAME=VALUE (repeatable)"),
        steps: Optional[str] = typer.Option(None, "--steps", help="run only these steps (comma separated)"),
        scene: Optional[str] = typer.Option(None, "--scene", help="run only the steps of this policy scene"),
        from_run: Optional[str] = typer.Option(None, "--from-run", help="with --steps/--scene: take the inputs "
                                               "the steps need from unselected upstream steps from this earlier "
                                               "run (id or prefix)"),
        storage: Optional[list[str]] = typer.Option(None, "-s", "--storage", help="storage root NAME=PATH_OR_URL"),
        follow: bool = typer.Option(False, "-f", "--follow", help="stream job logs while they run"),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="print only the run id (first, so a failed run "
                                   "still has it)"),
        no_wait: bool = typer.Option(False, "--no-wait", help="return once the run only waits for input "
                                     "(a delayed placeholder, a labeling task); `mloop resume` continues it"),
        no_cache: bool = typer.Option(False, "--no-cache", help="run every job step, reusing no earlier result "
                                      "(their results are still kept for later runs to reuse)"),
        executor: Optional[str] = typer.Option(None, "--executor", help="where jobs run: local or ray (Ray: "
                                               "MLOOP_RAY_ADDRESS, else a local Ray for this run)")) -> None:
    """Run a workflow in this process; exits 0 only if the run succeeded (or, with --no-wait, waits for input)."""
    from mloop.console import Watcher
    from mloop.runs import raise_for_result, start_run

    if executor is not None:
        if executor not in ("local", "ray"):
            raise BadArgumentError(f"--executor {executor!r} is not an executor", hint="use local or ray")
        os.environ["MLOOP_EXECUTOR"] = executor  # this process's settings (and its engine) take it
    spec = load_workflow(file)
    values = parse_pairs(param, "--param")
    step_list = [s.strip() for s in steps.split(",") if s.strip()] if steps else None
    client = _client()
    if client is not None:
        from mloop.commands import remote
        from mloop.runs.service import select_steps

        if storage:
            raise BadArgumentError("-s/--storage is not supported in client mode yet",
                                   hint="set the storage's default to a URL the server reaches")
        if from_run:
            raise BadArgumentError("--from-run is not supported in client mode yet",
                                   hint="run the whole workflow, or run it on the server's machine")
        with client:
            result = remote.run(client, spec, values, select_steps(spec, step_list, scene), quiet=quiet,
                                follow=follow, no_wait=no_wait, cache=not no_cache)
        raise_for_result(result)
        return
    from mloop.runs.preflight import resource_warnings

    for warning in resource_warnings(spec, _settings()):
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    with _backend() as backend:
        # A path typed on the command line is relative to where it was typed.
        result = start_run(backend, spec, values, storages=parse_pairs(storage, "--storage"), steps=step_list,
                           scene=scene, base_dir=os.getcwd(), detach_when_waiting=no_wait, from_run=from_run,
                           cache=not no_cache, watch=Watcher(out, quiet=quiet, follow_logs=follow, print_id=True))
    raise_for_result(result)


# -- records of runs ---------------------------------------------------------------------------
def _ago(ts: Any) -> str:
    if ts is None:
        return ""
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _dur(start: Any, end: Any) -> str:
    from mloop.console import duration

    return duration(start.timestamp() if start else None, end.timestamp() if end else None)


@app.command()
def runs(workflow: Optional[str] = typer.Option(None, "-w", "--workflow", help="only runs of this workflow"),
         status: Optional[str] = typer.Option(None, "--status", help="only runs in this status"),
         limit: int = typer.Option(20, "-n", "--limit", help="how many (newest first)"),
         where: Optional[list[str]] = typer.Option(None, "--where", help="only runs where NAME OP VALUE holds, e.g. "
                                                   "'accuracy>0.97' (NAME: a parameter, a float metric or "
                                                   "STEP.METRIC; OP: > >= < <= == !=; repeatable: all must hold)"),
         sort: Optional[str] = typer.Option(None, "--sort", help="order by this metric or parameter, highest "
                                            "first; -NAME lowest first (runs without it last)"),
         as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List runs, newest first (or by --sort), optionally filtered by values (--where)."""
    from mloop.console import status_text
    from mloop.runs.queries import filter_runs

    client = _client()
    if client is not None:
        from mloop.commands import remote

        if where or sort:
            raise BadArgumentError("--where and --sort are not supported in client mode yet",
                                   hint="compare runs with `mloop compare`, or list them on the server's machine")
        with client:
            records = remote.list_runs(client, workflow, status, limit)
    else:
        with _backend() as backend:
            records = filter_runs(backend, workflow, [status] if status else None, where=where or (), sort=sort,
                                  limit=limit)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    from mloop.tables import fit_table, short_when

    table = Table()
    for col in ("run", "workflow", "#", "status", "started", "duration", "message"):
        table.add_column(col)
    for r in records:
        table.add_row(r.id[:12], r.workflow_name, str(r.number), status_text(r.status),
                      short_when(r.started_at or r.created_at), _dur(r.started_at, r.finished_at),
                      Text(r.message or "", style="dim"))
    # The run id whole on one line at any width; the free text gives way (`mloop show` has it all).
    fit_table(table, ("workflow", "message"))
    out.print(table if records else "no runs yet: start one with `mloop run FILE`")


@app.command()
def show(run_id: str = typer.Argument(..., help="run id (a unique prefix is enough)"),
         as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show a run: its values, steps, outputs and state history."""
    from mloop.runs import run_detail

    client = _client()
    if client is not None:
        from mloop.commands import remote

        with client:
            remote.show(client, run_id, as_json)
        return
    with _backend() as backend:
        detail = run_detail(backend, run_id)
    r, steps, events, release = detail.run, detail.steps, detail.events, detail.release
    if as_json:
        print(json.dumps({"run": r.model_dump(mode="json"), "steps": [s.model_dump(mode="json") for s in steps],
                          "events": [e.model_dump(mode="json") for e in events],
                          "release": release.model_dump(mode="json", exclude={"spec"})}, indent=2))
        return
    from mloop.commands.remote import print_run
    from mloop.steps.caching import describe

    print_run(r, steps, release.version, release.spec_hash, release.extend or {}, len(events),
              [(s.name, describe(s)) for s in steps])


@app.command()
def logs(run_id: str = typer.Argument(..., help="run id or prefix"),
         step: Optional[str] = typer.Argument(None, help="one step (default: all)"),
         follow: bool = typer.Option(False, "-f", "--follow", help="keep printing until the step ends")) -> None:
    """Print (and follow) the logs of a run's jobs."""
    from mloop.runs import log_lines, step_log_path

    client = _client()
    if client is not None:
        from mloop.commands import remote

        with client:
            remote.logs(client, run_id, step, follow)
        return
    with _backend() as backend:
        targets = step_log_path(backend, run_id, step)
        if not targets:
            err.print("no step of this run has a log yet")
            return
        prefix = len(targets) > 1
        for name, line in log_lines(backend, run_id, step, follow=follow):
            print(f"[{name}] {line}" if prefix else line, flush=True)


@app.command()
def metrics(run_id: str = typer.Argument(..., help="run id or prefix"),
            step: Optional[str] = typer.Option(None, "--step", help="only this step"),
            as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show the metrics a run's jobs wrote."""
    from mloop.runs import run_metrics

    with _backend() as backend:
        records = run_metrics(backend, run_id, step)
    if as_json:
        print(json.dumps([m.model_dump(mode="json") for m in records], indent=2))
        return
    if not records:
        out.print("no metrics recorded for this run")
        return
    table = Table()
    for col in ("step", "key", "type", "value"):
        table.add_column(col, overflow="fold")
    for m in records:
        table.add_row(m.step_name, m.key, m.type, _metric_text(m))
    out.print(table)


def _metric_text(m: Any) -> str:
    if m.type == "float":
        return f"{m.value:.6g}"
    data = m.data
    if m.type in ("line chart", "histogram"):
        ys = data["y_axis"][0]["value"]
        return f"{len(ys)} points, last {ys[-1]!r}" if ys else "no points"
    if m.type == "table":
        rows = data["cell_value"]
        return f"{len(rows)}x{len(rows[0]) if rows else 0} table ({data['row_labels'].get('title', 'rows')} x " \
               f"{data['col_labels'].get('title', 'cols')})"
    if m.type == "one-dimensional-table":
        return ", ".join(f"{k}={v}" for k, v in zip(data["labels"], data["cell_value"][0]))
    return json.dumps(data)[:80]


@app.command()
def stop(run_id: str = typer.Argument(..., help="run id or prefix")) -> None:
    """Stop a run: its running jobs (and the processes they started) end; it is marked stopped."""
    from mloop.runs import stop_run

    client = _client()
    if client is not None:
        from mloop.commands import remote

        with client:
            remote.stop(client, run_id)
        return
    with _backend() as backend:
        r = stop_run(backend, run_id)
    out.print(f"run {r.id[:12]} is {r.status}")


@app.command("input")
def input_(run_id: str = typer.Argument(..., help="run id or prefix"),
           values: list[str] = typer.Argument(..., help="NAME=VALUE for each placeholder the run waits for"),
           no_resume: bool = typer.Option(False, "--no-resume", help="only record the values"),
           no_wait: bool = typer.Option(False, "--no-wait", help="when resuming, return once the run waits again"),
           quiet: bool = typer.Option(False, "-q", "--quiet", help="print only the run id")) -> None:
    """Give values to a run waiting for input; a run with no engine left is resumed here."""
    from mloop.console import Watcher
    from mloop.runs import provide_input, raise_for_result, resumable, resume_and_run

    given = parse_pairs(values, "input")
    client = _client()
    if client is not None:
        from mloop.commands import remote

        with client:
            result = remote.give_input(client, run_id, given, quiet)
        raise_for_result(result)
        return
    with _backend() as backend:
        run = provide_input(backend, run_id, given)
        err.print(f"recorded {', '.join(given)} for run {run.id[:12]}")
        if no_resume or not resumable(backend, run):
            return
        result = resume_and_run(backend, run.id, detach_when_waiting=no_wait,
                                watch=Watcher(out, quiet=quiet, note=", resumed", print_id=True))
    raise_for_result(result)


@app.command()
def resume(run_id: str = typer.Argument(..., help="run id or prefix"),
           follow: bool = typer.Option(False, "-f", "--follow", help="stream job logs while they run"),
           no_wait: bool = typer.Option(False, "--no-wait", help="return once the run waits for input again"),
           quiet: bool = typer.Option(False, "-q", "--quiet", help="print only the run id")) -> None:
    """Continue a run that waits for input and whose engine has gone (--no-wait, a restart)."""
    from mloop.console import Watcher
    from mloop.runs import raise_for_result, resume_and_run

    with _backend() as backend:
        result = resume_and_run(backend, run_id, detach_when_waiting=no_wait,
                                watch=Watcher(out, quiet=quiet, follow_logs=follow, note=", resumed", print_id=True))
    raise_for_result(result)


@app.command()
def retry(run_id: str = typer.Argument(..., help="run id or prefix"),
          follow: bool = typer.Option(False, "-f", "--follow", help="stream job logs"),
          param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="changed placeholder value "
                                                    "NAME=VALUE for this attempt (repeatable)")) -> None:
    """Re-run a failed or stopped run from its failed steps, reusing what succeeded."""
    from mloop.console import Watcher
    from mloop.runs import raise_for_result, retry_and_run

    values = parse_pairs(param, "--param")
    client = _client()
    if client is not None:
        from mloop.commands import remote

        with client:
            result = remote.retry(client, run_id, values)
        raise_for_result(result)
        return
    with _backend() as backend:
        result = retry_and_run(backend, run_id, values=values,
                               watch=Watcher(out, follow_logs=follow, note=" (retry, attempt {attempt})"))
    raise_for_result(result)


@app.command()
def gc(dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be removed")) -> None:
    """Remove deleted runs' folders, dataset objects and model files no version refers to, and
    per-job environments no job has used for env_expiry (default 30d) and none is using now."""
    from mloop.commands._common import size
    from mloop.services.gc import collect

    with _backend() as backend:
        found = collect(backend, dry_run=dry_run)
    for kind, path, nbytes in found.items:
        out.print(f"{'would remove' if dry_run else 'removed'} {kind} {path} ({size(nbytes)})", highlight=False)
    for note in found.skipped:
        err.print(note)
    verb = "would free" if dry_run else "freed"
    err.print(f"{len(found.items)} item(s); {verb} {size(found.total)}" if found.items else "nothing to remove")


# -- algorithms, flavors, database -------------------------------------------------------------
@algorithm_app.command("register")
def algorithm_register(
        name: str = typer.Argument(..., help="algorithm name"),
        code_dir: Path = typer.Option(..., "--code-dir", help="folder with the code"),
        boot_file: Optional[str] = typer.Option(None, "--boot-file", help="script inside code-dir"),
        command: Optional[str] = typer.Option(None, "--command", help="command to run inside code-dir"),
        version: str = typer.Option("1.0.0", "--version", help="x.y.z"),
        algorithm_id: Optional[str] = typer.Option(None, "--id", help="id for wf.Algorithm(algorithm_id) (default: NAME)"),
        subscription_id: Optional[str] = typer.Option(None, "--subscription-id", help="id for wf.AIGalleryAlgorithm"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="parameter NAME=DEFAULT (repeatable); "
                                                  "NAME! marks it required, NAME= with no default"),
        fixed: Optional[list[str]] = typer.Option(None, "--fixed", help="parameter that runs may not change"),
        inputs: Optional[str] = typer.Option(None, "--inputs", help="input names the step must have (comma separated)"),
        outputs: Optional[str] = typer.Option(None, "--outputs", help="output names (comma separated)"),
        description: str = typer.Option("", "--description")) -> None:
    """Register an algorithm so workflows can use it by id or subscription."""
    from mloop.services.algorithms import register_algorithm

    with _backend() as backend:
        rec = register_algorithm(backend, name, code_dir, boot_file=boot_file, command=command, version=version,
                                 algorithm_id=algorithm_id, subscription_id=subscription_id, params=param or [],
                                 fixed=fixed or [], inputs=inputs, outputs=outputs, description=description)
    out.print(f"registered algorithm [bold]{rec.name}[/bold] {rec.version} (id {rec.id}"
              + (f", subscription {rec.subscription_id}" if rec.subscription_id else "") + ")", highlight=False)


@algorithm_app.command("list")
def algorithm_list() -> None:
    """List registered algorithms."""
    from mloop.services.algorithms import list_algorithms

    with _backend() as backend:
        records = list_algorithms(backend)
    table = Table()
    for col in ("id", "name", "version", "subscription", "entry", "parameters"):
        table.add_column(col, overflow="fold")
    for a in records:
        table.add_row(a.id, a.name, a.version, a.subscription_id or "", a.boot_file or a.command or "",
                      ", ".join(f"{p['name']}={p.get('default')!r}" for p in a.parameters))
    out.print(table if records else "no algorithms registered: `mloop algorithm register NAME --code-dir DIR --boot-file F`")


@app.command()
def flavors() -> None:
    """List the resource flavors jobs can ask for."""
    from mloop.tables import fit_table

    table = Table()
    for col in ("flavor_id", "cpu", "gpu", "GiB", "description"):
        table.add_column(col)
    for fid, f in sorted(_settings().flavors.items()):
        table.add_row(fid, f"{f.cpu:g}", str(f.gpu), f"{f.memory_gb:g}", f.description)
    fit_table(table, ("description",))
    out.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the metadata database to this mloop's schema."""
    from mloop.store import upgrade_database

    settings = _settings()
    upgrade_database(settings.resolved_database_url)
    out.print(f"database is up to date ({settings.resolved_database_url})")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="print the version")) -> None:
    if version:
        print(__version__)
        raise typer.Exit()


def _app_for(args: list[str]) -> typer.Typer:
    """``app`` cut down to the command or group that ``args`` starts with.

    typer turns the signature of every command into click parameters on each start (~20 ms
    for all of mloop's); ``mloop dataset list`` needs only the dataset group's. Anything else
    (no command, an option first, an unknown name) gets the whole app, so the help and the
    "no such command" errors are unchanged.
    """
    name = args[0] if args else ""
    groups = [g for g in app.registered_groups if g.name == name]
    commands = [c for c in app.registered_commands
                if (c.name or typer.main.get_command_name(getattr(c.callback, "__name__", ""))) == name]
    if not groups and not commands:
        return app
    pruned = copy.copy(app)  # keeps the root callback (--version), so it stays a group
    pruned.registered_groups, pruned.registered_commands = groups, commands
    return pruned


def main() -> None:
    """Entry point: one handler turns mloop errors into a message, a hint and an exit code."""
    try:
        # Without standalone mode click hands back the code of `raise typer.Exit(n)` instead of
        # exiting with it (commands return None otherwise).
        code = _app_for(sys.argv[1:])(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except StepFailed as exc:
        sys.exit(exc.exit_code)  # the run display already printed the failing step and its log
    except MloopError as exc:
        err.print(Text(f"error: {exc.message}", style="red"), highlight=False)
        if exc.hint:
            err.print(Text(f"hint: {exc.hint}", style="yellow"), highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors come through here too
        # Recent typer vendors click (typer._click) and no longer installs it, so
        # recognise a click exception by what it offers rather than importing click.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise


if __name__ == "__main__":
    main()
