"""The run service: the one owner of a run's life — create, execute, stop, retry, resume,
reconcile — and what every door asks about runs.

Layer: run service (above the engine; below the doors). The CLI, the SDK verbs
(``release``, ``run``, ``release_and_run``) and the REST API call these functions and nothing
below them; the terminal display only renders the events (a listener) and the
:class:`RunResult` it is given. Where a run executes is the :class:`Launcher` seam: in this
process today, the server's run queue and other hosts later.

Nothing here knows about terminals or HTTP.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Protocol

from mloop.context import Context
from mloop.engine import transitions
from mloop.engine.context import storage_roots
from mloop.engine.engine import Listener
from mloop.engine.ownership import engine_alive, process_owner
from mloop.errors import (
    ConfigError, NotFoundError, NotSupportedYetError, Problem, RunStateError, SpecValidationError, StepFailed,
)
from mloop.runs.open import default_settings, open_backend, release_spec_with_settings  # noqa: F401 - re-exported
from mloop.runs.reconcile import cancel_step_job, reconcile_run
from mloop.runs.reconcile import notify_quietly
from mloop.spec.io import dump_spec, load_spec, spec_hash
from mloop.spec.models import WorkflowSpec
from mloop.spec.values import coerce_given, resolve_values
from mloop.store.base import TERMINAL_RUN, ReleaseRecord, RunRecord, StepRecord

if TYPE_CHECKING:
    from mloop.config import Settings

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


def release_spec(backend: Context, spec: WorkflowSpec) -> ReleaseRecord:
    """Store ``spec`` as the next release of its workflow, unless it equals the latest one."""
    data = dump_spec(spec)
    latest = backend.store.latest_release(spec.name)
    if latest is not None and latest.spec_hash == spec_hash(data):
        return latest  # the common case: no git subprocesses for a release that already exists
    extend = {**spec.extend, **ci_metadata(spec.source_dir)}
    snapshots = code_snapshots(backend, spec)
    if snapshots:
        extend["code_snapshots"] = snapshots
    return backend.store.create_release(spec.name, data, reuse_if_unchanged=True, extend=extend)


def code_snapshots(backend: Context, spec: WorkflowSpec) -> dict[str, dict[str, str]]:
    """Per job step with a literal local ``code_dir``: its code stored content-addressed in the
    artifact store (``{"code_dir", "digest", "url"}``), so a release records the code it was made
    with. Registered algorithms and code folders given by placeholders are left out; a folder
    that can't be read is skipped (the run that needs it reports it)."""
    from mloop.errors import MloopError
    from mloop.steps.job import snapshot_code

    base = spec.source_dir or os.getcwd()
    out: dict[str, dict[str, str]] = {}
    for step in spec.steps:
        algo = step.properties.get("algorithm") if isinstance(step.properties, dict) else None
        code_dir = algo.get("code_dir") if isinstance(algo, dict) else None
        if not isinstance(code_dir, str) or not code_dir:
            continue
        full = os.path.normpath(os.path.expanduser(code_dir if os.path.isabs(code_dir) else os.path.join(base, code_dir)))
        if not os.path.isdir(full):
            continue
        try:
            url, digest = snapshot_code(backend.artifacts, full)
        except (MloopError, OSError):
            continue
        out[step.name] = {"code_dir": full, "digest": digest, "url": url}
    return out


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


