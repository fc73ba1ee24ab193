"""ReconcileOrphanedRunning: a run whose engine process died is finished on the next start.

No step stays "running" forever: its job (if still alive) is ended, the step is marked
failed with the reason, and the run failed, so ``mloop retry`` can continue it.

A run that was only waiting for input when its engine died lost nothing: it stays
``waiting_input``, owned by no engine, until the input arrives (``mloop input``,
``mloop resume``, a finished labeling task).
"""

from __future__ import annotations

import socket

import psutil

from mloop.executors.local import kill_tree
from mloop.store.base import RunRecord, Store


def engine_alive(run: RunRecord) -> bool:
    """Whether the process that runs ``run`` is still that process (pid reuse is ruled out)."""
    if run.engine_pid is None:
        return False
    if run.engine_host and run.engine_host != socket.gethostname():
        return True  # another machine's engine: not ours to judge
    try:
        process = psutil.Process(run.engine_pid)
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # killed, and its parent has not reaped it yet: it runs nothing
    except psutil.Error:
        return False
    return run.engine_started_at is None or abs(started - run.engine_started_at) < 1.0


def reconcile_run(store: Store, run: RunRecord, grace_seconds: float = 5.0) -> bool:
    """Finish ``run`` if its engine died; True if it was reconciled."""
    if run.status not in ("running", "waiting_input") or engine_alive(run):
        return False
    steps = store.list_steps(run.id)
    if not run.stop_requested and any(s.status == "waiting_input" for s in steps) \
            and not any(s.status == "running" for s in steps):
        if run.status == "running":
            store.transition_run(run.id, "waiting_input", expected_from=["running"],
                                 message="its engine ended while it waited for input; it resumes when the input arrives")
        if run.engine_pid is not None:
            store.update_run(run.id, engine_pid=None, engine_host=None, engine_started_at=None)
        return False
    reason = f"the engine process (pid {run.engine_pid}) ended while the run was {run.status}"
    for step in steps:
        if step.status not in ("running", "waiting_input"):
            continue
        if step.pid:
            kill_tree(step.pid, grace_seconds,
                      started_by=step.started_at.timestamp() if step.started_at else None)
        if run.stop_requested:
            store.transition_step(run.id, step.name, "stopped", message="stopped on request",
                                  expected_from=[step.status])
        else:
            store.transition_step(run.id, step.name, "failed", message=f"orphaned: {reason}",
                                  expected_from=[step.status])
    final = "stopped" if run.stop_requested else "failed"
    message = "stopped on request" if run.stop_requested else f"{reason}; `mloop retry {run.id[:8]}` continues it"
    return store.transition_run(run.id, final, message=message, expected_from=[run.status])


def reconcile_orphans(store: Store, grace_seconds: float = 5.0) -> list[str]:
    """Reconcile every orphaned run; returns their ids."""
    done = []
    for run in store.list_runs(status=["running", "waiting_input"], limit=10_000):
        if reconcile_run(store, run, grace_seconds):
            done.append(run.id)
    return done
