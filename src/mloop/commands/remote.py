"""The CLI's run commands in client mode: the same output and exit codes, the work on the server."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from mloop.client import Client, RemoteRun, run_record, step_record, watch_remote
from mloop.commands._common import err, out

if TYPE_CHECKING:
    from mloop.store.base import RunRecord, StepRecord


def run(client: Client, spec: Any, values: dict[str, Any], steps: list[str] | None, *, quiet: bool,
        follow: bool, no_wait: bool, cache: bool = True) -> Any:
    """Release ``spec`` on the server, queue a run of it and watch it; the RunResult.
    ``cache=False`` (``--no-cache``): every job step runs, none reuses an earlier result."""
    from mloop.console import Watcher

    released = client.release(spec)
    if not quiet:
        err.print(f"released {released['workflow']} version {released['version']} on {client.url}", highlight=False)
    queued = client.submit(released["workflow"], released["version"], values, steps, cache=cache)
    if not cache and not (queued.get("origin") or {}).get("no_cache"):
        # A server older than "cache" in POST /runs ignores the field: say so rather than pretend.
        err.print(f"[yellow]warning:[/yellow] the server at {client.url} ignored --no-cache (upgrade it); "
                  "cached results may be reused", highlight=False)
    watcher = Watcher(out, quiet=quiet, follow_logs=False, print_id=True)
    if follow and not quiet:
        err.print("(-f: job logs stay on the server; `mloop logs RUN -f` streams them)", style="dim")
    if no_wait:
        return _until_waiting(client, queued, watcher)
    return watch_remote(client, queued, watcher)


def _until_waiting(client: Client, queued: dict[str, Any], watcher: Any) -> Any:
    remote = RemoteRun(client, queued["id"])

    def execute(listener: Any) -> Any:
        while client.run(queued["id"])["status"] not in ("succeeded", "failed", "stopped", "waiting_input"):
            time.sleep(0.3)
        return remote.result()

    return watcher(run_record(queued), execute)


def release(client: Client, spec: Any) -> None:
    released = client.release(spec)
    out.print(f"released [bold]{released['workflow']}[/bold] version {released['version']} "
              f"({released['spec_hash'][:12]}) on {client.url}", highlight=False)


def list_runs(client: Client, workflow: str | None, status: str | None, limit: int) -> list[Any]:
    params: dict[str, Any] = {"limit": limit}
    if workflow:
        params["workflow"] = workflow
    if status:
        params["status"] = status
    page = client.call("GET", "/runs", params=params)
    return [run_record(r) for r in page["runs"]]


def show(client: Client, run_id: str, as_json: bool) -> None:
    detail = client.run(run_id)
    if as_json:
        print(json.dumps(detail, indent=2))
        return
    r = run_record(detail)
    release = detail.get("release") or {}
    steps = [step_record(r, s) for s in detail["steps"]]
    # The server says each cache line with the same words as here (mloop.steps.caching.describe).
    print_run(r, steps, release.get("version"), release.get("spec_hash"), release.get("extend") or {},
              detail.get("event_count"), [(s["name"], s.get("cache")) for s in detail["steps"]])


def print_run(r: RunRecord, steps: list[StepRecord], version: int | None, spec_hash: str | None,
              extend: dict[str, Any], event_count: int | None, cache_lines: list[tuple[str, str | None]]) -> None:
    """What ``mloop show RUN`` prints, in both doors (the store here, or the server's API)."""
    from mloop.console import duration, status_text

    out.print(Text.assemble(("run ", ""), (r.id, "bold"), (f"  {r.workflow_name} #{r.number}  ", ""),
                            status_text(r.status), (f"  attempt {r.attempt}", "dim")), highlight=False)
    if r.message:
        out.print(f"  {r.message}", style="dim", highlight=False)
    if version is not None:
        origin = ""
        if extend.get("git_commit_id"):
            origin = f", git {extend['git_commit_id'][:12]}" + (f" on {extend['git_branch']}"
                                                                  if extend.get("git_branch") else "")
        out.print(f"release: version {version} of {r.workflow_name} ({(spec_hash or '')[:12]}{origin})",
                  highlight=False)
    if r.origin and set(r.origin) - {"no_cache"}:
        how = {k: v for k, v in r.origin.items() if k not in ("kind", "no_cache") and v not in (None, "")}
        out.print(f"started by: {r.origin.get('kind', '?')}" + (" (" + ", ".join(f"{k} {v}" for k, v in how.items())
                                                                + ")" if how else ""), highlight=False)
    if r.params:
        out.print("values: " + ", ".join(f"{k}={v!r}" for k, v in r.params.items()), highlight=False)
    if r.storages:
        out.print("storages: " + ", ".join(f"{k}={v}" for k, v in r.storages.items()), highlight=False)
    table = Table()
    for col in ("step", "type", "status", "attempt", "duration", "message"):
        table.add_column(col, overflow="fold", no_wrap=col != "message")
    for s in steps:
        took = duration(s.started_at.timestamp() if s.started_at else None,
                        s.finished_at.timestamp() if s.finished_at else None)
        table.add_row(s.name, s.type, status_text(s.status), str(s.attempt or ""), took,
                      Text(s.message or "", style="dim"))
    out.print(table)
    print_cache(cache_lines, bool((r.origin or {}).get("no_cache")))
    produced = [(s.name, k, v) for s in steps for k, v in s.outputs.items()]
    if produced:
        out.print("outputs:")
        for step_name, key, value in produced:
            out.print(f"  {step_name}.{key}: {output_text(value)}", highlight=False)
    if event_count is not None:
        out.print(f"{event_count} state changes; `mloop show {r.id[:12]} --json` for all of them", style="dim")


def output_text(value: Any) -> str:
    """One line for a step's output, whatever its kind (``--json`` has every field)."""
    if not isinstance(value, dict):
        return str(value)
    kind = value.get("type")
    if kind == "model":  # a ModelStep's registered version
        return f"model {value.get('name')}:{value.get('version')} (`mloop model show` for more)"
    if kind == "dataset":
        return (f"dataset {value.get('dataset_name')}:{value.get('version_name')} "
                f"({value.get('samples')} samples; `mloop dataset show` for more)")
    if kind == "service":
        return (f"service {value.get('service_name')} serving {value.get('model_name')}:"
                f"{value.get('model_version')} at {(value.get('variables') or {}).get('access_address')}")
    if kind == "label_task":
        labeled = f", labeled version {value.get('version_name')}" if value.get("version_name") else ""
        return f"labeling task {value.get('dataset_name')}:{value.get('task_name')}{labeled}"
    for field in ("url", "value"):
        if value.get(field) is not None:
            return str(value[field])
    return json.dumps(value, ensure_ascii=False)[:120]


def print_cache(lines: list[tuple[str, str | None]], no_cache: bool) -> None:
    """The cache section of ``mloop show``, in both doors: ``(step, line)`` per step, the line
    saying where its result came from or why it ran (None: caching does not concern it)."""
    shown = [(name, line) for name, line in lines if line]
    if shown:
        out.print("cache:" + (" off for this run (--no-cache)" if no_cache else ""), highlight=False)
        for name, line in shown:
            out.print(f"  {name}: {line}", highlight=False, overflow="fold")


def logs(client: Client, run_id: str, step: str | None, follow: bool) -> None:
    seen = 0
    params: dict[str, Any] = {"tail": 100_000}
    if step:
        params["step"] = step
    while True:
        lines = client.call("GET", f"/runs/{run_id}/logs", params=params)
        prefix = step is None and len({entry["step"] for entry in lines}) > 1
        for entry in lines[seen:]:
            print(f"[{entry['step']}] {entry['line']}" if prefix else entry["line"], flush=True)
        seen = len(lines)
        if not follow or client.run(run_id)["status"] in ("succeeded", "failed", "stopped"):
            if follow:  # what arrived between the last read and the end
                lines = client.call("GET", f"/runs/{run_id}/logs", params=params)
                for entry in lines[seen:]:
                    print(f"[{entry['step']}] {entry['line']}" if prefix else entry["line"], flush=True)
            return
        time.sleep(0.5)


def metrics(client: Client, run_id: str, step: str | None) -> list[dict[str, Any]]:
    params = {"step": step} if step else {}
    result: list[dict[str, Any]] = client.call("GET", f"/runs/{run_id}/metrics", params=params)
    return result


def stop(client: Client, run_id: str) -> None:
    r = client.call("POST", f"/runs/{run_id}/stop")
    out.print(f"run {r['id'][:12]} is {r['status']}")


def retry(client: Client, run_id: str, values: dict[str, Any] | None = None) -> Any:
    from mloop.console import Watcher

    queued = client.call("POST", f"/runs/{run_id}/retry", json={"values": values} if values else None)
    return watch_remote(client, queued, Watcher(out, note=" (retry, attempt {attempt})"))


def give_input(client: Client, run_id: str, given: dict[str, Any], quiet: bool) -> Any:
    from mloop.console import Watcher

    run = client.call("POST", f"/runs/{run_id}/input", json={"values": given})
    err.print(f"recorded {', '.join(given)} for run {run['id'][:12]}")
    return watch_remote(client, run, Watcher(out, quiet=quiet, note=", resumed", print_id=True))
