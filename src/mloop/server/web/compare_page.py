"""The console's compare page: N runs side by side.

::

    GET /ui/compare?run=ID&run=ID[&run=ID…]

Parameters, final metrics, the dataset versions the runs produced, code hashes and durations
come from :func:`mloop.runs.queries.compare_runs` (what ``mloop compare`` and
``GET /api/v1/runs/compare`` answer), rows that differ marked; every line chart a step wrote is
drawn once with one series per run (uPlot, by ``compare.js``), so curves are read against each
other. Run ids may be unique prefixes, as on the command line.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from mloop.errors import MloopError
from mloop.server.web.session import Session, require_session

router = APIRouter(include_in_schema=False)

#: At most this many runs on one page (each is a column and a series on every chart).
MAX_RUNS = 12
#: Points per series sent to the page; longer series are thinned to this many (every k-th point,
#: the last one kept) and the chart says so.
MAX_POINTS = 2000


def _thin(xs: list[Any], ys: list[Any]) -> tuple[list[Any], list[Any], int]:
    n = min(len(xs), len(ys))
    step = max(1, -(-n // MAX_POINTS))
    if step == 1:
        return xs[:n], ys[:n], 1
    keep = list(range(0, n, step))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep], step


def line_series(ctx: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    """Every line chart of the runs, ``step.key``: one ``{run, x, y}`` series per run that has it."""
    from mloop.server.web.run_page import line_axes

    metrics = ctx.store.metrics_of_runs(run_ids)
    charts: dict[str, dict[str, Any]] = {}
    for run_id in run_ids:
        for m in metrics.get(run_id, []):
            if m.type != "line chart":
                continue
            xs, ys = line_axes(m)
            xs, ys, every = _thin(list(xs), list(ys))
            chart = charts.setdefault(f"{m.step_name}.{m.key}", {"key": f"{m.step_name}.{m.key}", "series": [],
                                                                 "every": 1})
            chart["series"].append({"run": run_id, "x": xs, "y": ys})
            chart["every"] = max(chart["every"], every)
    return list(charts.values())


@router.get("/ui/compare", response_class=HTMLResponse)
def compare_page(request: Request, run: list[str] = Query(default=[], max_length=1000),
                 session: Session = Depends(require_session)) -> Response:
    from mloop.runs.queries import compare_runs
    from mloop.server.app import http_status
    from mloop.server.web.pages import render

    ctx = request.app.state.backend
    ids = [r.strip() for r in run if r.strip()]
    if len(ids) > MAX_RUNS:  # a page saying so (the query's own bound is only against abuse)
        return render(request, "error.html", status_code=400, title="Compare",
                      message=f"compare at most {MAX_RUNS} runs at once ({len(ids)} given)")
    try:
        comparison = compare_runs(ctx, ids)
    except MloopError as exc:
        return render(request, "error.html", status_code=http_status(exc), title="Compare", message=exc.message)
    runs = comparison.runs
    sections: dict[str, list[Any]] = {}
    for row in comparison.rows:
        sections.setdefault(row.section, []).append(row)
    charts = line_series(ctx, [r.id for r in runs])
    return render(request, "compare.html", runs=runs, sections=sections, differing=sum(r.differs for r in comparison.rows),
                  data={"runs": [{"id": r.id, "label": f"{r.workflow_name} #{r.number}"} for r in runs],
                        "charts": charts})
