"""The engine: runs one run of a spec, step by step, recording every transition.

Layer: engine (below the run service in :mod:`mloop.runs`, above the step handlers). The same
code runs in-process (``mloop run``, ``workflow.run()``) and, later, inside the server. It sees
only specs and store records, never SDK objects, and knows no step kind by name: it asks the
registry in :mod:`mloop.steps` for each step's handler and calls the same verbs on every one
(preflight, start, poll, finish, cancel). Every status it writes goes through
:mod:`mloop.engine.transitions`.

Scheduling is event driven: job exits arrive on a queue the moment they happen, so the
per-step overhead is a couple of committed rows, not a polling interval.
"""

from __future__ import annotations

import heapq
import os
import queue
import signal
import threading
import time
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any, Callable

from mloop.artifacts import ArtifactStore
from mloop.config import Settings
from mloop.engine import rules, transitions
from mloop.engine.conditions import describe, evaluate
from mloop.engine.context import InputUnavailable, RunContext, utcnow
from mloop.engine.ownership import engine_alive, process_owner
from mloop.errors import MloopError, RunStateError
from mloop.executors.base import Executor, JobExit, get_executor
from mloop.spec.io import load_spec
from mloop.spec.models import DataRequirementSpec, ParameterSpec, StepSpec, WorkflowSpec
from mloop.engine.handlers import HandlerRegistry, Launched, Outcome, StepHandler, Waiting, registry
from mloop.store.base import RunRecord, StepTransition, Store

Listener = Callable[["StepView"], None]

#: How the message of a step waiting for placeholder values starts (a step waiting on its
#: handler, e.g. for a labeling task, has the handler's own message). Kept in the store, so
#: an engine that resumes the run knows which kind of wait it was.
WAITING_FOR_VALUES = "waiting for input:"


@dataclass
class StepView:
    """What a display needs to know about one step (the engine keeps these in memory)."""

    name: str
    type: str
    status: str
    message: str | None = None
    started: float | None = None  # time.time()
    finished: float | None = None
    attempt: int = 0
    log_path: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    outputs_skipped: bool = False


class Superseded(Exception):
    """Another engine took over the run this one executes (it had been taken for dead)."""


class Engine:
    """Executes runs against a store, an artifact store and an executor."""

    def __init__(self, store: Store, settings: Settings, artifacts: ArtifactStore,
                 executor: Executor | None = None, listener: Listener | None = None,
                 detach_when_waiting: bool = False, handlers: HandlerRegistry | None = None,
                 engine_id: str | None = None) -> None:
        self.store, self.settings, self.artifacts = store, settings, artifacts
        #: The registered server or worker engine this is (mloop.store.engines); None: a terminal's.
        self.engine_id = engine_id
        #: Where each step kind's handler comes from (default: the registry mloop.steps fills).
        self.handlers = handlers or registry
        #: Leave (the run stays ``waiting_input``, resumable) once only waiting steps remain.
        self.detach_when_waiting = detach_when_waiting
        self.executor = executor or get_executor(settings.executor)
        self.listener = listener
        self._events: queue.Queue[tuple[str, Any, JobExit]] = queue.Queue()
        self._handlers: dict[str, StepHandler] = {}
        self._interrupted = threading.Event()

    # -- public -----------------------------------------------------------------------------
    def execute(self, run_id: str, *, resume: bool = False, takeover: bool = False) -> RunRecord:
        """Run every pending step of ``run_id`` to the end; returns the finished run (or the
        run waiting for input, with ``detach_when_waiting``).

        Args:
            resume: take over a run left ``waiting_input`` by an engine that has gone.
            takeover: continue a running run this engine has already claimed from a dead one
                (:meth:`~mloop.store.engines.EngineRepository.take_over_run`; its orphaned
                steps made pending again).

        Raises:
            RunStateError: the run is not pending (already running elsewhere, or finished), or
                with ``resume``, not waiting or still owned by a live engine, or with
                ``takeover``, not running under this engine.
        """
        run = self.store.get_run(run_id)
        release = self.store.get_release(run.release_id)
        spec = load_spec(release.spec, validate=False)
        owner = process_owner(self.engine_id)
        if takeover:
            claimed = run.status == "running" and self.engine_id is not None and run.engine_id == self.engine_id
        elif resume:
            if run.status != "waiting_input":
                raise RunStateError(f"run {run.id} is {run.status}, not waiting for input",
                                    hint="only a run in waiting_input can be resumed")
            if engine_alive(run, self.store):
                raise RunStateError(f"run {run.id} is being run by process {run.engine_pid}",
                                    hint="it picks new input up by itself; nothing to resume")
            claimed = transitions.run(self.store, run.id, "running", expected_from=["waiting_input"],
                                      message="resumed", **owner)
        else:
            claimed = transitions.run(self.store, run.id, "running", expected_from=["pending"], **owner)
        if not claimed:
            if takeover:
                raise RunStateError(f"run {run.id} is not running under engine {self.engine_id}",
                                    hint="another engine took it over first; it runs there")
            raise RunStateError(f"run {run.id} is {self.store.get_run(run.id).status}, not "
                                f"{'waiting_input' if resume else 'pending'}",
                                hint="use `mloop retry` for a failed or stopped run")
        run = self.store.get_run(run.id)
        run_dir = os.path.join(self.settings.home_path, "runs", run.id)
        os.makedirs(run_dir, exist_ok=True)
        ctx = RunContext(run, spec, self.settings, self.store, self.artifacts, dict(run.params),
                         dict(run.storages), run_dir)
        restore = self._install_signal_handlers()
        execution = _Execution(self, ctx)
        try:
            return execution.loop()
        except Superseded:
            # Another engine took the run over (this one's heartbeat went stale): it owns the
            # run's rows now, so leave them as they are and only end this engine's own jobs.
            execution.let_go()
            return self.store.get_run(run.id)
        except BaseException as exc:
            # A bug in mloop must not leave the run "running" with its jobs alive.
            execution.abort(f"the engine failed: {type(exc).__name__}: {exc}")
            raise
        finally:
            restore()

    def interrupt(self) -> None:
        """Stop the run being executed (what Ctrl-C does)."""
        self._interrupted.set()

    # -- internals --------------------------------------------------------------------------
    def handler(self, step_type: str) -> StepHandler:
        if step_type not in self._handlers:
            self._handlers[step_type] = self.handlers.handler_for(step_type, self.executor)
        return self._handlers[step_type]

    def on_exit(self, handle: Any, exit: JobExit) -> None:
        self._events.put(("exit", handle, exit))

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handle(signum: int, frame: Any) -> None:
            self._interrupted.set()

        for sig in previous:
            signal.signal(sig, handle)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


