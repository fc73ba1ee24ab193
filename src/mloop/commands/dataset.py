"""``mloop dataset ...``: versioned datasets: create, import, versions, diff, export, release, verify."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from mloop.commands._common import err, open_cli_backend, out, size as _size, when as _when

if TYPE_CHECKING:
    from mloop.services.datasets import Progress
    from mloop.store.datasets import DatasetVersionRecord

dataset_app = typer.Typer(no_args_is_help=True,
                          help="Versioned datasets: create, import, versions, diff, export, release.")

_FORMAT_HELP = ("import format: folder (one sub-folder per class), image-txt, manifest, yolo, voc, text, "
                "or an AnnotationFormatEnum value")
# The options `dataset create` and `dataset import` share.
_SOURCE = typer.Option(..., "--from", help="folder (or manifest/text file) to import")
_FORMAT = typer.Option("folder", "--format", help=_FORMAT_HELP)
_CLASSES = typer.Option(None, "--classes", help="declared classes, comma separated")
_CLEAN = typer.Option(False, "--clean", help="leave corrupt images and bad annotations out (with a report) "
                      "instead of failing")
#: Below this many files to store, no progress bar: the summary line is enough.
_BAR_FROM = 200




def _classes(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    return [c.strip() for c in value.split(",") if c.strip()]


@contextmanager
def _progress() -> Iterator[Progress]:
    """A rich progress bar per phase, shown once a phase has enough files to be worth one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

    bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
              console=err, transient=True)
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int) -> None:
        if total < _BAR_FROM:
            return
        if phase not in tasks:
            if not tasks:
                bar.start()
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()


def _summary(record: DatasetVersionRecord, verb: str) -> None:
    stats = record.stats
    out.print(f"[green]{verb}[/green] [bold]{record.dataset_name}:{record.version}[/bold]: "
              f"{record.sample_count} samples, {record.file_count} files ({_size(record.total_bytes)}), "
              f"{len(record.classes)} classes", highlight=False)
    if "files" in stats:
        out.print(f"  read {stats['read']} files ({stats['cache_hits']} unchanged, not re-read); stored "
                  f"{stats['stored_objects']} new objects ({_size(stats['stored_bytes'])}) in {stats['seconds']:.2f} s",
                  highlight=False)
    _report_problems(stats)


def _report_problems(stats: dict[str, Any]) -> None:
    problems = stats.get("problems") or []
    count = stats.get("problem_count", len(problems))
    if not count:
        return
    err.print(f"[yellow]left out {count} file(s) (data cleaning is on):[/yellow]")
    for p in problems[:20]:
        err.print(f"  - {p['path']}: {p['reason']}", highlight=False)
    if count > 20:
        err.print(f"  ... and {count - 20} more (mloop dataset show NAME:VERSION --json lists them)")


@dataset_app.command("create")
def dataset_create(name: str = typer.Argument(..., help="dataset name (letters, digits, '_', '-'; 1-100)"),
                   source: str = _SOURCE, format: str = _FORMAT, classes: Optional[str] = _CLASSES,
                   clean: bool = _CLEAN,
                   description: str = typer.Option("", "--description", help="what the dataset holds")) -> None:
    """Make version v1 of a new dataset from a folder."""
    from mloop.services.datasets import create_dataset

    with open_cli_backend() as backend, _progress() as progress:
        record = create_dataset(backend, name, source, format=format, classes=_classes(classes), clean=clean,
                                description=description, progress=progress)
    _summary(record, "created")


@dataset_app.command("import")
def dataset_import(name: str = typer.Argument(..., help="dataset name"),
                   source: str = _SOURCE, format: str = _FORMAT, classes: Optional[str] = _CLASSES,
                   clean: bool = _CLEAN,
                   create: bool = typer.Option(False, "--create", help="create the dataset if it doesn't exist"),
                   replace: bool = typer.Option(False, "--replace", help="the new version is exactly the folder "
                                                "(what is no longer there is removed), as `dvc add` does")) -> None:
    """Make the next version: the latest plus what the folder adds or changes."""
    from mloop.services.datasets import import_data

    with open_cli_backend() as backend, _progress() as progress:
        record = import_data(backend, name, source, format=format, classes=_classes(classes), clean=clean,
                             create=create, replace=replace, progress=progress)
    if record.stats.get("unchanged"):
        out.print(f"no changes: [bold]{record.dataset_name}:{record.version}[/bold] already holds this data "
                  f"({record.stats['files']} files checked in {record.stats['seconds']:.2f} s, "
                  f"{record.stats['read']} re-read)", highlight=False)
        _report_problems(record.stats)
        return
    _summary(record, "imported")


