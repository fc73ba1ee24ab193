"""The console's run page: ``/ui/runs/{id}``.

The step graph (laid out with dagre and drawn as SVG by ``static/run.js``), a step panel (inputs,
outputs, parameters, status, the log as it grows, metrics with uPlot charts), a timeline of step
durations, and the actions stop and retry. Everything here calls the same functions as the REST
API (:func:`mloop.runs.run_detail`, :func:`mloop.runs.service.stop_run` / ``retry_run``, the
event stream of :mod:`mloop.server.api.runs`, the live points of :mod:`mloop.server.api.mlflow`);
the routes under ``/ui/runs/{id}/...`` exist because the page authenticates with the console's
session cookie, which the API (bearer tokens only) does not take.

::

    GET  /ui/runs/{id}                     the page
    GET  /ui/runs/{id}/state               the run and its steps' states (JSON)
    GET  /ui/runs/{id}/events              its transitions as Server-Sent Events (``?after=``)
    GET  /ui/runs/{id}/step?name=          one step: inputs, outputs, parameters, metrics (JSON)
    GET  /ui/runs/{id}/log?name=&offset=   a step's log from a byte offset, whole lines (JSON)
    GET  /ui/runs/{id}/points?name=&after= live metric points of a step's jobs (JSON)
    POST /ui/runs/{id}/stop                stop it (form with ``csrf``)
    POST /ui/runs/{id}/retry               queue it again (form with ``csrf``)
"""

from __future__ import annotations

import os
from bisect import bisect_right
from datetime import datetime
from itertools import islice
from typing import Any, Optional
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from mloop.context import Context
from mloop.errors import MloopError, NotFoundError
from mloop.store.base import RunRecord, StepRecord
from mloop.server.web.session import Session, require_session

__all__ = ["router", "graph_of", "LOG_CHUNK_BYTES"]

router = APIRouter(include_in_schema=False)

#: The most log bytes one poll returns (the page asks again at once when there is more).
LOG_CHUNK_BYTES = 256 * 1024
_TERMINAL_STEP = frozenset({"succeeded", "failed", "stopped", "skipped"})


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.backend
    return ctx


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _step_state(s: StepRecord) -> dict[str, Any]:
    return {"name": s.name, "type": s.type, "status": s.status, "attempt": s.attempt,
            "started_at": _iso(s.started_at), "finished_at": _iso(s.finished_at), "message": s.message,
            "exit_code": s.exit_code}


def _run_state(r: RunRecord) -> dict[str, Any]:
    return {"id": r.id, "workflow": r.workflow_name, "number": r.number, "status": r.status, "attempt": r.attempt,
            "created_at": _iso(r.created_at), "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
            "message": r.message, "queued": r.status == "pending" and r.engine_pid is None}


def _ref_steps(value: Any) -> set[str]:
    """The steps whose outputs ``value`` (any JSON) refers to."""
    from mloop.spec.refs import ConsumptionRef, MetricRef, OutputVariableRef, SelectorRef, parse_ref, walk_refs

    found: set[str] = set()
    for text in walk_refs(value):
        try:
            ref = parse_ref(text)
        except ValueError:
            continue
        if isinstance(ref, (ConsumptionRef, OutputVariableRef, MetricRef)):
            found.add(ref.step)
        elif isinstance(ref, SelectorRef):
            found.update(item.step for item in ref.items)
    return found


