"""What a door shows about runs: lists, one run in full, logs, metrics.

Layer: run service. The CLI's ``runs``/``show``/``logs``/``metrics`` and (later) the REST API
and the console read runs through these functions, so they answer the same thing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mloop.context import Context
from mloop.errors import BadArgumentError, NotFoundError
from mloop.runner import log_tail
from mloop.store.base import TERMINAL_STEP, EventRecord, MetricRecord, ReleaseRecord, RunRecord, StepRecord

__all__ = ["RunDetail", "has_live_engine", "list_runs", "log_lines", "log_tail", "run_detail", "run_metrics",
           "step_log_path"]


@dataclass
class RunDetail:
    """One run with its steps, its state history and the release it ran."""

    run: RunRecord
    steps: list[StepRecord]
    events: list[EventRecord]
    release: ReleaseRecord


def has_live_engine(run: RunRecord) -> bool:
    """Whether a live engine process runs ``run`` (so it picks new input up by itself)."""
    from mloop.engine.ownership import engine_alive

    return engine_alive(run)


def list_runs(ctx: Context, workflow: str | None = None, status: Sequence[str] | None = None,
              limit: int = 20, offset: int = 0, before: str | None = None) -> list[RunRecord]:
    """Runs, newest first, of one workflow and/or in some statuses.

    Raises:
        BadArgumentError: a status that no run can have (a filter that would quietly match
            nothing is refused).
        NotFoundError: no workflow of that name was ever run or released here, or ``before``
            (keyset paging: only runs older than this run's full id) is no run.
    """
    from mloop.engine.transitions import RUN_STATUSES

    unknown = [s for s in status or () if s not in RUN_STATUSES]
    if unknown:
        raise BadArgumentError(f"no run status {', '.join(map(repr, unknown))}",
                               hint=f"statuses: {', '.join(sorted(RUN_STATUSES))}")
    if workflow is not None and ctx.store.latest_release(workflow) is None:
        known = sorted({r.workflow_name for r in ctx.store.list_releases()})
        shown = ", ".join(known[:10]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
        raise NotFoundError(f"no workflow named {workflow!r} has been run here",
                            hint=f"workflows: {shown}" if known else "no workflow has been run here yet")
    return ctx.store.list_runs(workflow, list(status) if status else None, limit, offset, before=before)


def run_detail(ctx: Context, run_id: str) -> RunDetail:
    """A run (full id or unique prefix) with its steps, events and release.

    Raises:
        NotFoundError: no such run, or an ambiguous prefix.
    """
    run = ctx.store.get_run(run_id)
    return RunDetail(run, ctx.store.list_steps(run.id), ctx.store.list_events(run.id),
                     ctx.store.get_release(run.release_id))


def run_metrics(ctx: Context, run_id: str, step: str | None = None) -> list[MetricRecord]:
    """The metrics a run's steps wrote (of one step, when given).

    Raises:
        NotFoundError: no such run, or the run has no step of that name.
    """
    run = ctx.store.get_run(run_id)
    if step is not None:
        step_log_path(ctx, run.id, step)  # refuses a step the run doesn't have, naming its steps
    return ctx.store.list_metrics(run.id, step)


def step_log_path(ctx: Context, run_id: str, step: str | None) -> list[StepRecord]:
    """The steps whose logs to show: one named step, or every step that has a log.

    Raises:
        NotFoundError: the run has no such step (the message lists its steps).
    """
    steps = ctx.store.list_steps(ctx.store.get_run(run_id).id)
    if step is None:
        return [s for s in steps if s.log_path]
    for s in steps:
        if s.name == step:
            return [s]
    raise NotFoundError(f"run {run_id} has no step {step!r}", hint=f"steps: {', '.join(s.name for s in steps)}")


def log_lines(ctx: Context, run_id: str, step: str | None = None, *, follow: bool = False,
              poll_seconds: float = 0.3) -> Iterator[tuple[str, str]]:
    """``(step, line)`` of the logs of a run's steps; with ``follow``, until those steps end.

    Raises:
        NotFoundError: no such run or step.
    """
    run = ctx.store.get_run(run_id)
    targets = step_log_path(ctx, run.id, step)
    offsets = {t.name: 0 for t in targets}
    while True:
        for t in targets:
            rec = ctx.store.get_step(run.id, t.name)
            if not rec.log_path or not os.path.exists(rec.log_path):
                continue
            with open(rec.log_path, "rb") as fh:
                fh.seek(offsets[t.name])
                data = fh.read()
            offsets[t.name] += len(data)
            for line in data.decode("utf-8", "replace").splitlines():
                yield t.name, line
        if not follow:
            return
        states = [ctx.store.get_step(run.id, t.name).status for t in targets]
        if all(s in TERMINAL_STEP for s in states) and ctx.store.get_run(run.id).status != "running":
            return
        time.sleep(poll_seconds)

