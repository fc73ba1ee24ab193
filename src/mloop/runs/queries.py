"""What a door shows about runs: lists, one run in full, logs, metrics.

Layer: run service. The CLI's ``runs``/``show``/``logs``/``metrics`` and (later) the REST API
and the console read runs through these functions, so they answer the same thing.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mloop.context import Context
from mloop.errors import BadArgumentError, NotFoundError
from mloop.runner import log_tail
from mloop.store.base import TERMINAL_STEP, EventRecord, MetricRecord, ReleaseRecord, RunRecord, StepRecord

__all__ = ["Comparison", "ComparedRow", "RunDetail", "Where", "compare_runs", "filter_runs", "has_live_engine", "list_runs", "log_lines", "log_tail", "run_detail", "run_metrics",
           "step_log_path"]


#: Fields of a run's origin a filter may name (letters, digits, ``_``).
ORIGIN_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")


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
              limit: int = 20, offset: int = 0, before: str | None = None, *,
              since: datetime | None = None, until: datetime | None = None,
              origin: dict[str, str] | None = None) -> list[RunRecord]:
    """Runs, newest first, of one workflow and/or in some statuses, created in a time window,
    started by some origin (``{"kind": "git", "trigger": ..., "commit": "abc1*"}``).

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
    bad = [k for k in origin or {} if not ORIGIN_KEY.fullmatch(k)]
    if bad:
        raise BadArgumentError(f"no run origin field {bad[0][:40]!r}", hint="e.g. kind, trigger, commit, user")
    return ctx.store.list_runs(workflow, list(status) if status else None, limit, offset, before=before,
                               since=since, until=until, origin=origin)


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
            if rec.log_path and not os.path.exists(rec.log_path) and offsets[t.name] == 0 \
                    and rec.status in TERMINAL_STEP:
                stored = _stored_log(ctx, run.id, t.name)  # another machine ran it: its copy in the store
                if stored is not None:
                    offsets[t.name] = len(stored)
                    for line in stored.decode("utf-8", "replace").splitlines():
                        yield t.name, line
                continue
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


def _stored_log(ctx: Context, run_id: str, step: str) -> bytes | None:
    """A finished job's log as the job handler copied it into a remote artifact store, or None."""
    from mloop.artifacts import is_local
    from mloop.steps.job import stored_log_url

    artifacts = ctx.artifacts
    if artifacts is None or is_local(artifacts.root):
        return None
    url = stored_log_url(artifacts, run_id, step)
    return artifacts.read_bytes(url) if artifacts.exists(url) else None


# -- comparing runs and filtering them by value -----------------------------------------------------

#: The operators of a ``--where`` expression, longest first (so ``>=`` is not read as ``>``).
WHERE_OPERATORS = (">=", "<=", "==", "!=", ">", "<")
_WHERE = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(>=|<=|==|!=|>|<)\s*(.*?)\s*$")


@dataclass
class ComparedRow:
    """One thing compared across runs: a parameter, a final metric, a dataset version, a code hash
    or a duration; ``values`` has one entry per run (None where a run has none)."""

    section: str  # parameters | metrics | datasets | code | durations
    name: str
    values: list[Any]
    differs: bool


@dataclass
class Comparison:
    """Runs side by side (see :func:`compare_runs`)."""

    runs: list[RunRecord]
    rows: list[ComparedRow]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [{"id": r.id, "workflow": r.workflow_name, "number": r.number, "status": r.status}
                         for r in self.runs],
                "rows": [{"section": row.section, "name": row.name, "values": row.values, "differs": row.differs}
                         for row in self.rows]}


def final_metric(m: MetricRecord) -> float | None:
    """The value a metric ended at: a float metric's value, a line chart's last point, else None."""
    if m.type == "float":
        return m.value
    if m.type == "line chart":
        try:
            ys = m.data["y_axis"][0]["value"]
            return float(ys[-1]) if ys else None
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return None


def _seconds(start: Any, end: Any) -> float | None:
    return round((end - start).total_seconds(), 3) if start is not None and end is not None else None


def compare_runs(ctx: Context, ids: Sequence[str]) -> Comparison:
    """Runs (full ids or unique prefixes) side by side: parameters, final metrics (``step.key``),
    dataset versions their steps produced (``step.output``: ``name:version``), code hashes and
    durations (the run's and each step's, in seconds); every row says whether the runs differ.

    Raises:
        BadArgumentError: fewer than two runs, or the same run twice.
        NotFoundError: no such run, or an ambiguous prefix.
    """
    if len(ids) < 2:
        raise BadArgumentError("compare needs at least two runs", hint="e.g. mloop compare RUN RUN")
    runs = [ctx.store.get_run(i) for i in ids]
    if len({r.id for r in runs}) < len(runs):
        raise BadArgumentError("the same run is given twice", hint="give different runs")
    steps = [ctx.store.list_steps(r.id) for r in runs]
    metrics = ctx.store.metrics_of_runs([r.id for r in runs])
    rows: list[ComparedRow] = []

    def add(section: str, per_run: list[dict[str, Any]]) -> None:
        names: dict[str, None] = {}
        for found in per_run:
            names.update(dict.fromkeys(found))
        for name in names:
            values = [v.get(name) for v in per_run]
            times = [float(v) for v in values if v is not None] if section == "durations" else []
            if times and len(times) == len(values):  # timing noise is no difference
                differs = max(times) - min(times) > max(0.1, 0.1 * max(times))
            else:
                differs = any(x != values[0] for x in values[1:])
            rows.append(ComparedRow(section, name, values, differs))

    add("parameters", [dict(sorted(r.params.items())) for r in runs])
    finals: list[dict[str, Any]] = []
    for r in runs:
        seen: dict[str, Any] = {}
        for m in metrics.get(r.id, []):
            value = final_metric(m)
            if value is not None:
                seen[f"{m.step_name}.{m.key}"] = value
        finals.append(seen)
    add("metrics", finals)
    add("datasets", [{f"{s.name}.{k}": f"{v.get('dataset_name')}:{v.get('version_name')}"
                      for s in run_steps for k, v in s.outputs.items()
                      if isinstance(v, dict) and v.get("type") == "dataset"} for run_steps in steps])
    add("code", [{s.name: s.code_hash for s in run_steps if s.code_hash} for run_steps in steps])
    add("durations", [{"run": _seconds(r.started_at, r.finished_at),
                       **{s.name: _seconds(s.started_at, s.finished_at) for s in run_steps}}
                      for r, run_steps in zip(runs, steps)])
    return Comparison(runs, rows)


