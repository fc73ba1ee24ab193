"""The inference server: a FastAPI app around one model folder.

Routes:

* ``POST /predict`` (and ``POST /``, ModelArts' path): JSON ``{"inputs": ...}``, a multipart
  upload (``curl -F file=@digit.png``) or a raw ``image/*`` body. Built-in handlers answer
  ``{"outputs": [...]}`` plus ``predictions`` and ``probabilities`` for classifiers (always one
  entry per instance, also for a single instance); a ``customize_service.py`` answers whatever
  its ``_postprocess`` returns.
* ``GET /health``: the process is up. ``GET /ready``: the model is loaded and the server is not
  draining (503 otherwise). ``GET /info``: model name, version, type, input shape.
* ``GET /metrics``: Prometheus text (requests by path and status, latency histogram, batch sizes).
* ``GET /docs``: the OpenAPI page.

``POST /predict`` and ``POST /`` are answered by a lean ASGI path (:class:`ServingApp`) that
skips FastAPI's routing, dependency and middleware layers: on a small CPU those cost more than
decoding the request. The routes stay registered, so ``/docs`` describes them and an app mounted
under a ``root_path`` still answers them, with the same code. JSON is read and written with
``orjson`` when it is installed (the ``serve`` extra), else with the standard library; a body
``orjson`` refuses is tried again with ``json`` (``NaN`` literals), so both accept the same
requests (one difference: an integer beyond 64 bits arrives as a float), and an answer holding
NaN or infinity is written by ``json`` as before.

Errors are JSON ``{"error": message, "code": ..., "hint": ...}``: 400 unreadable body or image,
413 body over ``max_body_bytes`` (refused from ``Content-Length`` before anything is read, or
as soon as a streamed body passes the limit), 415 a content type the model cannot take, 422
inputs of the wrong shape or dtype (the message says what was expected), 500 the user's code or
the model raised (traceback in the server log; the server keeps serving), 504 the prediction
took longer than the inference timeout, 503 the model thread is stuck (still inside a call past
that timeout: ``/health`` and ``/ready`` say ``stuck`` too, until the call returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

# This module is the server itself: only serving imports it, so FastAPI is imported at the top
# (FastAPI resolves the routes' annotations, such as Request, from the module's globals).
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

try:  # the serve extra installs it; the standard library does the same, slower
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    orjson = None  # type: ignore[assignment]

from mloop.errors import BadInputError, MloopError, ServiceCodeError
from mloop.serving.handlers import Handler, UploadedFile, load_handler
from mloop.serving.inputs import (DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_IMAGES, DEFAULT_MAX_REQUEST_PIXELS,
                                  ImageLimits, check_json_depth)

logger = logging.getLogger("mloop.serving")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Seconds a request's body may take to arrive, from its headers on (a client trickling a body
#: must not hold the server): 408 past it.
DEFAULT_BODY_TIMEOUT = 60.0
#: Deepest nesting of arrays and objects a JSON body may have (numpy takes 64 dimensions at most).
MAX_JSON_DEPTH = 64
#: Seconds one prediction may take (queue wait and the model's call) before it is answered 504.
DEFAULT_INFERENCE_TIMEOUT = 60.0
PREDICT_PATHS = ("/predict", "/")

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class BodyTooLarge(BadInputError):
    def __init__(self, limit: int, size: int | None = None) -> None:
        what = f"{size} bytes" if size is not None else "more than that"
        super().__init__(f"request body too large: this server takes at most {limit} bytes, got {what}",
                         hint="send smaller files, or start the server with a larger --max-body-bytes",
                         status=413, limit=limit)


class BodyTimeout(BadInputError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s",
                         hint="send the whole body at once; the limit is the server's body timeout",
                         status=408, body_timeout=seconds)


class ServerMetrics:
    """The Prometheus metrics of one app (its own registry, so several apps can share a process)."""

    def __init__(self, model_name: str, model_version: str, model_type: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("mloop_requests", "HTTP requests by path and status code", ["path", "status"],
                                registry=self.registry)
        self.latency = Histogram("mloop_request_duration_seconds", "Time from request to response, by path",
                                 ["path"], registry=self.registry,
                                 buckets=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10))
        sizes = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
        self.batch_size = Histogram("mloop_batch_size", "Instances per forward pass", registry=self.registry,
                                    buckets=sizes)
        self.batch_requests = Histogram("mloop_batch_requests", "Requests merged into one forward pass",
                                        registry=self.registry, buckets=sizes)
        self.inference = Histogram("mloop_inference_duration_seconds", "Time of one forward pass",
                                   registry=self.registry,
                                   buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 5))
        info = Gauge("mloop_model_info", "The served model", ["name", "version", "type"], registry=self.registry)
        info.labels(model_name, model_version, model_type).set(1)

        self._counted: dict[tuple[str, int], Any] = {}  # labelled children, looked up once
        self._timed: dict[str, Any] = {}

    def on_request(self, label: str, status: int, seconds: float) -> None:
        """Count one answered request (``label``: its path, or ``other``) and time predictions."""
        counter = self._counted.get((label, status))
        if counter is None:
            counter = self._counted[(label, status)] = self.requests.labels(label, str(status))
        counter.inc()
        if label in PREDICT_PATHS:
            timer = self._timed.get(label)
            if timer is None:
                timer = self._timed[label] = self.latency.labels(label)
            timer.observe(seconds)

    def on_batch(self, instances: int, requests: int, seconds: float) -> None:
        self.batch_size.observe(instances)
        self.batch_requests.observe(requests)
        self.inference.observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class GuardMiddleware:
    """Pure ASGI middleware: the body-size limit and request metrics (cheaper than
    ``BaseHTTPMiddleware``, which would copy every body through a stream)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ServerMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        label = path if path in PREDICT_PATHS or path in ("/health", "/ready", "/metrics", "/info") else "other"
        status = {"code": 500}
        limit = self.max_body_bytes

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        length = _content_length(scope)
        try:
            if length is not None and length > limit:
                await _send_json(send_wrapper, 413, BodyTooLarge(limit, length).to_dict(), close=True)
                return
            await self.app(scope, _limited(receive, limit) if length is None else receive, send_wrapper)
        finally:
            self.metrics.on_request(label, status["code"], time.perf_counter() - started)