@dataset_app.command("versions")
def dataset_versions(name: str = typer.Argument(..., help="dataset name"),
                     as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List a dataset's versions, oldest first."""
    from rich.table import Table

    from mloop.services.datasets import list_versions

    with open_cli_backend() as backend:
        records = list_versions(backend, name)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2, ensure_ascii=False))
        return
    table = Table()
    for col in ("version", "parent", "samples", "files", "size", "classes", "release", "created"):
        table.add_column(col, no_wrap=col not in ("release",))
    for r in records:
        release = f"{r.release['ratio']:g} of {r.release['of']}, seed {r.release['seed']}" if r.release else ""
        table.add_row(r.version, r.parent or "", str(r.sample_count), str(r.file_count), _size(r.total_bytes),
                      str(len(r.classes)), release, _when(r.created_at))
    out.print(table)


@dataset_app.command("list")
def dataset_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List datasets with their latest version."""
    from rich.table import Table

    from mloop.services.datasets import list_datasets

    with open_cli_backend() as backend:
        records = list_datasets(backend)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2, ensure_ascii=False))
        return
    if not records:
        out.print("no datasets yet: `mloop dataset create NAME --from FOLDER`")
        return
    table = Table()
    for col in ("dataset", "latest", "versions", "created", "description"):
        table.add_column(col)
    for r in records:
        table.add_row(r.name, r.latest_version or "", str(r.version_count), _when(r.created_at), r.description)
    out.print(table)


@dataset_app.command("show")
def dataset_show(ref: str = typer.Argument(..., help="NAME (latest version) or NAME:VERSION"),
                 as_json: bool = typer.Option(False, "--json", help="print JSON (the version row)"),
                 samples: int = typer.Option(0, "--samples", help="also list this many samples")) -> None:
    """Show one version: counts, classes with their sample counts, release split."""
    from collections import Counter

    from mloop.services.datasets import get_version, load_manifest, parse_ref

    name, version = parse_ref(ref)
    with open_cli_backend() as backend:
        record = get_version(backend, name, version)
        manifest = load_manifest(backend, record)
    if as_json:
        print(json.dumps(record.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    out.print(f"[bold]{record.dataset_name}:{record.version}[/bold]  format {record.format!r}, "
              f"parent {record.parent or '-'}, created {_when(record.created_at)}", highlight=False)
    out.print(f"  {record.sample_count} samples, {record.file_count} files, {_size(record.total_bytes)}, "
              f"manifest {record.manifest_hash[:16]}", highlight=False)
    if record.release:
        r = record.release
        out.print(f"  release of {r['of']}: ratio {r['ratio']:g}, seed {r['seed']}: "
                  f"{r['train']} train / {r['eval']} eval", highlight=False)
    per_label = Counter(label for s in manifest.samples for label in s.labels)
    unlabeled = sum(1 for s in manifest.samples if not s.labels)
    shown = ", ".join(f"{c} ({per_label.get(c, 0)})" for c in manifest.classes)
    out.print(f"  classes: {shown or 'none'}" + (f"; unlabeled: {unlabeled}" if unlabeled else ""), highlight=False)
    if record.description:
        out.print(f"  {record.description}", highlight=False)
    for s in manifest.samples[:samples]:
        extra = f" ({s.split})" if s.split else ""
        out.print(f"  {s.id}: {', '.join(s.labels) or '(unlabeled)'}{extra}", highlight=False, markup=False)


@dataset_app.command("diff")
def dataset_diff(name: str = typer.Argument(..., help="dataset name"),
                 a: str = typer.Argument(..., help="older version, e.g. v1"),
                 b: str = typer.Argument(..., help="newer version, e.g. v2"),
                 as_json: bool = typer.Option(False, "--json", help="print JSON"),
                 limit: int = typer.Option(20, "-n", "--limit", help="sample ids listed per kind of change")) -> None:
    """Samples added, removed, changed and relabeled between two versions."""
    from mloop.services.datasets import diff_versions

    with open_cli_backend() as backend:
        diff = diff_versions(backend, name, a, b)
    if as_json:
        print(json.dumps(diff.to_dict(), indent=2, ensure_ascii=False))
        return
    out.print(f"[bold]{name}[/bold] {diff.a} → {diff.b}: {len(diff.added)} added, {len(diff.removed)} removed, "
              f"{len(diff.changed)} changed, {len(diff.label_changes)} relabeled samples "
              f"(files: +{diff.files_added} -{diff.files_removed} ~{diff.files_changed})", highlight=False)
    for mark, style, ids in (("+", "green", diff.added), ("-", "red", diff.removed), ("~", "yellow", diff.changed)):
        for sid in ids[:limit]:
            out.print(f"  [{style}]{mark} {sid}[/{style}]", highlight=False)
        if len(ids) > limit:
            out.print(f"  {mark} ... and {len(ids) - limit} more", highlight=False)
    for change in diff.label_changes[:limit]:
        out.print(f"  [cyan]label {change.id}: {', '.join(change.before) or '-'} → "
                  f"{', '.join(change.after) or '-'}[/cyan]", highlight=False)
    if len(diff.label_changes) > limit:
        out.print(f"  label ... and {len(diff.label_changes) - limit} more", highlight=False)


@dataset_app.command("export")
def dataset_export(ref: str = typer.Argument(..., help="NAME:VERSION (NAME alone: the latest)"),
                   dest: str = typer.Argument(..., help="a new or empty folder"),
                   layout: bool = typer.Option(False, "--layout", help="write the job layout instead "
                                               "(train/<label>/..., eval/<label>/..., manifest.json)")) -> None:
    """Write a version's files into a folder, byte for byte as they were imported."""
    from mloop.services.datasets import export_version, get_version, materialize, parse_ref

    name, version = parse_ref(ref)
    with open_cli_backend() as backend, _progress() as progress:
        record = get_version(backend, name, version)
        write = materialize if layout else export_version
        path = write(backend, name, record.version, dest, progress=progress)
    out.print(f"[green]exported[/green] {record.dataset_name}:{record.version} ({record.file_count} files, "
              f"{_size(record.total_bytes)}) to {path}", highlight=False)


