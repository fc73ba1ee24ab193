"""``mloop service ...``: Managed inference services: deploy, list, show, logs, predict, stop, start."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from mloop.commands._common import err, open_cli_backend, out

if TYPE_CHECKING:
    from mloop.store.services import ServiceRecord

service_app = typer.Typer(no_args_is_help=True,
                          help="Managed inference services: deploy, list, show, logs, predict, stop, start.")


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


_STATUS_STYLE = {"running": "green", "deploying": "yellow", "failed": "red", "stopped": "dim"}


def _status(rec: ServiceRecord) -> str:
    return f"[{_STATUS_STYLE.get(rec.status, '')}]{rec.status}[/]"


def _dump(rec: ServiceRecord) -> dict[str, Any]:
    data = rec.model_dump(mode="json")
    data.pop("token", None)  # the control token is for the deployer only
    return data


@service_app.command("deploy")
def service_deploy(
    name: str = typer.Argument(..., help="service name (created on first deploy)"),
    model: str = typer.Argument(..., help="NAME (latest version), NAME:VERSION or NAME@alias"),
    port: Optional[int] = typer.Option(None, "--port", help="port of a new service (default: a free one)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address a new service listens on"),
    max_batch_size: Optional[int] = typer.Option(None, "--max-batch-size", help="dynamic batching: largest batch"),
    max_wait_ms: Optional[float] = typer.Option(None, "--max-wait-ms", help="dynamic batching: longest wait"),
    no_batching: bool = typer.Option(False, "--no-batching", help="one forward pass per request"),
    inference_timeout: Optional[float] = typer.Option(
        None, "--inference-timeout", min=0.0,
        help="seconds a prediction may take before it is answered 504 (default 60; 0: no limit); a worker "
             "stuck in a call past it is replaced"),
    max_memory_mb: Optional[float] = typer.Option(
        None, "--max-memory-mb", min=1.0, help="replace a worker whose memory (RSS) grows past this many MB"),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE for the worker (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Deploy a model version: a new service, or a switch of NAME to it with no dropped requests."""
    from rich.status import Status

    from mloop.services.serving import deploy

    envs = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
        envs[key] = value
    with open_cli_backend() as backend:
        with Status(f"deploying {model} to {name} ...", console=err):
            rec = deploy(backend, name, model, port=port, host=host, max_batch_size=max_batch_size,
                         max_wait_ms=max_wait_ms, batching=not no_batching, envs=envs or None,
                         inference_timeout=inference_timeout, max_memory_mb=max_memory_mb)
    if as_json:
        print(json.dumps(_dump(rec), indent=2))
        return
    out.print(f"{rec.name}: {rec.model_ref} is live at {rec.url}")


@service_app.command("list")
def service_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List services: status, the version served, URL."""
    from rich.table import Table

    from mloop.services.serving import list_services

    with open_cli_backend() as backend:
        records = list_services(backend)
    if as_json:
        print(json.dumps([_dump(r) for r in records], indent=2))
        return
    if not records:
        out.print("no services yet: `mloop service deploy NAME MODEL`, or a ServiceStep in a workflow")
        return
    from rich.markup import escape

    from mloop.tables import fit_table, short_when

    table = Table()
    for col in ("service", "status", "model", "url", "updated"):
        table.add_column(col)
    for r in records:
        restarts = f" ({r.restarts} restart{'s' if r.restarts != 1 else ''})" if r.restarts else ""
        table.add_row(r.name, _status(r) + restarts, r.model_ref or "", r.url or "", short_when(r.updated_at))
    # Name, model and URL whole on one line at any width (they are copied); the rest gives way,
    # and where even they don't fit side by side, each service gets a few lines of its own.
    if fit_table(table, ("status", "updated")):
        out.print(table)
        return
    for r in records:
        restarts = f" ({r.restarts} restart{'s' if r.restarts != 1 else ''})" if r.restarts else ""
        out.print(f"[bold]{escape(r.name)}[/bold]  {_status(r)}{restarts}  updated {short_when(r.updated_at)}",
                  highlight=False, soft_wrap=False, overflow="ignore", crop=False)
        out.print(f"  model  {escape(r.model_ref or '')}", highlight=False, crop=False, overflow="ignore")
        out.print(f"  url    {escape(r.url or '')}", highlight=False, crop=False, overflow="ignore")


@service_app.command("show")
def service_show(name: str = typer.Argument(..., help="service name"),
                 as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show a service: status, version, processes, recent deployments."""
    from mloop.services.serving import get_service, list_deployments

    with open_cli_backend() as backend:
        rec = get_service(backend, name)
        deployments = list_deployments(backend, name, limit=10)
    if as_json:
        print(json.dumps({**_dump(rec), "deployments": [d.model_dump(mode="json") for d in deployments]}, indent=2))
        return
    rows = [("service", f"{rec.name} ({rec.id})"), ("status", _status(rec)), ("message", rec.message or ""),
            ("serving", rec.model_ref or ""), ("url", rec.url or ""),
            ("predict", f"POST {rec.url}/predict" if rec.url else ""),
            ("supervisor pid", str(rec.supervisor_pid or "")), ("worker pid", str(rec.worker_pid or "")),
            ("restarts", str(rec.restarts)), ("stops at", _when(rec.stop_at)), ("log", rec.log_path),
            ("deployed by", f"run {rec.run_id[:12]} step {rec.step_name}" if rec.run_id else ""),
            ("updated", _when(rec.updated_at))]
    for key, value in rows:
        if value:
            out.print(f"[bold]{key:>15}[/]  {value}")
    if deployments:
        out.print("\n[bold]deployments[/] (newest first)")
        for d in deployments:
            line = f"  {_when(d.created_at)}  {d.model_name}:{d.model_version}  {d.status}"
            if d.message:
                line += f"  {d.message.splitlines()[0]}"
            out.print(line, markup=False)