class ServingApp(FastAPI):
    """The FastAPI app, except that ``POST /predict`` and ``POST /`` go straight to
    ``predict_asgi`` (set by :func:`create_app`): FastAPI's routing, dependency solving and
    middleware stack cost more per request than decoding a 5 KB JSON image. Everything else,
    ``/docs`` included (the routes are registered and described there), is FastAPI's."""

    predict_asgi: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.predict_asgi is not None and scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] in PREDICT_PATHS and not scope.get("root_path") and not self.root_path):
            await self.predict_asgi(scope, receive, send)  # type: ignore[arg-type]
            return
        await super().__call__(scope, receive, send)


def _limited(receive: Callable[[], Awaitable[dict[str, Any]]],
             limit: int) -> Callable[[], Awaitable[dict[str, Any]]]:
    """``receive`` that raises :class:`BodyTooLarge` once the body passes ``limit`` bytes (a
    chunked upload: no Content-Length to check up front)."""
    received = 0

    async def limited_receive() -> dict[str, Any]:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return limited_receive


def _body_deadline(receive: Callable[[], Awaitable[dict[str, Any]]],
                   seconds: float | None) -> Callable[[], Awaitable[dict[str, Any]]]:
    """``receive`` that raises :class:`BodyTimeout` when the body is not complete ``seconds`` after
    the request began (its headers): a deadline for the whole body, not per chunk, so trickling
    bytes does not extend it. Once the body is complete, later calls (disconnect) are left alone."""
    if not seconds:
        return receive
    deadline = asyncio.get_running_loop().time() + seconds
    complete = False

    async def receive_by_deadline() -> dict[str, Any]:
        nonlocal complete
        if complete:
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyTimeout(seconds) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return receive_by_deadline


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _content_length(scope: dict[str, Any]) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: dict[str, Any],
                     close: bool = False) -> None:
    data = json.dumps({"error": body.get("message"), **body}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


def _loads(raw: bytes) -> Any:
    """A request body's JSON. ``orjson`` first; what it refuses (``NaN`` literals) the standard
    library gets to try, whose error message is the one reported. (``orjson`` reads integers
    beyond 64 bits as floats, ``json`` as ints: the one difference.)

    Raises:
        ValueError: not JSON.
    """
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw)
    except RecursionError:  # nested deeper than the interpreter's stack (orjson stops at 1024)
        raise ValueError("arrays or objects nested too deeply") from None