@dataset_app.command("verify")
def dataset_verify(ref: str = typer.Argument(..., help="NAME:VERSION (NAME alone: the latest)"),
                   every: bool = typer.Option(False, "--all", help="verify every version of NAME"),
                   as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Hash every stored file of a version in full; list damaged ones (exit 1 if any)."""
    from mloop.services.datasets import list_versions, parse_ref, verify_version

    name, version = parse_ref(ref)
    with open_cli_backend() as backend, _progress() as progress:
        versions = [r.version for r in list_versions(backend, name)] if every else [version]
        reports = [verify_version(backend, name, v, progress=progress) for v in versions]
    damaged = sum(len(r.damaged) for r in reports)
    if as_json:
        print(json.dumps([r.to_dict() for r in reports], indent=2, ensure_ascii=False))
    else:
        for r in reports:
            if not r.damaged:
                out.print(f"[green]ok[/green] {r.dataset}:{r.version}: {r.files} files, {_size(r.bytes)} verified",
                          highlight=False)
                continue
            out.print(f"[red]damaged[/red] {r.dataset}:{r.version}: {len(r.damaged)} of {r.files} files",
                      highlight=False)
            for d in r.damaged:
                out.print(f"  {d.path}  {d.hash[:12]}  {d.problem}", highlight=False)
    if damaged:
        err.print("[red]damaged files are refused by export and job staging[/red]; restore the artifact store "
                  "from a backup, or import those files again", highlight=False)
        sys.exit(1)  # not typer.Exit: cli.main runs click with standalone_mode=False, which swallows its code


@dataset_app.command("release")
def dataset_release(ref: str = typer.Argument(..., help="NAME[:VERSION] to release (default: the latest)"),
                    split: float = typer.Option(0.8, "--split", help="share of each label's samples for training, "
                                                "in (0, 1)"),
                    seed: int = typer.Option(0, "--seed", help="seed of the deterministic split"),
                    version_name: Optional[str] = typer.Option(None, "--version-name",
                                                               help="name of the release (default v<next>)"),
                    description: str = typer.Option("", "--description", help="what this release is for")) -> None:
    """Make a new version carrying a train/eval split (deterministic, stratified by label)."""
    from mloop.services.datasets import parse_ref, release_version

    name, version = parse_ref(ref)
    with open_cli_backend() as backend:
        record = release_version(backend, name, version, ratio=split, seed=seed, version_name=version_name,
                                 description=description)
    r = record.release or {}
    out.print(f"[green]released[/green] [bold]{record.dataset_name}:{record.version}[/bold] from {r.get('of')}: "
              f"{r.get('train')} train / {r.get('eval')} eval (ratio {split:g}, seed {seed})", highlight=False)
