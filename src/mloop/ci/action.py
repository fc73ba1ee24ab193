"""``python -m mloop.ci.action``: what the GitHub Action runs once mloop is installed.

It reads the action's inputs (``INPUT_WORKFLOW``, ``INPUT_PARAMETERS``, ``INPUT_SERVER_URL``,
``INPUT_TOKEN``, ``INPUT_WAIT``) and runs the workflow the way ``mloop run FILE -p k=v`` does:
here, through the run service (embedded: SQLite and artifacts under ``.mloop/`` in the
workspace), or, with a server URL and token, on that server through its client (the code is
uploaded, the run queued there, and followed until it ends when ``wait`` is true). Then it
appends the job summary (steps, states, durations, metrics, dataset and model versions, the
service URL, a console link) and the step outputs (``run-id``, ``status``, ``model-version``,
``service-url``, ``console-url``), and exits like ``mloop run``: 0 when the run succeeded (or,
not waiting, was queued or waits for input), 1 when it failed or was stopped, the error's
exit code when it could not start (a bad parameter: 2).

Everything a user typed reaches this module as environment variables, never as script text,
and leaves it escaped: summary cells as Markdown, annotations as workflow-command data, and
the run's own output between ``::stop-commands::`` markers.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from mloop.ci.github import Runner
from mloop.ci.report import TERMINAL, Report, md
from mloop.errors import BadArgumentError, ConfigError, MloopError, NotFoundError

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.spec.models import WorkflowSpec

__all__ = ["ActionInputs", "main", "run_action"]


@dataclass
class ActionInputs:
    """The action's inputs, checked."""

    workflow: str
    parameters: dict[str, str]
    server_url: str
    token: str
    wait: bool

    @classmethod
    def read(cls, runner: Runner) -> ActionInputs:
        """
        Raises:
            BadArgumentError: no workflow, a token with no server, a bad ``wait``.
            SpecValidationError: a parameter line that is not NAME=VALUE (all of them listed).
        """
        from mloop.commands._common import parse_pairs

        workflow = runner.input("workflow")
        if not workflow:
            raise BadArgumentError("the action needs a workflow file",
                                   hint="set `workflow:` to a Python file defining a Workflow (or a spec .json), "
                                        "e.g. workflow: examples/mnist/workflow.py")
        lines = [line.strip() for line in runner.input("parameters").splitlines()]
        params = parse_pairs([line for line in lines if line and not line.startswith("#")], "parameters")
        server_url, token = runner.input("server-url"), runner.input("token")
        if token and not server_url:
            raise BadArgumentError("a token was given but no server-url",
                                   hint="set server-url too (client mode), or leave token empty to run on the runner")
        return cls(workflow, params, server_url.rstrip("/"), token, runner.flag("wait", True))


def _settings(inputs: ActionInputs) -> Settings:
    from mloop.config import Settings

    given: dict[str, Any] = {}
    if inputs.server_url:
        given["server_url"] = inputs.server_url
    if inputs.token:
        given["token"] = inputs.token
    return Settings(**given)


def load_workflow(target: str) -> WorkflowSpec:
    """The spec of ``FILE[:VARIABLE]`` (a Python file defining a Workflow) or of a spec .json,
    as ``mloop run`` reads it; relative to the working directory (the workspace)."""
    from mloop.spec import load_spec

    path_text, _, variable = target.partition(":") if not os.path.exists(target) else (target, "", "")
    path = Path(path_text)
    if not path.is_file():
        raise NotFoundError(f"no such workflow file: {path} (in {os.getcwd()})",
                            hint="give `workflow:` relative to the repository root, and check out the "
                                 "repository first (actions/checkout)")
    if path.suffix == ".json":
        return load_spec(path)
    from mloop.workflow.loading import load_workflow_file

    return load_workflow_file(path, variable)


