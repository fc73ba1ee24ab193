"""``create_app()``: the FastAPI app of ``mloop server``.

Every route calls a function of :mod:`mloop.services`; errors are :class:`~mloop.errors.MloopError`
answered as JSON ``{"error", "code", "type", "message", "hint"?, ...}`` with the HTTP status
of their code (:data:`HTTP_STATUS`), so a client can rebuild the same error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from mloop.config import Settings
from mloop.errors import MissingExtraError, MloopError
from mloop.runs.queue import QueueLimits

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mloop.context import Context

__all__ = ["HTTP_STATUS", "ServerMetrics", "backend_of", "create_app", "http_status"]

#: ``MloopError.code`` -> HTTP status; other errors that refine ValueError are 400, the rest 500.
HTTP_STATUS: dict[str, int] = {
    "not_found": 404, "unknown_output": 404, "labeling_error": 422, "dataset_error": 422, "dataset_format": 422,
    "bad_placeholder_value": 422, "spec_invalid": 422, "bad_model": 422, "bad_input": 422,
    "dataset_conflict": 409, "label_task_completed": 409, "model_version_exists": 409, "bad_run_state": 409, "not_supported_yet": 501,
    "store_error": 503, "schema_version": 503, "unauthorized": 401, "forbidden": 403,
    "schedule_exists": 409,
    "trigger_error": 400, "trigger_unauthorized": 401, "payload_too_large": 413, "git_fetch_failed": 502,
    "trigger_workflow_invalid": 422,
    "spec_error": 422, "spec_version": 422, "too_many_requests": 429,
    "user_error": 422, "user_exists": 409,
}


def http_status(exc: MloopError) -> int:
    if exc.code in HTTP_STATUS:
        return HTTP_STATUS[exc.code]
    return 400 if isinstance(exc, ValueError) else 500


def create_app(settings: Settings | None = None, *, queue: QueueLimits | None = None,
               background: bool = True) -> FastAPI:
    """The server's app; it opens the store and artifact store of ``settings`` (default: the
    environment and ``mloop.toml``) when it starts and closes them when it stops.

    Args:
        queue: how many queued runs execute at once (default: :class:`QueueLimits`).
        background: run the queue (and the other loops) in this process; False serves the API only.

    Raises:
        MissingExtraError: FastAPI is not installed (``pip install 'mloop[serve]'``).
    """
    try:
        from fastapi import Depends, FastAPI, Request, Response
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException as StarletteHTTPException
        from fastapi.responses import JSONResponse
    except ImportError as exc:
        raise MissingExtraError("fastapi", "serve") from exc
    from mloop import __version__
    from mloop.server.api import code, labels, notify, runs, schedules, triggers, users, workflows
    from mloop.server.api import mlflow as mlflow_api
    from mloop.server.api._errors import ERROR_RESPONSES
    from mloop.server.auth import requires
    from mloop.server.runtime import ServerRuntime

    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from mloop.runs import open_backend

        app.state.backend = open_backend(settings)
        runtime = ServerRuntime(app.state.backend, queue or QueueLimits())
        app.state.runtime = runtime
        app.state.dispatcher = runtime.dispatcher
        if background:
            runtime.start()
        try:
            yield
        finally:
            runtime.stop()
            app.state.backend.close()

    app = FastAPI(title="mloop", version=__version__, lifespan=lifespan, responses=ERROR_RESPONSES,
                  description="The mloop team server: runs and their queue, workflows, events, tokens, "
                              "labeling. Every endpoint but /api/v1/health and /metrics needs an API token "
                              "(`Authorization: Bearer <token>`).")
    app.state.settings = settings
    metrics = ServerMetrics()
    app.state.metrics = metrics
    from mloop.server.textcheck import LoneSurrogateGuard

    app.add_middleware(LoneSurrogateGuard)

    @app.middleware("http")
    async def timed(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(request.method, getattr(route, "path", "unmatched"), time.perf_counter() - started)
        return response

    @app.exception_handler(MloopError)
    async def mloop_error(request: Request, exc: MloopError) -> Response:
        if request.url.path.startswith("/ui/") and not request.url.path.startswith("/ui/static/") \
                and "text/html" in request.headers.get("accept", "text/html"):
            from mloop.server.web.pages import render  # a console page: the console's error page

            return render(request, "error.html", status_code=http_status(exc), title="Error", message=exc.message)
        return JSONResponse({"error": exc.message, **exc.to_dict()}, status_code=http_status(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        message = "bad request: " + "; ".join(problems)
        return JSONResponse({"error": message, "code": "bad_request", "type": "RequestValidationError",
                             "message": message, "hint": "see /docs for the request's shape"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (a body that is not JSON, no such route, a method the route
        # lacks) in the same shape as every other error.
        message = str(exc.detail)
        err_code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": message, "code": err_code, "type": "HTTPException", "message": message},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.render(app.state.backend, app.state.runtime), media_type=metrics.content_type)

    authorized = [Depends(requires())]
    app.include_router(runs.router, prefix="/api/v1", dependencies=authorized)
    app.include_router(code.router, prefix="/api/v1", dependencies=authorized)
    app.include_router(workflows.router, prefix="/api/v1", dependencies=authorized)
    app.include_router(runs.admin_router, prefix="/api/v1")
    app.include_router(users.router, prefix="/api/v1", dependencies=[Depends(requires("admin"))])
    app.include_router(users.login_router, prefix="/api/v1")  # name and password: no token yet
    app.include_router(labels.router, prefix="/api/v1", dependencies=authorized)
    app.include_router(triggers.router, prefix="/api/v1", dependencies=authorized)
    app.include_router(schedules.router, prefix="/api/v1", dependencies=authorized)
    app.include_router(notify.router, prefix="/api/v1", dependencies=authorized)
    # MLflow-compatible tracking (/api/2.0/mlflow/..., its artifacts proxy) and live metric points.
    app.include_router(mlflow_api.router, prefix="/api/v1", dependencies=authorized)
    app.include_router(mlflow_api.wire_router, dependencies=[Depends(requires(reads=mlflow_api.is_read_call))])
    # Signed per trigger (HMAC of the body with the trigger's secret): no API token.
    app.include_router(triggers.webhook_router, prefix="/api/v1")
    from mloop.server.web import mount_console

    mount_console(app)  # the web console under /ui (mloop.server.web)
    return app


def wake_queue(app: Any) -> None:
    """Have the server's queue look at once (a run was queued, resumed or retried), not at its
    next tick; nothing without a queue (``background=False``)."""
    dispatcher = getattr(app.state, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.wake()


def resume_if_left(app: Any, ctx: Context, run: Any) -> None:
    """A run given input that waited with no engine (its engine detached) goes on in the
    server's queue; one an engine still runs picks the values up by itself."""
    from mloop.runs.service import resumable

    dispatcher = getattr(app.state, "dispatcher", None)
    if dispatcher is not None and resumable(ctx, run):
        dispatcher.resume(run.id, run.workflow_name)


