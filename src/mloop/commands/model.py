"""``mloop model ...``: The model registry: versions, aliases, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from mloop.commands._common import err, open_cli_backend, out, size as _size, when as _when

if TYPE_CHECKING:
    from mloop.store.registry import ModelVersionRecord

model_app = typer.Typer(no_args_is_help=True, help="The model registry: versions, aliases, export.")

_REF_HELP = "NAME (latest version), NAME:VERSION or NAME@alias"




def _metrics(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()))


def _source(rec: ModelVersionRecord) -> str:
    if not rec.run_id:
        return "registered by hand"
    return f"run {rec.run_id[:12]}" + (f" step {rec.step_name}" if rec.step_name else "")


def _dataset(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    name = value.get("name") or value.get("dataset") or "?"
    version = value.get("version")
    return f"{name}:{version}" if version is not None else str(name)


@model_app.command("list")
def model_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List registered models with their latest version and aliases."""
    from rich.table import Table

    from mloop.services.models import list_models

    with open_cli_backend() as backend:
        records = list_models(backend)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    if not records:
        out.print("no models registered yet: `mloop model register NAME --from DIR`, or a ModelStep in a workflow")
        return
    table = Table()
    for col in ("model", "latest", "versions", "aliases", "updated"):
        table.add_column(col)
    for r in records:
        table.add_row(r.name, r.latest_version or "", str(r.version_count),
                      ", ".join(f"{a}→{v}" for a, v in r.aliases.items()), _when(r.updated_at))
    out.print(table)


@model_app.command("versions")
def model_versions(name: str = typer.Argument(..., help="model name"),
                   as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List a model's versions, oldest first."""
    from rich.table import Table

    from mloop.services.models import list_model_versions

    with open_cli_backend() as backend:
        records = list_model_versions(backend, name)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    table = Table(title=f"model {name}")
    for col in ("version", "type", "aliases", "hash", "size", "made by", "metrics", "registered"):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row(r.version, r.model_type, ", ".join(r.aliases), r.content_hash[:12], _size(r.size), _source(r),
                      _metrics(r.metrics), _when(r.created_at))
    out.print(table if records else f"model {name} has no versions")


@model_app.command("show")
def model_show(ref: str = typer.Argument(..., help=_REF_HELP),
               as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show one version: type, content hash, the run and step that made it, dataset, metrics, aliases, files."""
    from mloop.services.models import get_model_version, model_files

    with open_cli_backend() as backend:
        rec = get_model_version(backend, ref)
        entries = model_files(backend, rec)
    if as_json:
        data = rec.model_dump(mode="json")
        data["files"] = [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries]
        print(json.dumps(data, indent=2))
        return
    rows = [
        ("model", f"{rec.name}:{rec.version}"),
        ("id", rec.model_id),
        ("type", rec.model_type),
        ("aliases", ", ".join(rec.aliases) or "-"),
        ("content hash", rec.content_hash),
        ("size", f"{_size(rec.size)} in {rec.file_count} file{'s' if rec.file_count != 1 else ''}"),
        ("stored at", rec.uri),
        ("made by", _source(rec)),
        ("dataset", _dataset(rec.dataset) or "-"),
        ("metrics", _metrics(rec.metrics) or "-"),
        ("runtime", rec.runtime or "-"),
        ("registered", _when(rec.created_at)),
    ]
    if rec.description:
        rows.append(("description", rec.description))
    if rec.layout:
        rows.append(("loads", ", ".join(f"{k}={v}" for k, v in rec.layout.items())))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.print(f"[bold]{key.ljust(width)}[/bold]  {value}", highlight=False)
    out.print("[bold]files[/bold]", highlight=False)
    for e in entries:
        out.print(f"  {e.path}  [dim]{_size(e.size)}  {e.sha256[:12]}[/dim]", highlight=False)


@model_app.command("register")
def model_register(
        name: str = typer.Argument(..., help="model name (a new name starts at version 1)"),
        source: str = typer.Option(..., "--from", help="the model folder"),
        model_type: Optional[str] = typer.Option(None, "--type", help="torchscript, pytorch_state_dict, sklearn, onnx, "
                                                 "custom, or a ModelArts name (PyTorch, Scikit_Learn, ONNX, Custom); "
                                                 "default: config.json's model_type, else detected from the files"),
        version: Optional[str] = typer.Option(None, "--version", help="explicit version (default: the next number)"),
        description: str = typer.Option("", "--description"),
        metric: Optional[list[str]] = typer.Option(None, "--metric", help="float metric KEY=VALUE (repeatable)"),
) -> None:
    """Register a model folder as the next version of NAME."""
    from mloop.errors import ModelError
    from mloop.services.models import register_model

    metrics: dict[str, float] = {}
    for item in metric or []:
        key, sep, value = item.partition("=")
        try:
            metrics[key.strip()] = float(value)
        except ValueError:
            raise ModelError(f"--metric {item!r} is not KEY=NUMBER", hint="e.g. --metric accuracy=0.97") from None
        if not sep or not key.strip():
            raise ModelError(f"--metric {item!r} is not KEY=NUMBER", hint="e.g. --metric accuracy=0.97")
    with open_cli_backend() as backend, err.status(f"registering {source} ..."):
        rec = register_model(backend, name, source, model_type=model_type, version=version, metrics=metrics,
                             description=description)
    out.print(f"registered [bold]{rec.name}:{rec.version}[/bold] ({rec.model_type}, {rec.file_count} files, "
              f"{_size(rec.size)}, hash {rec.content_hash[:12]})", highlight=False)


@model_app.command("export")
def model_export(ref: str = typer.Argument(..., help=_REF_HELP),
                 dest: Path = typer.Argument(..., help="a new (or empty) folder to copy the files into")) -> None:
    """Copy a version's files into a folder, byte for byte."""
    from mloop.services.models import export_model, get_model_version

    with open_cli_backend() as backend:
        rec = get_model_version(backend, ref)
        target = export_model(backend, f"{rec.name}:{rec.version}", dest)
    out.print(f"exported [bold]{rec.name}:{rec.version}[/bold] ({rec.file_count} files) to {target}", highlight=False)


@model_app.command("alias")
def model_alias(name: str = typer.Argument(..., help="model name"),
                alias: str = typer.Argument(..., help="alias, e.g. production"),
                version: Optional[str] = typer.Argument(None, help="the version it should point at"),
                delete: bool = typer.Option(False, "--delete", help="remove the alias")) -> None:
    """Point an alias (e.g. production) at a version, or remove it with --delete. Services
    deployed from NAME@ALIAS switch to the version (no failed requests)."""
    from mloop.errors import ModelError
    from mloop.services.models import delete_alias, move_alias

    if delete == (version is not None):
        raise ModelError("give either a VERSION or --delete",
                         hint=f"mloop model alias {name} {alias} VERSION, or mloop model alias {name} {alias} --delete")
    with open_cli_backend() as backend:
        if delete:
            delete_alias(backend, name, alias)
            out.print(f"removed alias [bold]{alias}[/bold] of model {name}", highlight=False)
            return
        assert version is not None
        rec, followers = move_alias(backend, name, alias, version)
    out.print(f"[bold]{name}@{alias}[/bold] now points at version {rec.version}", highlight=False)
    failed = [f for f in followers if f.error]
    for f in followers:
        if f.error:
            err.print(f"service {f.service}: {f.error}", style="red", highlight=False, markup=False)
        else:
            out.print(f"service {f.service} now serves {f.model_ref}", highlight=False)
    if failed:
        raise typer.Exit(1)
