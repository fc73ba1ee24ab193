"""``mloop label ...``: labeling tasks: create, list, status, import, export, complete."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

import typer

from mloop.commands._common import err, open_cli_backend, out

if TYPE_CHECKING:
    from mloop.context import Context
    from mloop.services.labels import TaskStatus
    from mloop.store.base import RunRecord
    from mloop.store.labels import LabelTaskRecord

label_app = typer.Typer(no_args_is_help=True,
                        help="Labeling tasks over dataset versions: create, list, status, import, export, complete.")

_DATASET = typer.Option(None, "--dataset", "-d", help="the task's dataset (when two datasets have tasks of that name)")

_IMPORT_HELP = """Add labels to TASK from FILE (nothing is recorded if any entry is refused).

\b
Formats (from the extension, or --format):
CSV (.csv, .tsv): sample_id,label per row; the header row is optional.
  With a header, the sample_id (or id) and label columns are read, and
  a 'labels' column takes several labels separated by ';'; other
  columns are ignored. Without one, the first column is the sample id
  and each further cell a label. Rows of one sample add up.
JSON (.json): {"sample_id": ["cat"], "other": "dog"}, {"labels": {...}}
  or [{"sample_id": "...", "labels": ["cat"]}, ...]
JSON lines (.jsonl): one {"sample_id": "...", "labels": [...]} per line

Entries with a blank label are skipped, so a partly filled template from
`mloop label export` imports as is.

With --complete the task is then completed (a new, labeled dataset
version) and runs waiting on it with no live engine are resumed here."""


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(round(width * done / total)) if total else width
    return "█" * filled + "░" * (width - filled)


def _print_status(status: TaskStatus) -> None:
    task = status.task
    pct = 100.0 * status.labeled / status.total if status.total else 100.0
    state = "[green]completed[/green]" if task.status == "completed" else "[yellow]in progress[/yellow]"
    out.print(f"[bold]{task.name}[/bold] · {task.dataset_name}:{task.base_version} · "
              f"{task.task_type.lower()} · {state}", highlight=False)
    out.print(f"  {_bar(status.labeled, status.total)} {status.labeled}/{status.total} labeled ({pct:.0f}%), "
              f"{status.remaining} to go", highlight=False)
    width = max((len(x) for x in status.by_label), default=0)
    for label, n in status.by_label.items():
        mark = "" if label in task.label_names else "  (not in the task's label set: from the dataset)"
        out.print(f"  {label:<{width}}  {_bar(n, status.total, 20)} {n}{mark}", highlight=False)
    for label in task.label_names:
        if label not in status.by_label:
            out.print(f"  {label:<{width}}  {_bar(0, status.total, 20)} 0", highlight=False)
    if status.annotators:
        who = ", ".join(f"{k} ({v})" for k, v in sorted(status.annotators.items()))
        out.print(f"  labeled in this task: {status.labeled_in_task} samples, by {who}", highlight=False)
    if task.output_version:
        out.print(f"  labeled version: [bold]{task.dataset_name}:{task.output_version}[/bold]", highlight=False)
    if task.run_id:
        out.print(f"  created by run {task.run_id[:12]}, step {task.step_name}", highlight=False)


def _resume_waiting(backend: Context, task: LabelTaskRecord, *, no_resume: bool,
                    waiting: list[RunRecord] | None = None) -> None:
    """Resume, here, the runs that wait on ``task`` with no engine; a live engine goes on by itself.

    ``waiting``: the runs that waited on the task *before* it changed (a live engine may
    pick the change up, and stop waiting, before this looks).
    """
    from mloop.services.labels import runs_waiting_on
    from mloop.runs import raise_for_result, resumable, resume_and_run

    runs = waiting if waiting is not None else runs_waiting_on(backend, task)
    detached = [r for r in runs if resumable(backend, r)]
    live = [r for r in runs if r not in detached]
    for run in live:
        err.print(f"run {run.id[:12]} ({run.workflow_name}) goes on by itself: its engine is running", highlight=False)
    if not detached:
        return
    if no_resume:
        for run in detached:
            err.print(f"run {run.id[:12]} waits on this task: `mloop resume {run.id[:12]}` continues it",
                      highlight=False)
        return
    from mloop.console import Watcher

    for run in detached:
        err.print(f"resuming run {run.id[:12]} ({run.workflow_name}), which waited on this task", highlight=False)
        raise_for_result(resume_and_run(backend, run.id, watch=Watcher(out, note=", resumed")))


@label_app.command("create")
def create(dataset: str = typer.Argument(..., help="DATASET[:VERSION] to label (default: the latest version)"),
           name: str = typer.Option(..., "--name", "-n", help="the task's name (unique in the dataset)"),
           task_type: str = typer.Option("image_classification", "--type", "-t",
                                         help="image_classification, text_classification or audio_classification"),
           labels: Optional[str] = typer.Option(None, "--labels", "-l",
                                                help="the label set, comma separated (default: the version's classes)"),
           description: str = typer.Option("", "--description")) -> None:
    """Create a labeling task over a dataset version."""
    from mloop.services.datasets import parse_ref
    from mloop.services.labels import create_task, task_status

    ds, version = parse_ref(dataset)
    chosen = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    with open_cli_backend() as backend:
        task = create_task(backend, ds, version, name, task_type, chosen, description=description)
        out.print(f"[green]created[/green] labeling task [bold]{task.name}[/bold] over {task.dataset_name}:"
                  f"{task.base_version} (labels: {', '.join(task.label_names)})", highlight=False)
        _print_status(task_status(backend, task))
        out.print(f"next: `mloop label export {task.name} todo.csv`, fill in the labels, then "
                  f"`mloop label import {task.name} todo.csv --complete`", style="dim", highlight=False)


@label_app.command("list")
def list_(dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="only this dataset's tasks"),
          status: Optional[str] = typer.Option(None, "--status", help="in_progress or completed"),
          as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List labeling tasks with their progress."""
    from rich.table import Table

    from mloop.services.labels import list_tasks

    with open_cli_backend() as backend:
        tasks = list_tasks(backend, dataset, status)
    if as_json:
        out.print_json(json.dumps([t.model_dump(mode="json") for t in tasks]))
        return
    if not tasks:
        out.print("no labeling tasks yet (mloop label create DATASET --name TASK --labels a,b)")
        return
    table = Table("task", "dataset", "base", "type", "status", "labeled", "output")
    for t in tasks:
        table.add_row(t.name, t.dataset_name, t.base_version, t.task_type.lower(), t.status.replace("_", " "),
                      f"{t.labeled_count}/{t.sample_count}", t.output_version or "")
    out.print(table)


