"""Plain functions over runs: what the CLI, the SDK verbs (and later the REST API) all call.

Nothing here knows about terminals or HTTP: callers pass a listener for live display.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any, Iterable

from mloop.engine.context import storage_roots
from mloop.engine.engine import Engine, Listener
from mloop.engine.reconcile import engine_alive, reconcile_run
from mloop.errors import NotFoundError, Problem, RunStateError, SpecValidationError, StepFailed
from mloop.executors.local import kill_tree
from mloop.spec.io import dump_spec, spec_hash
from mloop.spec.models import WorkflowSpec
from mloop.spec.io import load_spec
from mloop.spec.values import coerce_given, resolve_values
from mloop.services.backend import Backend
from mloop.store.base import TERMINAL_RUN, ReleaseRecord, RunRecord, StepRecord

_CI_VARS = {
    "GITHUB_SHA": "git_commit_id", "GITHUB_REF_NAME": "git_branch", "GITHUB_REPOSITORY": "git_repository_name",
    "GITHUB_RUN_ID": "build_job_id", "GITHUB_WORKFLOW": "build_job_name", "CI_COMMIT_SHA": "git_commit_id",
    "CI_COMMIT_REF_NAME": "git_branch", "CI_PROJECT_PATH": "git_repository_name", "CI_PIPELINE_ID": "build_job_id",
    "GIT_COMMIT": "git_commit_id", "GIT_TAG": "git_tag", "GIT_LOCAL_BRANCH": "git_branch",
    "BUILDNUMBER": "build_job_id",
}


def ci_metadata(source_dir: str | None) -> dict[str, str]:
    """Git and CI facts to store with a release (commit, branch, CI job), as ModelArts does."""
    out = {key: os.environ[var] for var, key in _CI_VARS.items() if os.environ.get(var)}
    if "git_commit_id" not in out and source_dir:
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source_dir, capture_output=True, text=True,
                                    timeout=5)
            branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=source_dir,
                                    capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return out
        if commit.returncode == 0:
            out["git_commit_id"] = commit.stdout.strip()
            out["git_branch"] = branch.stdout.strip()
            out["build_job_name"] = "local"
    return out


def release_spec(backend: Backend, spec: WorkflowSpec) -> ReleaseRecord:
    """Store ``spec`` as the next release of its workflow, unless it equals the latest one."""
    data = dump_spec(spec)
    latest = backend.store.latest_release(spec.name)
    if latest is not None and latest.spec_hash == spec_hash(data):
        return latest  # the common case: no git subprocesses for a release that already exists
    return backend.store.create_release(spec.name, data, reuse_if_unchanged=True,
                                        extend={**spec.extend, **ci_metadata(spec.source_dir)})


def select_steps(spec: WorkflowSpec, steps: Iterable[str] | None, scene: str | None) -> list[str] | None:
    """The steps of a partial run (``--steps`` or a policy scene), or None for all.

    Raises:
        SpecValidationError: unknown step or scene names, listed together.
    """
    names = list(steps or [])
    problems = []
    if scene:
        scenes = {s.name: s for s in (spec.policy.scenes if spec.policy else [])}
        if scene not in scenes:
            problems.append(Problem("--scene", f"no scene named {scene!r}",
                                    f"scenes: {', '.join(scenes) or 'none defined'}"))
        else:
            names += scenes[scene].steps
    known = [s.name for s in spec.steps]
    for name in names:
        if name not in known:
            problems.append(Problem("--steps", f"no step named {name!r}", f"steps: {', '.join(known)}", step=name))
    if problems:
        raise SpecValidationError(problems, headline="cannot select those steps:")
    if not names:
        return None
    return [n for n in known if n in set(names)]


def create_run(backend: Backend, spec: WorkflowSpec, values: dict[str, Any] | None = None, *,
               storages: dict[str, str] | None = None, steps: Iterable[str] | None = None,
               scene: str | None = None, require_defaults: bool = False) -> RunRecord:
    """Release the spec and create a pending run with checked values. Nothing runs yet.

    Raises:
        PlaceholderValueError: a bad, unknown or missing value (nothing is recorded).
        SpecValidationError: unknown step/scene names.
        ConfigError: a root given for an unknown storage.
    """
    selected = select_steps(spec, steps, scene)
    chosen = set(selected) if selected is not None else None
    params = resolve_values(spec, dict(values or {}), steps=chosen, require_defaults=require_defaults)
    roots = storage_roots(spec, dict(storages or {}), backend.settings)
    release = release_spec(backend, spec)
    step_rows = [(s.name, s.type) for s in spec.steps if chosen is None or s.name in chosen]
    return backend.store.create_run(release.id, step_rows, params=params, storages=roots, selected_steps=selected)


def execute_run(backend: Backend, run_id: str, listener: Listener | None = None, *,
                detach_when_waiting: bool = False, resume: bool = False) -> RunRecord:
    """Run a pending run in this process until it ends.

    Args:
        detach_when_waiting: return once only steps waiting for input remain (the run stays
            ``waiting_input``; :func:`resume_run` continues it) instead of waiting here.
        resume: continue a run left ``waiting_input`` with no engine (see :func:`resume_run`).
    """
    engine = Engine(backend.store, backend.settings, backend.artifacts, listener=listener,
                    detach_when_waiting=detach_when_waiting)
    return engine.execute(run_id, resume=resume)


def provide_input(backend: Backend, run_id: str, values: dict[str, Any]) -> RunRecord:
    """Give values to a run's delayed placeholders (or change ones not yet used).

    The engine running the run picks them up within a fraction of a second; a run left
    waiting with no engine continues with :func:`resume_run`.

    Raises:
        RunStateError: the run has ended.
        PlaceholderValueError: unknown names or bad values (nothing is recorded).
    """
    store = backend.store
    run = store.get_run(run_id)
    if run.status in TERMINAL_RUN:
        raise RunStateError(f"run {run.id} has already ended ({run.status})", hint="start a new run with the values")
    spec = load_spec(store.get_release(run.release_id).spec, validate=False)
    coerced = coerce_given(spec, values)
    return store.update_run(run.id, params={**run.params, **coerced})


def resumable(backend: Backend, run: RunRecord) -> bool:
    """Whether ``run`` waits for input with no engine looking after it (so it needs resuming)."""
    reconcile_run(backend.store, run, backend.settings.stop_grace_seconds)
    run = backend.store.get_run(run.id)
    return run.status == "waiting_input" and not engine_alive(run)


def waiting_runs(backend: Backend) -> list[RunRecord]:
    """Runs waiting for input, newest first."""
    return backend.store.list_runs(status=["waiting_input"], limit=10_000)


def resume_run(backend: Backend, run_id: str, listener: Listener | None = None, *,
               detach_when_waiting: bool = False) -> RunRecord:
    """Continue, in this process, a run that waits for input and whose engine has gone
    (``mloop run --no-wait``, or the process was restarted). Waiting steps are looked at
    again first; the run then goes on like any other.

    Raises:
        RunStateError: the run is not waiting, or a live engine still runs it.
    """
    run = backend.store.get_run(run_id)
    reconcile_run(backend.store, run, backend.settings.stop_grace_seconds)
    return execute_run(backend, run.id, listener, detach_when_waiting=detach_when_waiting, resume=True)


def first_failure(backend: Backend, run: RunRecord) -> StepRecord | None:
    return next((s for s in backend.store.list_steps(run.id) if s.status == "failed"), None)


def raise_for_run(backend: Backend, run: RunRecord) -> None:
    """Raise StepFailed (with the step's log tail) unless the run succeeded."""
    if run.status == "succeeded":
        return
    from mloop.steps.job import log_tail

    step = first_failure(backend, run)
    if step is None:
        raise StepFailed("(run)", f"run {run.id} {run.status}: {run.message or ''}".strip())
    raise StepFailed(step.name, step.message or "failed", exit_code_of_job=step.exit_code,
                     log_tail=log_tail(step.log_path, backend.settings.log_tail_lines))


def stop_run(backend: Backend, run_id: str, wait_seconds: float | None = None) -> RunRecord:
    """Stop a run: its running jobs (whole process trees) end and it is marked stopped.

    Raises:
        RunStateError: the run has already ended.
    """
    store = backend.store
    run = store.get_run(run_id)
    if run.status in TERMINAL_RUN:
        raise RunStateError(f"run {run.id} has already ended ({run.status})", hint="nothing to stop")
    store.update_run(run.id, stop_requested=True)
    run = store.get_run(run.id)
    grace = backend.settings.stop_grace_seconds
    if run.status == "pending" and not engine_alive(run):
        store.transition_run(run.id, "stopped", message="stopped before it started", expected_from=["pending"])
        return store.get_run(run.id)
    for step in store.list_steps(run.id):
        if step.status == "running" and step.pid:
            kill_tree(step.pid, grace, started_by=step.started_at.timestamp() if step.started_at else None)
    deadline = time.monotonic() + (wait_seconds if wait_seconds is not None else grace + 10)
    while time.monotonic() < deadline:
        run = store.get_run(run.id)
        if run.status in TERMINAL_RUN:
            return run
        if not engine_alive(run):
            reconcile_run(store, run, grace)
            return store.get_run(run.id)
        time.sleep(0.1)
    return store.get_run(run.id)


def retry_run(backend: Backend, run_id: str) -> RunRecord:
    """Make a failed or stopped run pending again: its failed/stopped steps re-run, the
    steps that succeeded keep their outputs.

    Raises:
        RunStateError: the run did not fail or stop.
    """
    store = backend.store
    run = store.get_run(run_id)
    reconcile_run(store, run, backend.settings.stop_grace_seconds)
    run = store.get_run(run.id)
    if run.status not in ("failed", "stopped"):
        raise RunStateError(f"run {run.id} is {run.status}; only a failed or stopped run can be retried",
                            hint="start a new run with `mloop run`")
    for step in store.list_steps(run.id):
        if step.status in ("failed", "stopped"):
            store.transition_step(run.id, step.name, "pending", message=f"retry (attempt {run.attempt + 1})",
                                  expected_from=[step.status])
    store.transition_run(run.id, "pending", message=f"retry (attempt {run.attempt + 1})",
                         expected_from=["failed", "stopped"], stop_requested=False, attempt=run.attempt + 1)
    return store.get_run(run.id)


def step_log_path(backend: Backend, run_id: str, step: str | None) -> list[StepRecord]:
    """The steps whose logs to show: one named step, or every step that has a log."""
    steps = backend.store.list_steps(backend.store.get_run(run_id).id)
    if step is None:
        return [s for s in steps if s.log_path]
    for s in steps:
        if s.name == step:
            return [s]
    raise NotFoundError(f"run {run_id} has no step {step!r}", hint=f"steps: {', '.join(s.name for s in steps)}")