def graph_of(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """The steps of a released spec (name, type, title) and its edges ``[from, to, kind]``:
    ``depend`` (``depend_steps``), ``data`` (an input or property refers to another step's
    output) and ``branch`` (a condition step's then/else steps)."""
    steps = [s for s in spec.get("steps", []) if isinstance(s, dict) and isinstance(s.get("name"), str)]
    names = {s["name"] for s in steps}
    edges: dict[tuple[str, str], str] = {}
    for s in steps:
        name = s["name"]
        # A data dependency is also in depend_steps (the SDK adds it): shown as data.
        for src in _ref_steps([s.get("inputs"), s.get("properties"), s.get("conditions")]):
            if src in names and src != name:
                edges.setdefault((src, name), "data")
        for dep in s.get("depend_steps") or []:
            if dep in names and dep != name:
                edges.setdefault((dep, name), "depend")
        for target in [*(s.get("if_then_steps") or []), *(s.get("else_then_steps") or [])]:
            if target in names and target != name:
                edges.setdefault((name, target), "branch")
    nodes = [{"name": s["name"], "type": s.get("type", ""), "title": s.get("title") or None} for s in steps]
    return nodes, [[a, b, kind] for (a, b), kind in edges.items()]


def _parameters(step_spec: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """A step's algorithm parameters, references to the run's placeholders resolved."""
    from mloop.spec.refs import ParameterRef, is_ref, parse_ref

    props = step_spec.get("properties") or {}
    algorithm = props.get("algorithm") if isinstance(props, dict) else None
    raw = algorithm.get("parameters") if isinstance(algorithm, dict) else None
    out: list[dict[str, Any]] = []
    for p in raw or []:
        if not isinstance(p, dict) or "name" not in p:
            continue
        value = p.get("value")
        if isinstance(value, str) and is_ref(value):
            try:
                ref = parse_ref(value)
            except ValueError:
                ref = None
            if isinstance(ref, ParameterRef):
                value = params.get(ref.name, value)
        out.append({"name": str(p["name"]), "value": value})
    return out


def _page_data(request: Request, ctx: Context, session: Session, run_id: str) -> dict[str, Any]:
    from mloop.runs.queries import run_detail

    run = ctx.store.get_run(run_id)  # 404 first; a prefix becomes the full id
    # Events first: a transition after this id is streamed to the page, so the states read
    # below can only be newer than the stream's start, never older.
    events = ctx.store.list_events(run.id)
    detail = run_detail(ctx, run.id)
    nodes, edges = graph_of(detail.release.spec)
    records = {s.name: s for s in detail.steps}
    steps = []
    for node in nodes:
        record = records.get(node["name"])
        state = _step_state(record) if record else {"name": node["name"], "type": node["type"],
                                                     "status": "not in run", "attempt": 0}
        steps.append({**state, "title": node["title"], "type": node["type"] or state.get("type")})
    in_spec = {n["name"] for n in nodes}
    steps += [{**_step_state(r), "title": None} for r in detail.steps if r.name not in in_spec]
    base = f"/ui/runs/{quote(run.id, safe='')}"
    return {
        "run": _run_state(detail.run), "steps": steps, "edges": edges,
        "last_event_id": events[-1].id if events else 0,
        "csrf": session.csrf, "can_act": session.allows("run"),
        "urls": {"page": base, "state": base + "/state", "events": base + "/events", "step": base + "/step",
                 "log": base + "/log", "points": base + "/points", "stop": base + "/stop",
                 "retry": base + "/retry", "copy": base + "/copy", "delete": base + "/delete",
                 "series": base + "/series"},
    }


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, session: Session = Depends(require_session)) -> Response:
    from mloop.server.app import http_status
    from mloop.server.web.pages import render  # the console's template environment

    try:
        data = _page_data(request, _ctx(request), session, run_id)
    except MloopError as exc:
        return render(request, "error.html", status_code=http_status(exc), title="Run", message=exc.message)
    notice = request.query_params.get("notice") or ""
    error = request.query_params.get("error") or ""
    return render(request, "run.html", data=data, run=data["run"], notice=notice[:300], error=error[:300],
                  **_waiting(_ctx(request), run_id, session))


def _waiting(ctx: Context, run_id: str, session: Session, typed: dict[str, str] | None = None,
             errors: dict[str, str] | None = None) -> dict[str, Any]:
    """What a run waiting for input asks for: the form of its delayed placeholders with no value,
    and the labeling tasks it waits on."""
    from mloop.server.web.workflow_page import delayed_fields
    from mloop.spec import load_spec

    run = ctx.store.get_run(run_id)
    if run.status != "waiting_input":
        return {"inputs": [], "label_tasks": []}
    spec = load_spec(ctx.store.get_release(run.release_id).spec, validate=False)
    from mloop.services.labels import list_tasks

    tasks = [t for t in list_tasks(ctx, status="in_progress") if t.run_id == run.id]
    return {"inputs": delayed_fields(spec, run.params, typed, errors), "label_tasks": tasks,
            "can_input": session.allows("run")}


@router.post("/ui/runs/{run_id}/input")
async def give_input(request: Request, run_id: str, session: Session = Depends(require_session)) -> Response:
    """Values for a waiting run's delayed placeholders (the API's ``POST /runs/{id}/input``)."""
    from mloop.errors import PlaceholderValueError
    from mloop.runs.service import provide_input
    from mloop.server.app import http_status
    from mloop.server.web.pages import render

    _may_act(session)
    form = await request.form()
    typed = {k[2:]: str(v) for k, v in form.multi_items() if k.startswith("v:") and isinstance(v, str)}
    values = {k: v for k, v in typed.items() if v.strip() != ""}
    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)
    try:
        if not values:
            raise PlaceholderValueError([])
        run = provide_input(ctx, run.id, values)
        from mloop.server.app import resume_if_left

        resume_if_left(request.app, ctx, run)
    except PlaceholderValueError as exc:
        errors = {p.placeholder or "": p.message for p in exc.problems}
        loose = errors.pop("", None) or ("give a value" if not exc.problems else "see the fields marked below")
        data = _page_data(request, ctx, session, run.id)
        return render(request, "run.html", status_code=422, data=data, run=data["run"], notice="", error=loose,
                      **_waiting(ctx, run.id, session, typed, errors))
    except MloopError as exc:
        return _back(run.id, error=exc.message)
    return _back(run.id, notice="values given: the run goes on")