@label_app.command("status")
def status(task: str = typer.Argument(..., help="the task's name"), dataset: Optional[str] = _DATASET,
           as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """A task's progress: labeled/total, and samples per label."""
    from mloop.services.labels import task_status

    with open_cli_backend() as backend:
        st = task_status(backend, task, dataset)
    if as_json:
        out.print_json(json.dumps(st.to_dict()))
        return
    _print_status(st)


@label_app.command("import", help=_IMPORT_HELP)
def import_(task: str = typer.Argument(..., help="the task's name"),
            file: str = typer.Argument(..., help="a .csv, .json or .jsonl file of labels"),
            dataset: Optional[str] = _DATASET,
            format: Optional[str] = typer.Option(None, "--format", "-f", help="csv, json or jsonl (default: from the "
                                                                              "extension)"),
            complete: bool = typer.Option(False, "--complete", help="complete the task afterwards"),
            allow_partial: bool = typer.Option(False, "--allow-partial",
                                               help="with --complete: leave samples without a label unlabeled"),
            annotator: Optional[str] = typer.Option(None, "--annotator", help="who labeled (default: your user name)"),
            no_resume: bool = typer.Option(False, "--no-resume", help="don't resume runs waiting on the task")) -> None:
    from mloop.services.labels import get_task, import_labels, task_status

    with open_cli_backend() as backend:
        record = get_task(backend, task, dataset)
        result = import_labels(backend, record, file, format=format, annotator=annotator)
        blank = f" ({result.blank} left blank)" if result.blank else ""
        out.print(f"[green]recorded[/green] labels for {result.accepted} samples of task "
                  f"[bold]{record.name}[/bold]{blank}", highlight=False)
        if complete:
            _complete(backend, record, allow_partial=allow_partial, no_resume=no_resume)
        else:
            _print_status(task_status(backend, record))


def _complete(backend: Context, task: LabelTaskRecord, *, allow_partial: bool, no_resume: bool) -> None:
    from mloop.services.labels import complete_task, runs_waiting_on

    was = task.status
    waiting = runs_waiting_on(backend, task)  # before: a live engine stops waiting at once
    done = complete_task(backend, task, allow_partial=allow_partial)
    again = " (it was already completed)" if was == "completed" else ""
    out.print(f"[green]completed[/green] task [bold]{done.name}[/bold]{again}: labeled version "
              f"[bold]{done.dataset_name}:{done.output_version}[/bold]", highlight=False)
    _resume_waiting(backend, done, no_resume=no_resume, waiting=waiting)


@label_app.command("export")
def export(task: str = typer.Argument(..., help="the task's name"),
           file: str = typer.Argument(..., help="where to write: .csv, .json or .jsonl"),
           dataset: Optional[str] = _DATASET,
           format: Optional[str] = typer.Option(None, "--format", "-f", help="csv, json or jsonl"),
           all_samples: bool = typer.Option(False, "--all", help="list every sample, not only those still to label")
           ) -> None:
    """Write the samples still to label as a file to fill in (then `mloop label import`)."""
    from mloop.services.labels import export_template, get_task

    with open_cli_backend() as backend:
        record = get_task(backend, task, dataset)
        n = export_template(backend, record, file, format=format, include_labeled=all_samples)
    out.print(f"wrote {n} samples to {file}: fill in the label column, then "
              f"`mloop label import {record.name} {file} --complete`", highlight=False)


@label_app.command("complete")
def complete(task: str = typer.Argument(..., help="the task's name"), dataset: Optional[str] = _DATASET,
             allow_partial: bool = typer.Option(False, "--allow-partial",
                                                help="complete even if samples have no label (they stay unlabeled)"),
             no_resume: bool = typer.Option(False, "--no-resume", help="don't resume runs waiting on the task")) -> None:
    """Complete a task: make the labeled dataset version; runs waiting on it go on."""
    from mloop.services.labels import get_task

    with open_cli_backend() as backend:
        _complete(backend, get_task(backend, task, dataset), allow_partial=allow_partial, no_resume=no_resume)