# -- data paths ----------------------------------------------------------------------------------
def resolve_data_paths(ctx: Context, spec: WorkflowSpec, values: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    """``values`` with every data placeholder given as a relative path made absolute against
    ``base_dir`` (where the person typed it: the CLI's and the SDK's working folder), and
    ``obs://`` aliased to the configured store; JSON values (``{...}``) and URLs stay as given.

    Every door resolves paths here, so ``mloop run -p data=./x``, ``workflow.run(parameters=...)``
    and (later) a REST call mean the same folder.
    """
    if base_dir is None:
        return dict(values)
    from mloop.artifacts import split_protocol
    from mloop.engine.context import obs_location

    out = dict(values)
    for req in spec.data_requirements:
        raw = out.get(req.name)
        if req.type in ("obs", "data_selector") and isinstance(raw, str) and raw and not raw.startswith("{"):
            out[req.name] = obs_location(raw, ctx.settings, base_dir)
            if (ctx.settings.obs_absolute_paths == "obs" and split_protocol(raw)[0] is None
                    and not raw.startswith("/") and split_protocol(out[req.name])[0] is None):
                # A relative local path made absolute must stay local when read again at run time.
                out[req.name] = "file://" + out[req.name]
    return out


# -- create ---------------------------------------------------------------------------------------
def create_run(backend: Context, spec: WorkflowSpec, values: dict[str, Any] | None = None, *,
               storages: dict[str, str] | None = None, steps: Iterable[str] | None = None,
               scene: str | None = None, require_defaults: bool = False, base_dir: str | None = None,
               origin: dict[str, Any] | None = None, queued: bool = False,
               release: ReleaseRecord | None = None, from_run: str | None = None,
               cache: bool = True) -> RunRecord:
    """Release the spec and create a pending run with checked values. Nothing runs yet.

    Args:
        base_dir: the folder relative data paths in ``values`` are relative to (see
            :func:`resolve_data_paths`); None leaves them as given.
        origin: what started it (``{"kind": "schedule", ...}``), kept on the run.
        queued: leave it to whichever server takes it from the queue (no creator is recorded,
            so reconcile leaves it pending); otherwise the caller executes it.
        release: run this existing release of ``spec`` (an older version) instead of releasing it.
        from_run: a partial run takes the inputs its steps need from unselected upstream steps
            from this earlier run (their recorded outputs and metrics); without it, such a
            partial run is refused (see :mod:`mloop.runs.partial`).
        cache: False: every job step runs, none reuses an earlier result (``--no-cache``);
            kept with the run as ``origin["no_cache"]``, so a retry of it runs the same way.

    Raises:
        PlaceholderValueError: a bad, unknown or missing value (nothing is recorded).
        SpecValidationError: unknown step/scene names.
        ConfigError: a root given for an unknown storage.
    """
    selected = select_steps(spec, steps, scene)
    chosen = set(selected) if selected is not None else None
    given = resolve_data_paths(backend, spec, dict(values or {}), base_dir)
    params = resolve_values(spec, given, steps=chosen, require_defaults=require_defaults)
    roots = storage_roots(spec, dict(storages or {}), backend.settings)
    from mloop.runs.partial import take_from_run

    taken = take_from_run(backend.store, spec, chosen, from_run)
    if taken is not None:
        origin = {**(origin or {}), "from_run": taken}
    if not cache:
        origin = {**(origin or {}), "no_cache": True}
    release = release or release_spec(backend, spec)
    step_rows = [(s.name, s.type) for s in spec.steps if chosen is None or s.name in chosen]
    run = backend.store.create_run(release.id, step_rows, params=params, storages=roots, selected_steps=selected,
                                   origin=origin)
    if queued:
        return run
    # Its creator owns it until an engine claims it: a creator that dies first leaves an
    # orphan that reconcile finishes (and `mloop retry` runs), not a run pending forever.
    return backend.store.update_run(run.id, **process_owner())


# -- execute: the launcher seam ---------------------------------------------------------------------
class Launcher(Protocol):
    """Where a run executes. In this process today; the server's queue and other hosts later."""

    def launch(self, ctx: Context, run_id: str, *, listener: Listener | None, detach_when_waiting: bool,
               resume: bool) -> RunRecord:
        """Execute ``run_id`` (pending, or waiting with ``resume``); the run as it is after."""


class InProcessLauncher:
    """Runs the engine in this process until the run ends (or only waits, when detaching).

    On a database other machines can share (not a SQLite file), the process registers as a
    ``cli`` engine and beats while it runs, so that a server or a terminal on another host can
    tell when it died (a killed CI runner, a lost laptop) and fail its run, which `mloop retry`
    continues, instead of showing it running for ever. On SQLite (one machine) the pid decides.
    """

    def launch(self, ctx: Context, run_id: str, *, listener: Listener | None, detach_when_waiting: bool,
               resume: bool) -> RunRecord:
        import mloop.steps  # noqa: F401 - registers the built-in step kinds with the engine
        from mloop.engine.engine import Engine

        heartbeat = _terminal_heartbeat(ctx)
        try:
            engine = Engine(ctx.store, ctx.settings, ctx.artifacts, listener=listener,
                            detach_when_waiting=detach_when_waiting,
                            engine_id=heartbeat.id if heartbeat is not None else None)
            return engine.execute(run_id, resume=resume)
        finally:
            if heartbeat is not None:
                heartbeat.stop(forget=True)


def _terminal_heartbeat(ctx: Context) -> Any:
    """A started ``cli`` :class:`~mloop.engine.ownership.Heartbeat` on a shared database; None on SQLite."""
    engine = getattr(ctx.store, "engine", None)
    if engine is None or engine.dialect.name == "sqlite":
        return None
    from mloop import __version__
    from mloop.engine.ownership import Heartbeat

    return Heartbeat(ctx.store, "cli", ctx.settings.heartbeat_seconds, version=__version__).start()


def launcher_for(settings: Settings) -> Launcher:
    """The launcher the settings ask for."""
    server = settings.server_url or os.environ.get("MLOOP_SERVER")
    if server:
        raise NotSupportedYetError(f"this runs workflows on this machine, but client mode is on (server_url="
                                   f"{server!r}); in client mode `mloop run/release/runs/show/logs/"
                                   "stop/retry/input` and the SDK verbs work through the server",
                                   hint="unset MLOOP_SERVER_URL (and server_url in mloop.toml) to run here")
    if settings.token:
        raise ConfigError("a token is set (MLOOP_TOKEN or token in mloop.toml) but no server_url",
                          hint="a token is for a server: set MLOOP_SERVER_URL too, or unset the token to run here")
    return InProcessLauncher()


def execute_run(backend: Context, run_id: str, listener: Listener | None = None, *,
                detach_when_waiting: bool = False, resume: bool = False,
                launcher: Launcher | None = None) -> RunRecord:
    """Run a pending run until it ends.

    Args:
        detach_when_waiting: return once only steps waiting for input remain (the run stays
            ``waiting_input``; :func:`resume_run` continues it) instead of waiting here.
        resume: continue a run left ``waiting_input`` with no engine (see :func:`resume_run`).
        launcher: where it executes (default: what the settings ask for, in this process).
    """
    launcher = launcher or launcher_for(backend.settings)
    return launcher.launch(backend, run_id, listener=listener, detach_when_waiting=detach_when_waiting,
                           resume=resume)


@dataclass
class RunResult:
    """How a run ended (or that it waits), with what a door shows about it."""

    run: RunRecord
    failed: StepRecord | None = None  # the first failed step
    log_tail: list[str] = field(default_factory=list)  # its last log lines
    waiting: list[StepRecord] = field(default_factory=list)  # steps waiting for input, if the run waits

    @property
    def ok(self) -> bool:
        """Succeeded, or (detached) waits for input: what a door treats as not failed."""
        return self.run.status in ("succeeded", "waiting_input")


def result_of(backend: Context, run: RunRecord) -> RunResult:
    """The :class:`RunResult` of a run as the store has it now."""
    from mloop.runner import log_tail

    steps = backend.store.list_steps(run.id)
    failed = next((s for s in steps if s.status == "failed"), None)
    tail = log_tail(failed.log_path, backend.settings.log_tail_lines) if failed else []
    waiting = [s for s in steps if s.status == "waiting_input"] if run.status == "waiting_input" else []
    return RunResult(run, failed, tail, waiting)


def run_to_end(backend: Context, run_id: str, listener: Listener | None = None, *,
               detach_when_waiting: bool = False, resume: bool = False,
               launcher: Launcher | None = None) -> RunResult:
    """Execute a run and summarise how it ended (what every door shows); then send the
    notifications it caused, when anything is subscribed (bounded, never raising)."""
    if backend.settings.notify:  # subscriptions in mloop.toml: stored before the run's events
        from mloop.notify.notifier import sync_quietly

        sync_quietly(backend)
    run = execute_run(backend, run_id, listener, detach_when_waiting=detach_when_waiting, resume=resume,
                      launcher=launcher)
    result = result_of(backend, run)
    notify_quietly(backend)
    return result


def raise_for_result(result: RunResult) -> None:
    """Raise StepFailed (with the failing step's log tail) unless the run succeeded or waits."""
    if result.ok:
        return
    run = result.run
    if result.failed is None:
        raise StepFailed("(run)", f"run {run.id} {run.status}: {run.message or ''}".strip())
    raise StepFailed(result.failed.name, result.failed.message or "failed",
                     exit_code_of_job=result.failed.exit_code, log_tail=result.log_tail)


def first_failure(backend: Context, run: RunRecord) -> StepRecord | None:
    return next((s for s in backend.store.list_steps(run.id) if s.status == "failed"), None)


def raise_for_run(backend: Context, run: RunRecord) -> None:
    """Raise StepFailed (with the step's log tail) unless the run succeeded."""
    if run.status == "succeeded":
        return
    result = result_of(backend, run)
    result.run = run
    if run.status == "waiting_input":
        raise StepFailed("(run)", f"run {run.id} waits for input")
    raise_for_result(result)


#: How a door watches a run: called with the run and a function that executes it with a listener.
Watch = Callable[[RunRecord, Callable[[Optional[Listener]], RunResult]], RunResult]


def _unwatched(run: RunRecord, execute: Callable[[Optional[Listener]], RunResult]) -> RunResult:
    return execute(None)


def start_run(backend: Context, spec: WorkflowSpec, values: dict[str, Any] | None = None, *,
              storages: dict[str, str] | None = None, steps: Iterable[str] | None = None, scene: str | None = None,
              require_defaults: bool = False, base_dir: str | None = None, watch: Watch | None = None,
              detach_when_waiting: bool = False, launcher: Launcher | None = None,
              from_run: str | None = None, cache: bool = True) -> RunResult:
    """Create a run (:func:`create_run`) and execute it to the end (:func:`run_to_end`): what
    ``mloop run``, ``workflow.run()`` and ``workflow.release_and_run()`` do. ``watch`` is the
    door's display (it gets the run and the function that executes it)."""
    run = create_run(backend, spec, values, storages=storages, steps=steps, scene=scene,
                     require_defaults=require_defaults, base_dir=base_dir, from_run=from_run, cache=cache)
    return (watch or _unwatched)(run, lambda listener: run_to_end(
        backend, run.id, listener, detach_when_waiting=detach_when_waiting, launcher=launcher))


def retry_and_run(backend: Context, run_id: str, *, watch: Watch | None = None,
                  launcher: Launcher | None = None, values: dict[str, Any] | None = None) -> RunResult:
    """:func:`retry_run`, then execute it to the end (``mloop retry``)."""
    run = retry_run(backend, run_id, values)
    return (watch or _unwatched)(run, lambda listener: run_to_end(backend, run.id, listener, launcher=launcher))


def resume_and_run(backend: Context, run_id: str, *, watch: Watch | None = None, detach_when_waiting: bool = False,
                   launcher: Launcher | None = None) -> RunResult:
    """Continue a run left waiting for input with no engine (:func:`resume_run`) to the end
    (``mloop resume``, ``mloop input``, ``mloop label complete``)."""
    run = backend.store.get_run(run_id)
    reconcile_run(backend, run)
    return (watch or _unwatched)(run, lambda listener: run_to_end(
        backend, run.id, listener, detach_when_waiting=detach_when_waiting, resume=True, launcher=launcher))


# -- input and resume ------------------------------------------------------------------------------
def provide_input(backend: Context, run_id: str, values: dict[str, Any]) -> RunRecord:
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


def resumable(backend: Context, run: RunRecord) -> bool:
    """Whether ``run`` waits for input with no engine looking after it (so it needs resuming)."""
    reconcile_run(backend, run)
    run = backend.store.get_run(run.id)
    return run.status == "waiting_input" and not engine_alive(run, backend.store)


def waiting_runs(backend: Context) -> list[RunRecord]:
    """Runs waiting for input, newest first."""
    return backend.store.list_runs(status=["waiting_input"], limit=10_000)


def resume_run(backend: Context, run_id: str, listener: Listener | None = None, *,
               detach_when_waiting: bool = False) -> RunRecord:
    """Continue, in this process, a run that waits for input and whose engine has gone
    (``mloop run --no-wait``, or the process was restarted). Waiting steps are looked at
    again first; the run then goes on like any other.

    Raises:
        RunStateError: the run is not waiting, or a live engine still runs it.
    """
    run = backend.store.get_run(run_id)
    reconcile_run(backend, run)
    return execute_run(backend, run.id, listener, detach_when_waiting=detach_when_waiting, resume=True)


# -- stop and retry -------------------------------------------------------------------------------
def stop_run(backend: Context, run_id: str, wait_seconds: float | None = None) -> RunRecord:
    """Stop a run: its running steps are cancelled through their executors (a job's whole
    process tree ends) and it is marked stopped.

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
    # Not claimed yet: stopped here (an engine claiming it meanwhile sees the flag instead).
    if run.status == "pending" and transitions.run(store, run.id, "stopped", message="stopped before it started",
                                                   expected_from=["pending"]):
        return store.get_run(run.id)
    # The engine that runs it sees the flag within a fraction of a second and cancels every
    # running step through its handler (jobs, deploys, imports); jobs are also cancelled from
    # here, so a stop works even when that engine is stuck.
    for step in store.list_steps(run.id):
        if step.status == "running":
            cancel_step_job(backend, step, grace)
    deadline = time.monotonic() + (wait_seconds if wait_seconds is not None else grace + 10)
    while time.monotonic() < deadline:
        run = store.get_run(run.id)
        if run.status in TERMINAL_RUN:
            return run
        if not engine_alive(run, store):
            reconcile_run(backend, run)
            return store.get_run(run.id)
        time.sleep(0.1)
    return store.get_run(run.id)


def retry_run(backend: Context, run_id: str, values: dict[str, Any] | None = None) -> RunRecord:
    """Make a failed or stopped run pending again: its failed/stopped steps re-run, the
    steps that succeeded keep their outputs. ``values`` (``mloop retry -p NAME=VALUE``)
    change placeholder values for this attempt, coerced like ``mloop input``'s.

    Raises:
        RunStateError: the run did not fail or stop.
        PlaceholderValueError: unknown names or bad values (nothing is changed).
    """
    store = backend.store
    run = store.get_run(run_id)
    reconcile_run(backend, run)
    run = store.get_run(run.id)
    if run.status not in ("failed", "stopped"):
        raise RunStateError(f"run {run.id} is {run.status}; only a failed or stopped run can be retried",
                            hint="start a new run with `mloop run`")
    if values:
        spec = load_spec(store.get_release(run.release_id).spec, validate=False)
        coerced = coerce_given(spec, values)
        run = store.update_run(run.id, params={**run.params, **coerced})
    for step in store.list_steps(run.id):
        if step.status in ("failed", "stopped"):
            transitions.step(store, run.id, step.name, "pending", message=f"retry (attempt {run.attempt + 1})",
                             expected_from=[step.status])
    transitions.run(store, run.id, "pending", message=f"retry (attempt {run.attempt + 1})",
                    expected_from=["failed", "stopped"], stop_requested=False, attempt=run.attempt + 1)
    return store.get_run(run.id)