class _Progress:
    """Prints one line per step state change to the job log (the engine's listener)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.seen: dict[str, str] = {}

    def __call__(self, view: Any) -> None:
        self.step(view.name, view.status, view.message)

    def step(self, name: str, status: str, message: str | None) -> None:
        if self.seen.get(name) == status:
            return
        self.seen[name] = status
        self.runner.print(f"  {name}: {status}" + (f" ({message})" if message and status != "running" else ""))


# -- the two doors ----------------------------------------------------------------------------------
def run_embedded(runner: Runner, inputs: ActionInputs, settings: Settings, spec: WorkflowSpec) -> Report:
    """Run on the runner, through the run service, as ``mloop run`` does."""
    from mloop.runs import open_backend, start_run

    progress = _Progress(runner)

    def watch(run: Any, execute: Any) -> Any:
        runner.print(f"run {run.id}: {run.workflow_name} #{run.number}")
        return execute(progress)

    with open_backend(settings) as backend:
        with runner.commands_off():
            result = start_run(backend, spec, inputs.parameters, base_dir=os.getcwd(), watch=watch,
                               detach_when_waiting=not inputs.wait)
        run = backend.store.get_run(result.run.id)
        return Report.from_records(run, backend.store.list_steps(run.id), backend.store.list_metrics(run.id),
                                   log_tail=result.log_tail)


def run_on_server(runner: Runner, inputs: ActionInputs, settings: Settings, spec: WorkflowSpec) -> Report:
    """Upload, release and queue on the server (client mode); follow the run when waiting."""
    from mloop.client import RemoteRun, client_for, run_record, step_record

    client = client_for(settings)
    if client is None:  # pragma: no cover - server_url is set when this is called
        raise ConfigError("no server to run on", hint="set server-url")
    with client:
        released = client.release(spec)
        runner.print(f"released {released['workflow']} version {released['version']} on {client.url}")
        queued = client.submit(released["workflow"], released["version"], inputs.parameters, None)
        run_id = queued["id"]
        runner.print(f"run {run_id}: {queued['workflow']} #{queued['number']} queued")
        if inputs.wait:
            progress = _Progress(runner)
            with runner.commands_off():
                for frame in client.events(run_id):
                    if frame.get("step"):
                        progress.step(frame["step"], frame["to"], frame.get("message"))
        result = RemoteRun(client, run_id).result()
        detail = client.run(run_id)
        run = run_record(detail)
        steps = [step_record(run, s) for s in detail["steps"]]
        metrics = [SimpleNamespace(step_name=m["step"], key=m["key"], type=m["type"], value=m.get("value"),
                                   data=m.get("data") or {})
                   for m in client.call("GET", f"/runs/{run_id}/metrics")]
        report = Report.from_records(run, steps, metrics, console_url=f"{client.url}/ui/runs/{run_id}",
                                     log_tail=result.log_tail)
        for s in detail["steps"]:  # outputs, where the server's API includes them
            if isinstance(s.get("outputs"), dict):
                report.add_outputs(s["name"], s["outputs"])
        return report


# -- the action -----------------------------------------------------------------------------------
def exit_code(report: Report, waited: bool) -> int:
    """0: succeeded (or, not waiting, queued or waiting for input); 1: failed or stopped."""
    if report.status == "succeeded":
        return 0
    if report.status in TERMINAL:
        return 1
    return 1 if waited else 0  # waited, yet still not ended: say so rather than pass


def run_action(runner: Runner) -> int:
    """Run the workflow the inputs name, write the summary and outputs; the exit code."""
    inputs = ActionInputs.read(runner)
    settings = _settings(inputs)
    spec = load_workflow(inputs.workflow)
    client_mode = bool(settings.server_url or os.environ.get("MLOOP_SERVER"))
    door = run_on_server if client_mode else run_embedded
    report = door(runner, inputs, settings, spec)
    runner.add_summary(report.markdown())
    runner.set_output("run-id", report.run_id)
    runner.set_output("status", report.status)
    runner.set_output("model-version", report.model_version)
    runner.set_output("service-url", report.service_url)
    runner.set_output("console-url", report.console_url or "")
    code = exit_code(report, inputs.wait)
    if code:
        where = f"step {report.failed_step}" if report.failed_step else "the run"
        runner.error(f"{where} {report.status}: {report.message or ''}".strip(),
                     title=f"mloop run {report.run_id} {report.status}")
        if report.log_tail:
            with runner.commands_off():
                for line in report.log_tail:
                    runner.print(f"  | {line}")
    else:
        runner.print(f"run {report.run_id} {report.status}")
    return code


def main() -> int:
    """The entry point: an mloop error becomes an annotation, a summary note and its exit code."""
    runner = Runner()
    try:
        return run_action(runner)
    except MloopError as exc:
        runner.error(exc.message + (f" (hint: {exc.hint})" if exc.hint else ""), title="mloop could not run")
        note = ["### ❌ mloop could not run the workflow", "", f"> {md(exc.message, 1000)}", ""]
        if exc.hint:
            note += [f"hint: {md(exc.hint, 500)}", ""]
        runner.add_summary("\n".join(note))
        runner.set_output("status", "error")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
