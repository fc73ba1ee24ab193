"""ReconcileOrphanedRunning: a run whose engine process died is finished on the next start.

Layer: run service. No step stays "running" forever: its work (if still alive) is cancelled
through its executor, the step is marked failed with the reason, and the run failed, so
``mloop retry`` can continue it.

A run that was only waiting for input when its engine died lost nothing: it stays
``waiting_input``, owned by no engine, until the input arrives (``mloop input``,
``mloop resume``, a finished labeling task).

TakeOverOrphanedRunning: a running run claimed by a server or worker engine (``engine_id``)
is not failed when that engine dies: a live dispatcher takes it over (the queue's
``take_over``) and :func:`prepare_takeover` makes it ready to continue — the steps that
succeeded keep their results, the ones that were running have their jobs cancelled and run
again as a new attempt.
"""

from __future__ import annotations

import socket

from mloop.context import Context
from mloop.engine import transitions
from mloop.engine.ownership import engine_alive
from mloop.store.base import RunRecord, StepRecord, StepTransition, Store

__all__ = ["LIVE_STATUSES", "cancel_step_job", "notify_quietly", "prepare_takeover", "reconcile_orphans",
           "reconcile_run"]

#: Run statuses an engine process owns; a run in one of them may have lost its engine.
LIVE_STATUSES = ["running", "waiting_input"]


def cancel_step_job(ctx: Context, step: StepRecord, grace_seconds: float) -> bool:
    """Cancel the job a step launched, through the executor that launched it (its recorded
    reference, not the engine's memory), from any process. True if something was signalled.

    A step with no reference ran no job (it ran in its engine: a deploy, an import), or was
    recorded by an mloop from before references; the latter still has its pid.
    """
    if step.executor_ref:
        from mloop.executors.base import executor_for_ref

        return executor_for_ref(step.executor_ref).cancel(step.executor_ref, grace_seconds)
    if not step.pid:
        return False
    from mloop.executors.local import kill_tree  # a row written before executor references

    return kill_tree(step.pid, grace_seconds, started_by=step.started_at.timestamp() if step.started_at else None)


def reconcile_run(ctx: Context, run: RunRecord) -> bool:
    """Finish ``run`` if its engine (or, not claimed yet, its creator) died; True if it was
    reconciled."""
    store = ctx.store
    if run.status == "pending":
        # Created by a process that died before any engine claimed it (a run waiting in a
        # queue has no creator recorded, and waits on).
        if run.engine_pid is None or engine_alive(run, store):
            return False
        _end_leftover_jobs(ctx, run)
        return transitions.run(store, run.id, "failed", expected_from=["pending"],
                               message=f"the process that created it (pid {run.engine_pid}) ended before it "
                                       f"started; `mloop retry {run.id[:8]}` runs it")
    if run.status not in LIVE_STATUSES or engine_alive(run, store):
        return False
    if run.status == "running" and run.engine_id is not None and not run.stop_requested \
            and not terminal_engine(store, run.engine_id):
        return False  # a server's or worker's run: a live dispatcher takes it over and continues it
    steps = store.list_steps(run.id)
    if not run.stop_requested and any(s.status == "waiting_input" for s in steps) \
            and not any(s.status == "running" for s in steps):
        if run.status == "running":
            transitions.run(store, run.id, "waiting_input", expected_from=["running"],
                            message="its engine ended while it waited for input; it resumes when the input arrives")
        if run.engine_pid is not None:
            store.update_run(run.id, engine_pid=None, engine_host=None, engine_started_at=None, engine_id=None)
        return False
    if run.engine_host and run.engine_host != socket.gethostname():
        reason = (f"its engine (pid {run.engine_pid} on {run.engine_host}) stopped beating while the run was "
                  f"{run.status}")
    else:
        reason = f"the engine process (pid {run.engine_pid}) ended while the run was {run.status}"
    return _finish_orphan(ctx, run, steps, reason)


def terminal_engine(store: Store, engine_id: str) -> bool:
    """Whether ``engine_id`` is a terminal's engine (``mloop run`` on a shared database): its
    runs are failed when it dies (`mloop retry` continues them where the user wants), not taken
    over by a server, which may not reach that machine's paths."""
    engine = store.engines.get(engine_id)
    return engine is not None and engine.kind == "cli"