class _Execution:
    """One pass of the scheduling loop over one run."""

    STOP_CHECK_SECONDS = 0.25

    def __init__(self, engine: Engine, ctx: RunContext) -> None:
        self.engine, self.ctx = engine, ctx
        self.store = engine.store
        self.spec: WorkflowSpec = ctx.spec
        records = {r.name: r for r in self.store.list_steps(ctx.run_id)}
        self.order = [s.name for s in self.spec.steps if s.name in records]
        self.steps: dict[str, StepSpec] = {s.name: s for s in self.spec.steps if s.name in records}
        self.deps = rules.dependencies(self.spec, set(self.order))
        # Readiness is kept up to date as steps end, not found by scanning every step each
        # pass: per step, how many upstream steps are not done; the pending ones at 0 are ready.
        self.position = {name: i for i, name in enumerate(self.order)}
        self.dependents: dict[str, list[str]] = {name: [] for name in self.order}
        for name, upstream in self.deps.items():
            for dep in upstream:
                self.dependents[dep].append(name)
        done = {n for n, r in records.items() if r.status in ("succeeded", "skipped")}
        self.unmet = {n: sum(1 for d in self.deps[n] if d not in done) for n in self.order}
        # A heap of (position in the spec, name): started in spec order, popped in O(log n).
        self.ready: list[tuple[int, str]] = [(self.position[n], n) for n in self.order
                                             if self.unmet[n] == 0 and records[n].status == "pending"]
        self.views = {name: StepView(name, r.type, r.status, r.message, attempt=r.attempt, log_path=r.log_path,
                                     started=r.started_at.timestamp() if r.started_at else None,
                                     finished=r.finished_at.timestamp() if r.finished_at else None,
                                     outputs=dict(r.outputs), outputs_skipped=r.outputs_skipped)
                      for name, r in records.items()}
        # Transitions are committed once per scheduling pass, after the jobs it launched have
        # started: a chain's next job doesn't wait for the commits. Inputs resolve from here.
        self._pending: list[StepTransition] = []
        ctx.step_state = self.views.get
        self.running: dict[str, Launched] = {}
        self.by_handle: dict[int, str] = {}
        self.failed = False
        self.stopping = False
        self._last_stop_check = 0.0
        self.run_status = "running"
        # Steps waiting for input: name -> when to look again (time.monotonic()). Steps left
        # waiting by an earlier engine are looked at first thing.
        self.waiting: dict[str, float] = {n: 0.0 for n, v in self.views.items() if v.status == "waiting_input"}
        self.delayed: list[ParameterSpec | DataRequirementSpec] = [p for p in self.spec.parameters if p.delay]
        self.delayed += [d for d in self.spec.data_requirements if d.delay]

    # -- transitions ------------------------------------------------------------------------
    def _set(self, name: str, status: str, message: str | None = None, *, at: datetime | None = None,
             outcome: Outcome | None = None, **fields: Any) -> None:
        view = self.views[name]
        transitions.check_step(view.status, status)
        when = at or utcnow()
        self._pending.append(StepTransition(
            name, status, message=message, expected_from=(view.status,), fields=fields, at=when,
            metrics=outcome.metrics if outcome is not None else (),
            artifacts=outcome.artifacts if outcome is not None else ()))
        if status in ("succeeded", "skipped") and view.status not in ("succeeded", "skipped"):
            for dependent in self.dependents.get(name, ()):
                self.unmet[dependent] -= 1
                if self.unmet[dependent] == 0:
                    heapq.heappush(self.ready, (self.position[dependent], dependent))
        now = when.timestamp()
        if status == "running":
            view.started, view.finished = now, None
        elif status in transitions.TERMINAL_STEP:
            view.finished = now
        view.status, view.message = status, message
        if "attempt" in fields:
            view.attempt = fields["attempt"]
        if "log_path" in fields:
            view.log_path = fields["log_path"]
        if "outputs" in fields:
            view.outputs = dict(fields["outputs"] or {})
        if "outputs_skipped" in fields:
            view.outputs_skipped = bool(fields["outputs_skipped"])
        if self.engine.listener:
            self.engine.listener(view)

    def flush(self) -> None:
        """Commit the transitions made since the last flush, in order, in one transaction."""
        if self._pending:
            pending, self._pending = self._pending, []
            transitions.steps(self.store, self.ctx.run_id, pending)

    # -- the loop ---------------------------------------------------------------------------
    def loop(self) -> RunRecord:
        for name in self.order:
            self.engine.listener and self.engine.listener(self.views[name])
        self._preflight()
        while True:
            if (self.engine._interrupted.is_set() and self.run_status == "waiting_input" and self.waiting
                    and not self.running and not self.stopping and not self.failed):
                # Ctrl-C while the run only waits for input: it loses nothing and stays waiting
                # (`mloop input` / `mloop resume` continue it), like `mloop run --no-wait`.
                self.engine._interrupted.clear()
                return self._detach()
            self._check_stop()
            if not self.stopping and not self.failed:
                self._poll_waiting()
                self._start_ready()
            self.flush()
            waits = bool(self.waiting) and not self.stopping and not self.failed
            if not self.running and not waits:
                break
            self._set_run_status("running" if self.running or not waits else "waiting_input")
            if self.run_status == "waiting_input" and self.engine.detach_when_waiting:
                return self._detach()
            try:
                _, handle, exit = self.engine._events.get(timeout=self.STOP_CHECK_SECONDS)
            except queue.Empty:
                continue
            self._finished(handle, exit)
        return self._finish_run()

    # -- waiting for input ------------------------------------------------------------------
    def _missing_inputs(self, name: str) -> list[str]:
        """The delayed placeholders step ``name`` uses that have no value yet."""
        return [p.name for p in self.delayed if name in p.used_steps and self.ctx.values.get(p.name) is None]

    def _fill_defaults(self, name: str, missing: list[str]) -> list[str]:
        """Ask the step's handler for values it can derive; record them; what is still missing."""
        handler = self.engine.handler(self.steps[name].type)
        found = {}
        for placeholder in missing:
            value = handler.input_default(self.steps[name], self.ctx, placeholder)
            if value is not None:
                found[placeholder] = value
        if found:
            self.ctx.values.update(found)
            run = self.store.get_run(self.ctx.run_id)
            self.store.update_run(self.ctx.run_id, params={**run.params, **found})
        return [p for p in missing if p not in found]

    def _wait(self, name: str, reason: str, poll_seconds: float) -> None:
        if self.views[name].status != "waiting_input" or self.views[name].message != reason:
            self._set(name, "waiting_input", reason)
        self.waiting[name] = time.monotonic() + poll_seconds

    def _poll_waiting(self) -> None:
        now = time.monotonic()
        for name in [n for n, due in self.waiting.items() if due <= now]:
            if self.failed or self.stopping or len(self.running) >= self.engine.settings.max_parallel:
                return
            del self.waiting[name]
            self._start(name)

    def _set_run_status(self, status: str) -> None:
        if status != self.run_status:
            self.flush()
            transitions.run(self.store, self.ctx.run_id, status, expected_from=[self.run_status])
            self.run_status = status

    def _detach(self) -> RunRecord:
        """Leave a run that only waits for input: it stays ``waiting_input`` with no engine,
        and whatever delivers the input (``mloop input``, ``mloop resume``) takes it over."""
        self.flush()
        self.store.update_run(self.ctx.run_id, engine_pid=None, engine_host=None, engine_started_at=None,
                              engine_id=None)
        return self.store.get_run(self.ctx.run_id)

    def _preflight(self) -> None:
        for name in self.order:
            step = self.steps[name]
            if self.views[name].status == "pending":
                try:
                    self.engine.handler(step.type).preflight(step, self.ctx)
                except MloopError as exc:
                    self._set(name, "failed", f"{exc}" + (f" ({exc.hint})" if exc.hint else ""))
                    self.failed = True

    def _check_stop(self) -> None:
        now = time.monotonic()
        interrupted = self.engine._interrupted.is_set()
        if not interrupted and now - self._last_stop_check < self.STOP_CHECK_SECONDS:
            return
        self._last_stop_check = now
        run = self.store.get_run(self.ctx.run_id)
        if self.engine.engine_id is not None and (run.engine_id != self.engine.engine_id
                                                  or run.status in transitions.TERMINAL_RUN):
            # Taken over, or ended by another host that took this engine for dead (its beats
            # stopped: a terminal's laptop asleep): the rows are no longer this engine's.
            raise Superseded(run.engine_id)
        if self.waiting:  # values given with `mloop input` arrive through the store
            self.ctx.values.update({k: v for k, v in run.params.items() if v is not None})
        if not self.stopping and (interrupted or run.stop_requested):
            self.stopping = True
            for name in list(self.waiting):
                del self.waiting[name]
                self._set(name, "stopped", "stopped on request")
            if interrupted:
                self.store.update_run(self.ctx.run_id, stop_requested=True)
            for name, launched in list(self.running.items()):
                handler = self.engine.handler(self.steps[name].type)
                threading.Thread(target=handler.cancel, args=(launched, self.engine.settings.stop_grace_seconds),
                                 daemon=True, name=f"cancel-{name}").start()


    def _start_ready(self) -> None:
        """Start ready steps in spec order while slots are free; steps that end at once (skips,
        conditions) may make more ready, which the same loop starts."""
        while self.ready:
            if self.failed or self.stopping or len(self.running) >= self.engine.settings.max_parallel:
                return
            _, name = heapq.heappop(self.ready)
            if self.views[name].status == "pending":
                self._start(name)

    def _start(self, name: str) -> bool:
        """Start (or skip) one ready step, or look again at a waiting one; True if it finished
        at once."""
        step = self.steps[name]
        deps = self.deps[name]
        if deps and all(self.views[d].status == "skipped" for d in deps):
            self._set(name, "skipped", "all upstream steps were skipped", outputs_skipped=True)
            return True
        waited = self.views[name].status == "waiting_input"
        try:
            missing = self._missing_inputs(name)
            if missing:
                missing = self._fill_defaults(name, missing)
            if missing:
                values = " ".join(f"{m}=VALUE" for m in missing)
                self._wait(name, f"{WAITING_FOR_VALUES} {', '.join(missing)} (give it with `mloop input "
                                 f"{self.ctx.run_id[:8]} {values}`)", self.STOP_CHECK_SECONDS)
                return False
            if step.policy and step.policy.skip_conditions:
                if all(evaluate(c, self.ctx) for c in step.policy.skip_conditions):
                    text = " and ".join(describe(c, self.ctx) for c in step.policy.skip_conditions)
                    self._set(name, "skipped", f"skip condition holds: {text}", outputs_skipped=True)
                    return True
            attempt = self.views[name].attempt + 1
            handler = self.engine.handler(step.type)
            began = utcnow()  # a step done inside the engine (dataset, model) took this long
            if waited and not (self.views[name].message or "").startswith(WAITING_FOR_VALUES):
                result = handler.poll(step, self.ctx, attempt, self.engine.on_exit)
            else:
                result = handler.start(step, self.ctx, attempt, self.engine.on_exit)
        except (MloopError, InputUnavailable, OSError) as exc:
            hint = getattr(exc, "hint", None)
            self._set(name, "failed", f"{exc}" + (f" ({hint})" if hint else ""))
            self.failed = True
            return True
        if isinstance(result, Waiting):
            self._wait(name, result.reason, result.poll_seconds)
            return False
        if isinstance(result, Outcome):
            self._set(name, "running", attempt=attempt, started_at=began, at=began)
            self._apply(name, result)
            return True
        self.running[name] = result
        self.by_handle[id(result.handle)] = name
        # started_at per attempt: a retried step's duration, and the pid-reuse guard of
        # kill_tree, are about this attempt's process, not the first one's.
        self._set(name, "running", attempt=attempt, started_at=utcnow(), **result.fields)
        return False  # its exit arrives on the event queue, even if it has already happened

    def _finished(self, handle: Any, exit: JobExit) -> None:
        name = self.by_handle.pop(id(handle), None)
        if name is None:
            return
        launched = self.running.pop(name)
        if exit.exit_code != 0 and not exit.timed_out:
            # A job killed by a stop request is stopped, not failed: look at the flag again.
            if self.stopping or self.store.get_run(self.ctx.run_id).stop_requested:
                self.stopping = True
                self._set(name, "stopped", "stopped on request", exit_code=exit.exit_code)
                return
        step = self.steps[name]
        try:
            outcome = self.engine.handler(step.type).finish(step, self.ctx, launched, exit)
        except MloopError as exc:
            outcome = Outcome("failed", str(exc))
        self._apply(name, outcome)

    def _apply(self, name: str, outcome: Outcome) -> None:
        message = outcome.message
        if outcome.status == "failed":
            self.failed = True
        elif outcome.status == "stopped":
            self.stopping = True
        # What the step produced (metrics, artifacts) is committed with this transition.
        self._set(name, outcome.status, message, outcome=outcome, outputs=outcome.outputs,
                  exit_code=outcome.exit_code, **outcome.fields)
        if outcome.metrics or outcome.artifacts:
            # Steps started later in this pass read them from the store (a condition on a
            # metric, a ModelStep recording its job's metrics): commit now, not at the pass's end.
            self.flush()
        for target in outcome.skip_steps:
            if target in self.views and self.views[target].status == "pending":
                self._set(target, "skipped", f"condition step {name!r} took the other branch", outputs_skipped=True)

    def let_go(self) -> None:
        """Leave a run another engine took over: cancel this engine's jobs, write nothing."""
        self._pending = []
        for name, launched in list(self.running.items()):
            try:
                self.engine.handler(self.steps[name].type).cancel(launched, self.engine.settings.stop_grace_seconds)
            except Exception:  # noqa: BLE001 - best effort: the run is no longer this engine's
                pass

    def abort(self, reason: str) -> None:
        """End the run after an unexpected error: cancel jobs, fail what was running."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the store may be what failed
            self._pending = []
        grace = self.engine.settings.stop_grace_seconds
        for name, launched in list(self.running.items()):
            try:
                self.engine.handler(self.steps[name].type).cancel(launched, grace)
            except Exception:  # noqa: BLE001 - best effort while already failing
                pass
        try:
            for name, view in self.views.items():
                if view.status in ("running", "waiting_input"):
                    transitions.step(self.store, self.ctx.run_id, name, "failed", message=reason,
                                     expected_from=[view.status])
            transitions.run(self.store, self.ctx.run_id, "failed", message=reason,
                            expected_from=["running", "waiting_input"])
        except Exception:  # noqa: BLE001 - the store may be what failed; reconcile will finish it
            pass

    def _finish_run(self) -> RunRecord:
        for name in list(self.waiting):  # the run failed while these waited: they never ran
            del self.waiting[name]
            self._set(name, "stopped", "not continued: the run failed")
        self.flush()
        statuses = {n: v.status for n, v in self.views.items()}
        failed = [n for n, s in statuses.items() if s == "failed"]
        if self.stopping:
            status, message = "stopped", "stopped on request"
        elif failed:
            status, message = "failed", f"step{'s' if len(failed) > 1 else ''} {', '.join(failed)} failed"
        elif any(s == "pending" for s in statuses.values()):
            status, message = "failed", "some steps could not run"
        else:
            status, message = "succeeded", None
        # A stop or reconcile from another process may have ended the run already: it wins.
        transitions.run(self.store, self.ctx.run_id, status, message=message, expected_from=[self.run_status])
        return self.store.get_run(self.ctx.run_id)
