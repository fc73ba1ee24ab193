"""The console's service pages: managed inference services, their health and traffic, logs, and
a predict form.

::

    GET  /ui/services                  every service: status, version, requests, latency
    GET  /ui/services/{name}           one: the same, its deployments, the log's last lines
    POST /ui/services/{name}/predict   send ``json`` (a JSON body) or ``file`` (an image) and
                                       show the answer on the page

Traffic comes from each service's own Prometheus endpoint (``GET <url>/metrics``: requests by
path and status, the latency histogram), read when the page is drawn with a short timeout; a
service that does not answer shows "no metrics" rather than slowing the page. The request rate
is the change in the request count since the previous look (kept per service in memory).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mloop.errors import MloopError
from mloop.server.web.session import Session, require_session

router = APIRouter(include_in_schema=False)

#: Seconds to wait for a service's /metrics before drawing the page without them.
METRICS_TIMEOUT = 1.0
#: Lines of the service log shown.
LOG_LINES = 200
#: Largest upload or JSON body the predict form passes on.
MAX_PREDICT_BYTES = 10 * 1024 * 1024
PREDICT_PATHS = ("/predict", "/v1/models/predict")


def _ctx(request: Request) -> Any:
    return request.app.state.backend


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of a cumulative histogram ``[(upper bound, count)]`` (linear within a
    bucket, as Prometheus' histogram_quantile)."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            span = count - below
            return lower + (bound - lower) * ((rank - below) / span if span else 0)
        lower, below = bound, count
    return lower


def traffic(text: str) -> dict[str, Any]:
    """Requests, errors and predict latency quantiles from a service's Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "mloop_requests_total":
                requests += sample.value
                if str(labels.get("status", "")).startswith("5"):
                    errors += sample.value
            elif sample.name == "mloop_request_duration_seconds_bucket" and labels.get("path") in PREDICT_PATHS:
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    pairs = list(buckets.items())
    return {"requests": int(requests), "errors": int(errors), "p50": _quantile(pairs, 0.5),
            "p95": _quantile(pairs, 0.95), "predicts": int(max(buckets.values())) if buckets else 0}


def _traffic_of(request: Request, svc: Any) -> dict[str, Any] | None:
    import httpx

    if svc.status != "running" or not svc.url:
        return None
    try:
        answer = httpx.get(svc.url.rstrip("/") + "/metrics", timeout=METRICS_TIMEOUT)
        answer.raise_for_status()
        facts = traffic(answer.text)
    except (httpx.HTTPError, ValueError):
        return None
    seen = request.app.state.__dict__.setdefault("service_traffic", {})
    now = time.monotonic()
    before = seen.get(svc.id)
    seen[svc.id] = (now, facts["requests"])
    if before and 0 < now - before[0] < 600 and facts["requests"] >= before[1]:
        facts["rate"] = (facts["requests"] - before[1]) / (now - before[0])
    return facts


@router.get("/ui/services", response_class=HTMLResponse)
def services_page(request: Request, session: Session = Depends(require_session)) -> Response:
    from mloop.server.web.pages import render
    from mloop.services.serving import list_services

    services = list_services(_ctx(request))
    return render(request, "services.html", services=services,
                  traffic={s.id: _traffic_of(request, s) for s in services})


def _service_page(request: Request, session: Session, name: str, *, answer: Any = None, error: str | None = None,
                  sent: str = "", status_code: int = 200) -> HTMLResponse:
    from mloop.server.web.pages import render
    from mloop.services.serving import get_service, list_deployments, service_logs

    ctx = _ctx(request)
    svc = get_service(ctx, name)  # NotFoundError: the 404 page
    try:
        log = list(service_logs(ctx, name, tail=LOG_LINES))
    except MloopError as exc:
        log = [f"(the log cannot be read: {exc.message})"]
    shown = json.dumps(answer, indent=2, ensure_ascii=False)[:200_000] if answer is not None else None
    return render(request, "service.html", status_code=status_code, svc=svc, traffic=_traffic_of(request, svc),
                  deployments=list_deployments(ctx, name), log=log, answer=shown, error=error, sent=sent,
                  can_act=session.allows("run"), csrf=session.csrf)


@router.get("/ui/services/{name}", response_class=HTMLResponse)
def service_page(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    return _service_page(request, session, name)


@router.post("/ui/services/{name}/predict", response_class=HTMLResponse)
async def predict(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    from fastapi.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile

    from mloop.services.serving import predict as call

    session.require("run", "calling a service")
    form = await request.form()
    upload, text = form.get("file"), str(form.get("json") or "")
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(MAX_PREDICT_BYTES + 1)
            if len(data) > MAX_PREDICT_BYTES:
                raise ValueError(f"the file is larger than {MAX_PREDICT_BYTES // 2**20} MiB")
            answer = await run_in_threadpool(call, _ctx(request), name,
                                             upload=(upload.filename, data, upload.content_type or ""))
        else:
            if len(text) > MAX_PREDICT_BYTES:
                raise ValueError(f"the JSON is larger than {MAX_PREDICT_BYTES // 2**20} MiB")
            try:
                payload = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
            answer = await run_in_threadpool(call, _ctx(request), name, payload)
    except ValueError as exc:
        return _service_page(request, session, name, error=str(exc), sent=text, status_code=400)
    except MloopError as exc:
        from mloop.server.app import http_status

        return _service_page(request, session, name, error=exc.message, sent=text,
                             status_code=max(400, http_status(exc)))
    return _service_page(request, session, name, answer=answer, sent=text)