def _finite(value: Any) -> bool:
    """No NaN or infinity in ``value`` (JSON has none; ``orjson`` would write ``null``), and only
    types whose ``orjson`` encoding matches the standard library's; ``False`` when unsure."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _finite(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(_finite, value))
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(value, "ndim", 0) >= 1 and type(value).__module__ == "numpy":
        if dtype.kind in "iub":
            return True
        if dtype.kind == "f" and dtype.itemsize == 8:  # float32 would be written with its own digits
            return bool(sys.modules["numpy"].isfinite(value).all())
    return False


def _dumps(body: Any, status: int = 200) -> bytes:
    """The JSON of a response. ``orjson`` (numpy arrays included) when the body holds nothing it
    would write differently from the standard library; else ``json`` as before: ``NaN`` written
    as such in answers, refused (``ValueError``) in error bodies."""
    if orjson is not None and _finite(body):
        try:
            return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError:
            pass
    return json.dumps(body, default=_json_default, allow_nan=status < 400).encode()


_PREDICT_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["inputs"], "properties": {
                "inputs": {"description": "one instance or a list of instances (nested arrays of numbers)"}}},
                "example": {"inputs": [[0.0, 0.5, 1.0]]}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary", "description": "an image file"}}}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {
        "200": {"description": "outputs (and predictions/probabilities for classifiers), one per instance",
                "content": {"application/json": {"example": {"outputs": [[-0.1, -2.3]], "predictions": ["0"],
                                                             "probabilities": [[0.9, 0.1]]}}}},
        "400": {"description": "unreadable JSON or image"},
        "413": {"description": "body over the size limit"},
        "415": {"description": "a content type this model does not take"},
        "422": {"description": "inputs of the wrong shape, dtype or fields; the message says what is expected"},
        "500": {"description": "the model or customize_service.py raised (see the server log)"},
        "503": {"description": "the model thread is stuck in an earlier call (past the inference timeout)"},
        "504": {"description": "the prediction took longer than the inference timeout"},
    },
}


def create_app(model_dir: str | Path | None = None, *, model_name: str, model_version: str = "",
               model_type: str | None = None, batching: bool = True, max_batch_size: int = 32,
               max_wait_ms: float = 5.0, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, threads: int | None = None,
               handler: Handler | None = None, inference_timeout: float | None = DEFAULT_INFERENCE_TIMEOUT,
               body_timeout: float | None = DEFAULT_BODY_TIMEOUT, max_images: int = DEFAULT_MAX_IMAGES,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS) -> Any:
    """The FastAPI app serving the model in ``model_dir``; the model is loaded here.

    Args:
        model_dir: the model folder (or pass an already built ``handler``).
        model_name, model_version: reported by ``/info``, ``/ready`` and the metrics.
        model_type: force a model type (default: detected, see :mod:`mloop.serving.loaders`).
        batching: gather concurrent requests into one forward pass.
        max_batch_size, max_wait_ms: the batching limits.
        max_body_bytes: larger request bodies get 413.
        threads: torch / onnxruntime intra-op threads (default: the library's).
        handler: a handler from :func:`mloop.serving.handlers.load_handler` (skips loading).
        inference_timeout: seconds one prediction may take before it is answered 504 (None or
            0: no limit). A model thread still inside one call past this limit is *stuck*:
            ``/health`` and ``/ready`` answer 503 ``{"status": "stuck", ...}`` and new
            predictions 503 at once (the thread is not handed more work behind the hung call),
            until the call returns; the supervisor replaces a worker that stays stuck.
        body_timeout: seconds a request body may take to arrive, from its headers on (408 past
            it; None or 0: no limit).
        max_images, max_image_pixels, max_request_pixels: images one request may carry, pixels
            one image may declare, pixels all of them together (413 beyond, from the headers,
            before anything is decoded; images are decoded on a pool of one thread per CPU).

    Raises:
        ModelLoadError: the model folder cannot be loaded.
    """
    if handler is None:
        if model_dir is None:
            raise ValueError("create_app needs model_dir or handler")
        handler = load_handler(Path(model_dir), model_name=model_name, model_type=model_type, batching=batching,
                               max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, threads=threads)
    served: Handler = handler
    if hasattr(served, "image_limits"):
        served.image_limits = ImageLimits(max_pixels=max_image_pixels, max_images=max_images,
                                          max_request_pixels=max_request_pixels)
    metrics = ServerMetrics(model_name, model_version, served.model_type)
    served.batcher.on_batch = metrics.on_batch
    timeout = inference_timeout if inference_timeout and inference_timeout > 0 else None
    info = {"model_name": model_name, "model_version": model_version, "model_dir": str(model_dir or ""),
            "max_body_bytes": max_body_bytes, "max_wait_ms": max_wait_ms, "inference_timeout": timeout,
            **served.info()}

    def stuck_for() -> float:
        """Seconds the model thread has been inside one call beyond the timeout's length (0: not stuck)."""
        busy = served.batcher.busy_for()
        return busy if timeout is not None and busy > timeout else 0.0

    def stuck_body(busy: float) -> dict[str, Any]:
        return {"status": "stuck", "stuck_seconds": round(busy, 1), "inference_timeout": timeout,
                "reason": f"the model thread has been inside one call for {busy:.0f} s, longer than the "
                          f"inference timeout ({timeout:g} s)"}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        app.state.ready = True
        yield
        app.state.ready = False
        await served.batcher.aclose(stuck_after=timeout)

    app = ServingApp(title=f"mloop · {model_name}" + (f" v{model_version}" if model_version else ""),
                     description="Inference server for one model version (mloop serve).", lifespan=lifespan)
    app.state.ready = False
    app.state.draining = False
    app.state.handler = served
    app.state.metrics = metrics

    def json_response(status: int, body: Any) -> Response:
        return Response(_dumps(body, status), status_code=status, media_type="application/json")

    def error_body(exc: MloopError) -> dict[str, Any]:
        return {"error": exc.message, **exc.to_dict()}

    async def answer(ctype: str, read_body: Callable[[], Awaitable[bytes]],
                     request: Callable[[], Request]) -> tuple[int, bytes]:
        """The status and JSON answer to one prediction request (the lean path and the routes).

        ``ctype``: the media type, lower case, no parameters; ``read_body``: the whole body;
        ``request``: a Starlette request on the same ASGI channel (multipart forms)."""
        batcher = served.batcher
        busy = stuck_for()
        if busy:
            body = stuck_body(busy)
            return 503, _dumps({"error": body["reason"], "code": "model_stuck", **body,
                                "hint": "the server is replaced by its supervisor; retry shortly"}, 503)
        try:
            with batcher.arrival():
                if ctype == "multipart/form-data":
                    files, fields = await _read_form(request(), max_body_bytes)
                    job = served.handle_files(files, fields)
                elif ctype.startswith("image/") or ctype == "application/octet-stream":
                    data = await read_body()
                    job = served.handle_files([UploadedFile("file", "body", data, ctype)], {})
                elif ctype in ("application/json", "") or ctype.endswith("+json"):
                    raw = await read_body()
                    try:
                        body = _loads(raw)
                    except ValueError as exc:
                        raise BadInputError(f"the body is not valid JSON ({exc})",
                                            hint='send {"inputs": [...]} with Content-Type: application/json',
                                            status=400) from exc
                    check_json_depth(raw, body, MAX_JSON_DEPTH)
                    # ModelArts' XGBoost/scikit-learn services json.loads the body themselves.
                    job = served.handle_raw_json(raw) if getattr(served, "raw_json", False) \
                        else served.handle_json(body)
                else:
                    raise BadInputError(f"content type {ctype!r} is not accepted",
                                        hint="send application/json, multipart/form-data or an image/* body",
                                        status=415)
            if timeout is None:
                result = await job
            else:
                try:
                    result = await asyncio.wait_for(job, timeout)
                except asyncio.TimeoutError:
                    logger.error("a prediction did not finish within the inference timeout (%g s)", timeout)
                    return 504, _dumps({"error": f"inference did not finish within the inference timeout "
                                                 f"({timeout:g} s)", "code": "inference_timeout",
                                        "inference_timeout": timeout,
                                        "hint": "the model or its service code is slow or hung; the timeout "
                                                "is the worker's --inference-timeout (inference_timeout of "
                                                "a deploy)"}, 504)
        except BadInputError as exc:
            status = int(exc.fields.get("status", 422))
            return status, _dumps(error_body(exc), status)
        except ServiceCodeError as exc:
            return 500, _dumps(error_body(exc), 500)
        except Exception as exc:  # noqa: BLE001 - logged, answered with 500, the server goes on
            logger.exception("predict failed")
            return 500, _dumps({"error": f"{type(exc).__name__}: {exc}", "code": "internal_error"}, 500)
        return 200, _dumps(result)

    async def predict(request: Request) -> Response:
        status, data = await answer(_media_type(request.headers.get("content-type", "")), request.body,
                                    lambda: request)
        return Response(data, status_code=status, media_type="application/json")

    async def predict_asgi(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                           send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """``POST /predict`` without FastAPI's layers: the same limits, answers and metrics as
        :class:`GuardMiddleware` and the ``predict`` route give."""
        started = time.perf_counter()
        length: int | None = None
        ctype = b""
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif key == b"content-type":
                ctype = value
        status = 500
        receive = _body_deadline(receive, body_timeout)
        try:
            if length is not None and length > max_body_bytes:
                status = 413
                await _send_json(send, 413, BodyTooLarge(max_body_bytes, length).to_dict(), close=True)
                return

            async def read_body() -> bytes:
                chunks: list[bytes] = []
                received = 0
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientDisconnect()
                    chunk = message.get("body", b"")
                    if chunk:
                        received += len(chunk)
                        if received > max_body_bytes:
                            raise BodyTooLarge(max_body_bytes)
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

            status, data = await answer(
                _media_type(ctype.decode("latin-1")), read_body,
                lambda: Request(scope, receive if length is not None else _limited(receive, max_body_bytes)))
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-length", str(len(data)).encode()),
                                    (b"content-type", b"application/json")]
                        + ([(b"connection", b"close")] if status == 408 else [])})
            await send({"type": "http.response.body", "body": data})
        finally:
            metrics.on_request(scope["path"], status, time.perf_counter() - started)

    app.predict_asgi = predict_asgi
    app.add_api_route("/predict", predict, methods=["POST"], summary="Predict", openapi_extra=_PREDICT_OPENAPI)
    app.add_api_route("/", predict, methods=["POST"], summary="Predict (ModelArts path)",
                      openapi_extra=_PREDICT_OPENAPI)

    @app.get("/health", summary="The process is up and its model thread is not stuck")
    async def health() -> Response:
        busy = stuck_for()
        return json_response(503, stuck_body(busy)) if busy else json_response(200, {"status": "ok"})

    @app.get("/ready", summary="The model is loaded and the server takes requests")
    async def ready(request: Request) -> Response:
        busy = stuck_for()
        if busy:
            return json_response(503, {**stuck_body(busy), "model_name": model_name,
                                       "model_version": model_version})
        ok = bool(request.app.state.ready) and not request.app.state.draining
        return json_response(200 if ok else 503, {"status": "ready" if ok else
                                                  ("draining" if request.app.state.draining else "loading"),
                                                  "model_name": model_name, "model_version": model_version})

    @app.get("/info", summary="The served model")
    async def get_info() -> Response:
        return json_response(200, info)

    @app.get("/metrics", summary="Prometheus metrics")
    async def get_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(GuardMiddleware, max_body_bytes=max_body_bytes, metrics=metrics)
    return app


async def _read_form(request: Any, max_body_bytes: int) -> tuple[list[UploadedFile], dict[str, str]]:
    try:
        form = await request.form(max_files=1000, max_fields=1000, max_part_size=max_body_bytes)
    except BadInputError:
        raise
    except Exception as exc:  # starlette's MultiPartException and parser errors
        raise BadInputError(f"the multipart body cannot be read ({exc})",
                            hint="curl -F file=@digit.png URL", status=400) from exc
    files: list[UploadedFile] = []
    fields: dict[str, str] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields[key] = value
            else:
                files.append(UploadedFile(key, value.filename or key, await value.read(), value.content_type or ""))
    finally:
        await form.close()
    return files, fields