@router.get("/ui/runs/{run_id}/state")
def run_state(request: Request, run_id: str, session: Session = Depends(require_session)) -> JSONResponse:
    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)
    return JSONResponse({"run": _run_state(run), "steps": [_step_state(s) for s in ctx.store.list_steps(run.id)]},
                        headers={"Cache-Control": "no-store"})


@router.get("/ui/runs/{run_id}/events")
def run_events(request: Request, run_id: str, after: Optional[int] = Query(None, ge=0, le=2**63 - 1),
               session: Session = Depends(require_session)) -> StreamingResponse:
    """The API's event stream of the run (the same generator), for the page's session."""
    from mloop.server.api.runs import _start_after, _stream

    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)
    return _stream(request, ctx, _start_after(request, after), run.id)


def _step_record(ctx: Context, run_id: str, name: str) -> StepRecord:
    from mloop.runs.queries import step_log_path

    return step_log_path(ctx, run_id, name)[0]  # NotFoundError naming the run's steps


@router.get("/ui/runs/{run_id}/step")
def step_detail(request: Request, run_id: str, name: str = Query(..., min_length=1, max_length=200),
                session: Session = Depends(require_session)) -> JSONResponse:
    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)
    record = _step_record(ctx, run.id, name)
    release = ctx.store.get_release(run.release_id)
    spec = next((s for s in release.spec.get("steps", []) if isinstance(s, dict) and s.get("name") == name), {})
    metrics = []
    for m in ctx.store.list_metrics(run.id, name):
        item = {"key": m.key, "title": m.title, "type": m.type, "value": m.value, "data": m.data}
        if m.type == "line chart":
            points = _series_length(m)
            if points > INLINE_POINTS:  # long: the page asks /series for what its width can show
                item["data"], item["points"] = None, points
        metrics.append(item)
    body = {**_step_state(record), "title": spec.get("title"), "description": spec.get("description"),
            "inputs": record.inputs, "outputs": record.outputs, "parameters": _parameters(spec, run.params),
            "depend_steps": spec.get("depend_steps") or [], "metrics": metrics, "has_log": bool(record.log_path)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


#: Line charts up to this many points travel whole with the step; longer ones are downsampled.
INLINE_POINTS = 4000


#: The types of a number in JSON data (``bool`` is not one, though it subclasses ``int``).
_NUMBER = (int, float)


def line_axes(m: Any) -> tuple[list[Any], list[Any]]:
    """A line chart metric's x and y values as the SDK wrote them (its first axis of each)."""
    data = m.data or {}
    xs = ((data.get("x_axis") or [{}])[0] or {}).get("value") or []
    ys = ((data.get("y_axis") or [{}])[0] or {}).get("value") or []
    return xs, ys


def _series_length(m: Any) -> int:
    """How many points :func:`_series` gives, without building them."""
    xs, ys = line_axes(m)
    return sum(1 for x in xs[:len(ys)] if type(x) in _NUMBER)


def _series(m: Any) -> tuple[list[float], list[float | None]]:
    """A line chart metric's points as numbers, sorted by x (points without a numeric x dropped)."""
    xs, ys = line_axes(m)
    n = min(len(xs), len(ys))
    xs, ys = xs[:n], ys[:n]
    # The usual series (every x a number, in order) at C speed: a million points in ~0.1 s.
    if all(type(x) in _NUMBER for x in xs):
        fx = list(map(float, xs))
        if all(a <= b for a, b in zip(fx, islice(fx, 1, None))):
            fy: list[float | None] = list(map(float, ys)) if all(type(y) in _NUMBER for y in ys) else \
                [float(y) if type(y) in _NUMBER else None for y in ys]
            return fx, fy
    pairs = []
    for x, y in zip(xs, ys):
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            pairs.append((float(x), float(y) if isinstance(y, (int, float)) and not isinstance(y, bool) else None))
    pairs.sort(key=lambda p: p[0])
    return [p[0] for p in pairs], [p[1] for p in pairs]


def downsample(xs: list[float], ys: list[float | None], buckets: int) -> tuple[list[float], list[float | None]]:
    """At most ~4 points per bucket of equal x width: the first, lowest, highest and last (M4),
    so every spike and dip a pixel column would show is kept. ``xs`` sorted."""
    if len(xs) <= 4 * buckets or buckets <= 0:
        return xs, ys
    lo, hi = xs[0], xs[-1]
    span = (hi - lo) or 1.0

    def bucket(x: float) -> int:
        return min(buckets - 1, int((x - lo) / span * buckets))

    keep: list[int] = []
    start = 0
    n = len(xs)
    while start < n:
        # the bucket's end by bisection (xs sorted, so bucket(x) never decreases): a bucket
        # costs log(n) steps in Python, its min and max run in C
        end = bisect_right(xs, bucket(xs[start]), lo=start, key=bucket)
        chosen = {start, end - 1}
        part = ys[start:end]
        if None in part:
            valued = [i for i in range(start, end) if ys[i] is not None]
            if valued:
                chosen.add(min(valued, key=lambda i: ys[i]))  # type: ignore[arg-type, return-value]
                chosen.add(max(valued, key=lambda i: ys[i]))  # type: ignore[arg-type, return-value]
        else:
            chosen.add(start + part.index(min(part)))  # type: ignore[type-var]
            chosen.add(start + part.index(max(part)))  # type: ignore[type-var]
        keep.extend(sorted(chosen))
        start = end
    return [xs[i] for i in keep], [ys[i] for i in keep]


@router.get("/ui/runs/{run_id}/series")
def step_series(request: Request, run_id: str, name: str = Query(..., min_length=1, max_length=200),
                key: str = Query(..., min_length=1, max_length=400), width: int = Query(800, ge=10, le=8000),
                x0: Optional[float] = Query(None), x1: Optional[float] = Query(None),
                session: Session = Depends(require_session)) -> JSONResponse:
    """A line chart of a step, downsampled on the server to ``width`` pixel columns over
    ``[x0, x1]`` (default: all of it): the page asks again on zoom, for full resolution where
    the view is narrow enough. ``per_pixel`` says how many points one column stands for."""
    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)
    found = next((m for m in ctx.store.list_metrics(run.id, name) if m.key == key and m.type == "line chart"), None)
    if found is None:
        raise NotFoundError(f"step {name!r} of run {run.id[:12]} has no line chart {key!r}")
    xs, ys = _series(found)
    total = len(xs)
    if x0 is not None or x1 is not None:
        lo = x0 if x0 is not None else float("-inf")
        hi = x1 if x1 is not None else float("inf")
        pick = [i for i, x in enumerate(xs) if lo <= x <= hi]
        xs, ys = [xs[i] for i in pick], [ys[i] for i in pick]
    in_view = len(xs)
    xs, ys = downsample(xs, ys, width)
    return JSONResponse({"x": xs, "y": ys, "total": total, "in_view": in_view, "shown": len(xs),
                         "per_pixel": round(in_view / width, 2) if in_view > 4 * width else None},
                        headers={"Cache-Control": "no-store"})