def _finish_orphan(ctx: Context, run: RunRecord, steps: list[StepRecord], reason: str) -> bool:
    """Cancel what ``run``'s dead engine left running and end the run (stopped if a stop was
    requested, else failed, so ``mloop retry`` continues it)."""
    store = ctx.store
    grace = ctx.settings.stop_grace_seconds
    for step in steps:
        if step.status not in ("running", "waiting_input"):
            continue
        if step.status == "running":
            cancel_step_job(ctx, step, grace)
        if run.stop_requested:
            transitions.step(store, run.id, step.name, "stopped", message="stopped on request",
                             expected_from=[step.status])
        else:
            transitions.step(store, run.id, step.name, "failed", message=f"orphaned: {reason}",
                             expected_from=[step.status])
    _end_leftover_jobs(ctx, run)
    final = "stopped" if run.stop_requested else "failed"
    message = "stopped on request" if run.stop_requested else f"{reason}; `mloop retry {run.id[:8]}` continues it"
    return transitions.run(store, run.id, final, message=message, expected_from=[run.status])


def prepare_takeover(ctx: Context, run: RunRecord, dead_engine: str) -> bool:
    """Make a run this engine just took over from ``dead_engine`` ready to continue; whether
    it should be executed (False: a stop had been requested, and it is now stopped).

    Steps that succeeded (or were skipped) stay as they are and are never run again. Each step
    that was running has its job cancelled through its executor reference (the job may still
    be running on this host) and goes back to pending through ``failed``, so the engine starts
    it again as a new attempt and its history says why.
    """
    store = ctx.store
    steps = store.list_steps(run.id)
    reason = f"its engine {dead_engine[:8]} (pid {run.engine_pid} on {run.engine_host}) stopped beating"
    if run.stop_requested:
        _finish_orphan(ctx, run, steps, reason)
        return False
    grace = ctx.settings.stop_grace_seconds
    changes = []
    for step in steps:
        if step.status != "running":
            continue
        cancel_step_job(ctx, step, grace)
        changes.append(StepTransition(step.name, "failed", message=f"orphaned: {reason}", expected_from=("running",)))
        changes.append(StepTransition(step.name, "pending", message=f"taken over: runs again ({reason})",
                                      expected_from=("failed",)))
    _end_leftover_jobs(ctx, run)  # jobs it started but never recorded, on this host
    if changes:
        transitions.steps(store, run.id, changes)
    return True


def _end_leftover_jobs(ctx: Context, run: RunRecord) -> None:
    """End jobs of ``run`` that no step records: an engine that died between starting a job and
    committing its reference leaves one running, and a retry would run a second copy beside
    it. The executor finds them by the marker it gives every job's environment."""
    from mloop.errors import MloopError
    from mloop.executors.base import get_executor

    try:
        executor = get_executor(ctx.settings.executor)
    except MloopError:
        return  # an executor that can't be used here started nothing here either
    for ref in executor.jobs_of_run(run.id):
        executor.cancel(ref, ctx.settings.stop_grace_seconds)


def reconcile_orphans(ctx: Context) -> list[str]:
    """Reconcile every orphaned run; returns their ids."""
    done = []
    for run in ctx.store.list_runs(status=["pending", *LIVE_STATUSES], limit=10_000):
        if reconcile_run(ctx, run):
            done.append(run.id)
    if done:  # a killed run's failure is notified by the next command that finds it
        notify_quietly(ctx)
    return done


def notify_quietly(ctx: Context, max_seconds: float = 5.0) -> None:
    """Send pending notifications for at most ``max_seconds`` if any subscription exists (one
    small query when none is declared in settings); every error is logged, none raised."""
    try:
        if not ctx.settings.notify and not ctx.store.notify.has_subscriptions():
            return
    except Exception:  # noqa: BLE001 - a store without the notification tables notifies nobody
        return
    from mloop.notify.notifier import pump_quietly

    pump_quietly(ctx, max_seconds=max_seconds)