@service_app.command("logs")
def service_logs_cmd(name: str = typer.Argument(..., help="service name"),
                     follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
                     tail: int = typer.Option(200, "--tail", "-n",
                                              help="lines from the end (0: none, -1: all)")) -> None:
    """Print the service log (the supervisor's and every worker's lines)."""
    from mloop.services.serving import service_logs

    with open_cli_backend() as backend:
        lines = service_logs(backend, name, tail=None if tail < 0 else tail, follow=follow)
        try:
            for line in lines:
                print(line, flush=True)
        except KeyboardInterrupt:
            pass


@service_app.command("stop")
def service_stop(name: Optional[str] = typer.Argument(None, help="service name"),
                 all_: bool = typer.Option(False, "--all", help="stop every running service"),
                 timeout: float = typer.Option(60.0, "--timeout", help="seconds in-flight requests get")) -> None:
    """Stop a service (or --all): in-flight requests finish, the processes end, the port is released."""
    from mloop.services.serving import list_services, stop_service

    if (name is None) == (not all_):
        raise typer.BadParameter("give a service NAME or --all (one of them)")
    with open_cli_backend() as backend:
        if all_:
            names = [s.name for s in list_services(backend) if s.status in ("running", "deploying")]
            if not names:
                err.print("no service is running")
        else:
            names = [name]
        for each in names:
            rec = stop_service(backend, each, timeout=timeout)
            out.print(f"{rec.name}: {rec.status}" + (f" ({rec.message})" if rec.message else ""))


@service_app.command("start")
def service_start(name: str = typer.Argument(..., help="service name")) -> None:
    """Start a stopped or failed service again, on its port, with the version it served."""
    from rich.status import Status

    from mloop.services.serving import start_service

    with open_cli_backend() as backend:
        with Status(f"starting {name} ...", console=err):
            rec = start_service(backend, name)
    out.print(f"{rec.name}: {rec.model_ref} is live at {rec.url}")


@service_app.command("predict")
def service_predict(
    name: str = typer.Argument(..., help="service name"),
    json_body: Optional[str] = typer.Option(None, "--json", help='JSON body, e.g. \'{"inputs": [[0.1, 0.2]]}\''),
    file: Optional[Path] = typer.Option(None, "--file", help="a file (an image) sent as multipart field 'file'"),
) -> None:
    """Call a service with a JSON body or a file, and print its JSON answer."""
    from mloop.services.serving import predict

    if (json_body is None) == (file is None):
        raise typer.BadParameter("give exactly one of --json and --file")
    payload = None
    if json_body is not None:
        try:
            payload = json.loads(json_body)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--json") from exc
    with open_cli_backend() as backend:
        answer = predict(backend, name, payload, file=file)
    print(json.dumps(answer, indent=2))