@router.get("/ui/runs/{run_id}/log")
def step_log(request: Request, run_id: str, name: str = Query(..., min_length=1, max_length=200),
             offset: int = Query(0, ge=0, le=2**62), session: Session = Depends(require_session)) -> JSONResponse:
    """Whole lines of a step's log from byte ``offset``; ``offset`` in the answer is the next
    poll's. A last line without its newline is held back until the step ends."""
    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)
    record = _step_record(ctx, run.id, name)
    done = record.status in _TERMINAL_STEP
    data = b""
    if record.log_path and os.path.exists(record.log_path):
        with open(record.log_path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(LOG_CHUNK_BYTES + 1)
    more = len(data) > LOG_CHUNK_BYTES
    data = data[:LOG_CHUNK_BYTES]
    if not (done and not more):  # hold a last line back until its newline is written
        cut = data.rfind(b"\n") + 1
        data = data[:cut or (len(data) if more else 0)]  # a line longer than a chunk comes in pieces
    lines = data.decode("utf-8", "replace").splitlines()
    return JSONResponse({"lines": lines, "offset": offset + len(data), "more": more, "done": done and not more},
                        headers={"Cache-Control": "no-store"})


@router.get("/ui/runs/{run_id}/points")
def step_points(request: Request, run_id: str, name: Optional[str] = Query(None, max_length=200),
                after: int = Query(0, ge=0, le=2**63 - 1), limit: int = Query(10_000, ge=1, le=100_000),
                session: Session = Depends(require_session)) -> JSONResponse:
    """The live metric points of the run's jobs (the API's ``/runs/{id}/metrics/points``)."""
    from mloop.server.api.mlflow import _points

    points = _points(_ctx(request), run_id, name, None, after, limit)
    return JSONResponse({"points": points, "last": points[-1]["id"] if points else after},
                        headers={"Cache-Control": "no-store"})


def _back(run_id: str, **message: str) -> RedirectResponse:
    query = "&".join(f"{k}={quote(v[:300], safe='')}" for k, v in message.items())
    return RedirectResponse(f"/ui/runs/{quote(run_id, safe='')}" + (f"?{query}" if query else ""), status_code=303)


def _may_act(session: Session) -> None:
    session.require("run", "stopping or retrying a run")


def _act(request: Request, run_id: str, session: Session, action: Any) -> Response:
    """A run page action: the session may act, the run exists (else the 404 page), and what
    the action refuses comes back to the run page as its message."""
    _may_act(session)
    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)
    try:
        response: Response = action(ctx, run)
        return response
    except NotFoundError:
        raise
    except MloopError as exc:
        return _back(run.id, error=exc.message)


