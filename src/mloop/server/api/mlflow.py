"""MLflow-compatible tracking on the team server, and live metric points of runs.

* ``/api/2.0/mlflow/...``: the REST subset MLflow's Python client calls (see
  :mod:`mloop.tracking.api`), so a team points its existing clients at the server
  (``MLFLOW_TRACKING_URI=http://server``, ``MLFLOW_TRACKING_TOKEN=<an mloop API token>``);
* ``/api/2.0/mlflow-artifacts/artifacts/<path>``: the artifacts proxy (PUT, GET; GET without a
  path lists ``?path=``), stored in the artifact store under ``tracking/<run id>/artifacts/``;
* ``POST /api/v1/tracking/runs/{id}/points``: the live endpoint ``MetricLogger`` posts to;
* ``GET /api/v1/runs/{run_id}/metrics/points?step=&key=&after=``: the points of a run's jobs
  (poll with ``after`` = the last id seen), and ``GET /api/v1/runs/{run_id}/metrics/stream``:
  the same as Server-Sent Events (``event: metric``, ids are point ids, so ``Last-Event-ID``
  resumes; a separate stream because transition ids and point ids are different sequences).

Every route needs an API token (MLflow clients send ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Optional

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from mloop.context import Context
from mloop.server.api._errors import INT64_MAX
from mloop.errors import BadArgumentError
from mloop.tracking.api import TrackingApi

__all__ = ["is_read_call", "router", "wire_router"]

#: Documented routes (OpenAPI): live points.
router = APIRouter(tags=["tracking"])
#: MLflow's wire API (documented by MLflow, not in this server's schema).
wire_router = APIRouter(tags=["mlflow"])

STREAM_POLL_SECONDS = 0.25
_TERMINAL = frozenset({"succeeded", "failed", "stopped"})


#: MLflow calls that are POSTs but change nothing: a ``read`` token may make them.
_READ_POSTS = frozenset({"experiments/search", "runs/search"})


def is_read_call(request: Request) -> bool:
    """Whether ``request`` is one of MLflow's read-only POSTs (its searches)."""
    path = request.url.path
    prefix = "/api/2.0/mlflow/"
    return request.method == "POST" and path.startswith(prefix) and path[len(prefix):].strip("/") in _READ_POSTS


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.backend
    return ctx


def _api(request: Request) -> TrackingApi:
    api = getattr(request.app.state, "tracking_api", None)
    if api is None:
        ctx = _ctx(request)
        api = request.app.state.tracking_api = TrackingApi(ctx.store, ctx.artifacts)
    return api


def _answer(status: int, body: Any) -> Response:
    if isinstance(body, bytes):
        return Response(body, status_code=status, media_type="application/octet-stream")
    return JSONResponse(body, status_code=status)


@wire_router.api_route("/api/2.0/mlflow/{path:path}", methods=["GET", "POST"], include_in_schema=False)
async def mlflow_call(request: Request, path: str) -> Response:
    body = await request.body()
    api = _api(request)
    return _answer(*await run_in_threadpool(api.call, request.method, path, dict(request.query_params), body))


@wire_router.get("/api/2.0/mlflow-artifacts/artifacts", include_in_schema=False)
def list_artifacts(request: Request, path: str = "") -> Response:
    return _answer(*_api(request).list_artifacts(path))


@wire_router.api_route("/api/2.0/mlflow-artifacts/artifacts/{path:path}", methods=["GET", "PUT"],
                       include_in_schema=False)
async def artifact(request: Request, path: str) -> Response:
    api = _api(request)
    raw = request.scope.get("raw_path", b"").decode("latin-1").split("/mlflow-artifacts/artifacts/", 1)
    path = raw[1] if len(raw) == 2 else path  # still quoted: %2e%2e is checked as '..'
    if request.method == "PUT":
        data = await request.body()
        return _answer(*await run_in_threadpool(api.put_artifact, path, data))
    return _answer(*await run_in_threadpool(api.get_artifact, path))


@router.post("/tracking/runs/{tracking_run_id}/points")
async def post_points(request: Request, tracking_run_id: str) -> Response:
    """Store metric points of a tracking run: ``{"points": [{"key", "value", "step", "timestamp"}]}``."""
    body = await request.body()
    return _answer(*await run_in_threadpool(_api(request).ingest, tracking_run_id, body))


def _points(ctx: Context, run_id: str, step: str | None, key: str | None, after: int,
            limit: int) -> list[dict[str, Any]]:
    ctx.store.get_run(run_id)  # 404 for an unknown run
    steps = {r.id: r.step_name for r in ctx.store.tracking.runs_of_step(run_id, step)}
    return [{"id": p.id, "step_name": steps.get(p.tracking_run_id), "tracking_run_id": p.tracking_run_id,
             "key": p.key, "value": p.value, "step": p.step, "timestamp": p.timestamp}
            for p in ctx.store.tracking.points(list(steps), key=key, after=after, limit=limit)]


@router.get("/runs/{run_id}/metrics/points")
def metric_points(request: Request, run_id: str, step: Optional[str] = None, key: Optional[str] = None,
                  after: int = Query(0, ge=0, le=INT64_MAX),
                  limit: int = Query(10_000, ge=1, le=100_000)) -> dict[str, Any]:
    """Metric points the jobs of a run reported while running, oldest first; ``last`` is the
    ``after`` of the next poll."""
    points = _points(_ctx(request), run_id, step, key, after, limit)
    return {"points": points, "last": points[-1]["id"] if points else after}


@router.get("/runs/{run_id}/metrics/stream")
def metric_stream(request: Request, run_id: str, step: Optional[str] = None,
                  after: Optional[int] = Query(None, ge=0, le=INT64_MAX)) -> StreamingResponse:
    """The run's metric points as Server-Sent Events (``event: metric``), until the run ends."""
    ctx = _ctx(request)
    ctx.store.get_run(run_id)
    header = request.headers.get("last-event-id")
    if header is not None and (not header.isdigit() or len(header) > 18):
        raise BadArgumentError("Last-Event-ID must be a point id (a number)")
    start = int(header) if header is not None else (after or 0)

    async def frames() -> AsyncIterator[str]:
        last = start
        yield ": mloop metric stream\n\n"
        while not await request.is_disconnected():
            points = await run_in_threadpool(_points, ctx, run_id, step, None, last, 5000)
            for point in points:
                last = point["id"]
                yield f"id: {point['id']}\nevent: metric\ndata: {json.dumps(point)}\n\n"
            if not points:
                run = await run_in_threadpool(ctx.store.get_run, run_id)
                if run.status in _TERMINAL and not await run_in_threadpool(_points, ctx, run_id, step, None, last, 1):
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(STREAM_POLL_SECONDS)

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