@dataclass(frozen=True)
class Where:
    """One ``--where`` condition: ``NAME OP VALUE``."""

    name: str
    op: str
    value: float | str
    text: str

    @classmethod
    def parse(cls, text: str) -> Where:
        """``accuracy>0.97``, ``lr<=1e-3``, ``train.loss<0.2``, ``model==resnet`` (quotes optional).

        Raises:
            BadArgumentError: not ``NAME OP VALUE`` (the message names the expression).
        """
        match = _WHERE.match(text)
        if not match or not match.group(3):
            raise BadArgumentError(f"bad --where expression {text!r}",
                                   hint="NAME OP VALUE, e.g. 'accuracy>0.97' or 'model==resnet'; NAME is a "
                                        "parameter, a float metric or STEP.METRIC; OP one of "
                                        + " ".join(WHERE_OPERATORS))
        name, op, raw = match.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            value: float | str = raw[1:-1]
        else:
            try:
                value = float(raw)
            except ValueError:
                value = raw
            if isinstance(value, float) and value != value:  # nan compares with nothing
                value = raw
        return cls(name, op, value, text)

    def holds(self, candidates: Sequence[Any]) -> bool:
        """Whether any of a run's values for the name satisfies the condition."""
        return any(_compare(v, self.op, self.value) for v in candidates)


def _compare(left: Any, op: str, right: float | str) -> bool:
    """``left OP right``: as numbers where ``right`` is one (a value that is no number then only
    differs), else as text."""
    if left is None:
        return False
    a: Any
    b: Any
    if isinstance(right, float):
        a, b = _number(left), right
        if a is None:
            return op == "!="
    else:
        a, b = (str(left).lower() if isinstance(left, bool) else str(left)), right
    return bool({">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b, "==": a == b, "!=": a != b}[op])


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _values_of(name: str, run: RunRecord, metrics: Sequence[MetricRecord]) -> list[Any]:
    """A run's values for ``name``: the parameter, else that float metric of every step that wrote
    it (newest last), else ``STEP.METRIC``."""
    if name in run.params:
        value = run.params[name]
        if isinstance(value, dict) and len(value) == 1:  # a data placeholder's {"obs_url": ...}
            value = next(iter(value.values()))
        return [value]
    found = [m.value for m in metrics if m.key == name and m.value is not None]
    if not found and "." in name:
        step, _, key = name.partition(".")
        found = [m.value for m in metrics if m.step_name == step and m.key == key and m.value is not None]
    return found


def filter_runs(ctx: Context, workflow: str | None = None, status: Sequence[str] | None = None, *,
                where: Sequence[str] = (), sort: str | None = None, limit: int = 20) -> list[RunRecord]:
    """Runs matching every ``where`` expression (see :class:`Where`), newest first or by ``sort``:
    ``METRIC`` sorts descending (best accuracy first), ``-METRIC`` ascending (lowest loss first);
    the name is read like a ``where`` name (a metric several steps wrote: the last one), and
    runs without it come last.

    Two queries however many runs: the candidate runs, then their float metrics.

    Raises:
        BadArgumentError: a malformed expression, or a name no candidate run has as a parameter
            or a metric (a filter that would quietly match nothing).
        NotFoundError: as :func:`list_runs`.
    """
    conditions = [Where.parse(w) for w in where]
    descending = True
    sort_name = sort
    if sort is not None:
        descending = not sort.startswith("-")
        sort_name = sort.lstrip("-+")
        if not sort_name or not _WHERE.match(f"{sort_name}==0"):
            raise BadArgumentError(f"bad --sort name {sort!r}", hint="METRIC (descending) or -METRIC (ascending)")
    if not conditions and sort_name is None:
        return list_runs(ctx, workflow, status, limit)
    candidates = list_runs(ctx, workflow, status, limit=10_000_000)
    metrics = ctx.store.metrics_of_runs([r.id for r in candidates], types=("float",))
    names = [c.name for c in conditions] + ([sort_name] if sort_name else [])
    for name in names:
        if candidates and not any(_values_of(name, r, metrics.get(r.id, [])) for r in candidates):
            keys = sorted({k for r in candidates for k in r.params}
                          | {m.key for ms in metrics.values() for m in ms})
            raise BadArgumentError(f"no run here has a parameter or float metric {name!r}",
                                   hint="names: " + (", ".join(keys[:30]) or "none"))
    chosen = [r for r in candidates if all(c.holds(_values_of(c.name, r, metrics.get(r.id, [])))
                                           for c in conditions)]
    if sort_name is not None:
        def key(r: RunRecord) -> tuple[int, Any]:
            values = _values_of(sort_name, r, metrics.get(r.id, []))
            number = _number(values[-1]) if values else None
            if number is None:
                return (1, 0.0)
            return (0, -number if descending else number)

        chosen.sort(key=key)  # stable: newest first among equals
    return chosen[:limit]