@router.post("/ui/runs/{run_id}/copy")
def copy(request: Request, run_id: str, session: Session = Depends(require_session)) -> Response:
    """Queue a new run of the same release with the same values (the API's ``POST /runs/{id}/copy``)."""
    from mloop.runs.queue import copy_run
    from mloop.server.app import wake_queue

    def act(ctx: Context, run: RunRecord) -> Response:
        made = copy_run(ctx, run.id, origin={"kind": "copy", "user": session.user})
        wake_queue(request.app)
        return _back(made.id, notice=f"a copy of run #{run.number}")

    return _act(request, run_id, session, act)


@router.post("/ui/runs/{run_id}/delete")
def delete(request: Request, run_id: str, session: Session = Depends(require_session)) -> Response:
    """Delete an ended run and its files (the API's ``DELETE /runs/{id}``); a live run is refused."""
    from mloop.services.workflows import delete_run

    def act(ctx: Context, run: RunRecord) -> Response:
        delete_run(ctx, run.id)
        return RedirectResponse(f"/ui/runs?workflow={quote(run.workflow_name, safe='')}", status_code=303)

    return _act(request, run_id, session, act)


@router.post("/ui/runs/{run_id}/stop")
def stop(request: Request, run_id: str, session: Session = Depends(require_session)) -> Response:
    from mloop.runs.service import stop_run

    def act(ctx: Context, run: RunRecord) -> Response:
        stop_run(ctx, run.id)
        return _back(run.id, notice="stop requested")

    return _act(request, run_id, session, act)


@router.post("/ui/runs/{run_id}/retry")
def retry(request: Request, run_id: str, session: Session = Depends(require_session)) -> Response:
    """Into the queue again, as ``POST /api/v1/runs/{id}/retry`` does."""
    from mloop.runs.queue import retry_queued
    from mloop.server.app import wake_queue

    def act(ctx: Context, run: RunRecord) -> Response:
        retried = retry_queued(ctx, run.id)
        wake_queue(request.app)
        return _back(retried.id, notice=f"queued again (attempt {retried.attempt})")

    return _act(request, run_id, session, act)
