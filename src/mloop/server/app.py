"""``create_app()``: the FastAPI app of ``mloop server``.

Every route calls a function of :mod:`mloop.services`; errors are :class:`~mloop.errors.MloopError`
answered as JSON ``{"error", "code", "type", "message", "hint"?, ...}`` with the HTTP status
of their code (:data:`HTTP_STATUS`), so a client can rebuild the same error.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from mloop.config import Settings
from mloop.errors import MissingExtraError, MloopError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mloop.context import Context

__all__ = ["HTTP_STATUS", "create_app", "http_status"]

#: ``MloopError.code`` -> HTTP status; other errors that refine ValueError are 400, the rest 500.
HTTP_STATUS: dict[str, int] = {
    "not_found": 404, "unknown_output": 404, "labeling_error": 422, "dataset_error": 422, "dataset_format": 422,
    "bad_placeholder_value": 422, "spec_invalid": 422, "bad_model": 422, "bad_input": 422,
    "dataset_conflict": 409, "label_task_completed": 409, "model_version_exists": 409, "bad_run_state": 409, "not_supported_yet": 501,
    "store_error": 503, "schema_version": 503,
}


def http_status(exc: MloopError) -> int:
    if exc.code in HTTP_STATUS:
        return HTTP_STATUS[exc.code]
    return 400 if isinstance(exc, ValueError) else 500


def create_app(settings: Settings | None = None) -> FastAPI:
    """The server's app; it opens the store and artifact store of ``settings`` (default: the
    environment and ``mloop.toml``) when it starts and closes them when it stops.

    Raises:
        MissingExtraError: FastAPI is not installed (``pip install 'mloop[serve]'``).
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
    except ImportError as exc:
        raise MissingExtraError("fastapi", "serve") from exc
    from mloop import __version__
    from mloop.server.api import labels

    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from mloop.runs import open_backend

        app.state.backend = open_backend(settings)
        try:
            yield
        finally:
            app.state.backend.close()

    app = FastAPI(title="mloop", version=__version__, lifespan=lifespan,
                  description="The mloop server: labeling tasks (more areas to come).")
    app.state.settings = settings

    @app.exception_handler(MloopError)
    async def mloop_error(request: Request, exc: MloopError) -> JSONResponse:
        return JSONResponse({"error": exc.message, **exc.to_dict()}, status_code=http_status(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        message = "bad request: " + "; ".join(problems)
        return JSONResponse({"error": message, "code": "bad_request", "type": "RequestValidationError",
                             "message": message, "hint": "see /docs for the request's shape"}, status_code=422)

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    app.include_router(labels.router, prefix="/api/v1")
    return app


def backend_of(app: Any) -> Context:
    """The backend the running app opened."""
    backend: Context = app.state.backend
    return backend