def backend_of(app: Any) -> Context:
    """The backend the running app opened."""
    backend: Context = app.state.backend
    return backend


class ServerMetrics:
    """The server's Prometheus metrics: runs by state, queue depth, request latency, and the
    background loops' last ticks (read when scraped)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Histogram
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        self.registry = CollectorRegistry()
        self.content_type = CONTENT_TYPE_LATEST
        self.latency = Histogram("mloop_http_request_seconds", "API request latency", ["method", "route"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0))

    def observe(self, method: str, route: str, seconds: float) -> None:
        self.latency.labels(method, route).observe(seconds)

    def render(self, ctx: Context, runtime: Any) -> bytes:
        from prometheus_client import generate_latest

        from mloop.engine.transitions import RUN_STATUSES

        lines = ["# HELP mloop_runs Runs by status.", "# TYPE mloop_runs gauge"]
        counts = ctx.store.count_runs_by_status()
        lines += [f'mloop_runs{{status="{s}"}} {counts.get(s, 0)}' for s in sorted(RUN_STATUSES)]
        lines += ["# HELP mloop_queue_depth Runs waiting in the queue.", "# TYPE mloop_queue_depth gauge",
                  f"mloop_queue_depth {ctx.store.count_queued_runs()}",
                  "# HELP mloop_queue_running Queued runs this server executes now.",
                  "# TYPE mloop_queue_running gauge", f"mloop_queue_running {len(runtime.dispatcher.running)}"]
        for name, value in sorted(runtime.gauges().items()):
            lines += [f"# TYPE mloop_{name} gauge", f"mloop_{name} {value}"]
        return ("\n".join(lines) + "\n").encode() + generate_latest(self.registry)
