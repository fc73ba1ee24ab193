"""The console's pages: login, Overview, Runs, Workflows (and the shared template environment
that the run page, :mod:`mloop.server.web.run_page`, renders with).

Every page reads through the same service functions as the REST API (``mloop.runs.list_runs``,
``mloop.services.workflows.list_workflows``, ``mloop.services.schedules.list_schedules``, ...).
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mloop.errors import AuthError, BadArgumentError, MloopError, TooManyRequestsError
from mloop.server.web.session import (
    COOKIE, LOGIN_COOKIE, CsrfRefused, LoginRequired, Session, is_local_next, login_url, new_login_nonce,
    require_session, security_headers, session_of,
)

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "VENDOR_FILES", "assets_present", "env", "install", "render", "router"]

log = logging.getLogger("mloop.server.web")

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
#: What build_support/mloop_build.py copies from npm into static/vendor/.
VENDOR_FILES = ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css", "dagre.min.js")
#: A background loop whose last tick is older than this is shown as a warning.
STALE_SECONDS = 30.0
PAGE_SIZE = 25

router = APIRouter(prefix="/ui", include_in_schema=False)
_assets_ok = False


def assets_present() -> bool:
    global _assets_ok
    if not _assets_ok:
        _assets_ok = all((STATIC_DIR / "vendor" / name).is_file() for name in VENDOR_FILES)
    return _assets_ok


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _when(value: datetime | None) -> str:
    v = _utc(value)
    return v.strftime("%Y-%m-%d %H:%M:%S UTC") if v else "—"


def _iso(value: datetime | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    v = _utc(value)
    return v.isoformat() if v else ""


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(max(0, seconds))
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _duration(run: Any) -> str:
    start, end = _utc(getattr(run, "started_at", None)), _utc(getattr(run, "finished_at", None))
    if start is None:
        return "—"
    return _span(((end or datetime.now(timezone.utc)) - start).total_seconds())


def _ago(value: datetime | None) -> str:
    v = _utc(value)
    if v is None:
        return "—"
    delta = (datetime.now(timezone.utc) - v).total_seconds()
    return _span(delta) + " ago" if delta >= 0 else "in " + _span(-delta)


env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=select_autoescape(default=True, default_for_string=True),
                  trim_blocks=True, lstrip_blocks=True)
def _masked_url(url: str) -> str:
    from mloop.triggers.service import mask_url

    return mask_url(url)


env.filters.update(when=_when, iso=_iso, ago=_ago, span=_span, duration=_duration, masked_url=_masked_url)
env.globals.update(static=lambda path: f"/ui/static/{path}", STALE_SECONDS=STALE_SECONDS)


def render(request: Request, template: str, status_code: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> HTMLResponse:
    """A page of ``template`` with ``request``, the session (``session``) and the active nav item."""
    context.setdefault("session", session_of(request))
    context.setdefault("path", request.url.path)
    html = env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def _ctx(request: Request) -> Any:
    from mloop.server.app import backend_of

    return backend_of(request.app)


# -- login -------------------------------------------------------------------------------------

def _login_page(request: Request, *, error: str | None = None, name: str = "", status_code: int = 200,
                headers: dict[str, str] | None = None, next_path: str | None = None) -> HTMLResponse:
    nonce = new_login_nonce()
    if next_path is None:
        next_path = request.query_params.get("next") or ""
    response = render(request, "login.html", status_code=status_code, headers=headers, session=None, error=error,
                      name=name, nonce=nonce, next=next_path if is_local_next(next_path) else "")
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/ui/login",
                        secure=request.url.scheme == "https")
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    if session_of(request) is not None:
        target = request.query_params.get("next") or ""
        return RedirectResponse(target if is_local_next(target) else "/ui/", status_code=303)
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    import hmac

    from mloop.server.api.users import login_user
    from mloop.store.users import MAX_PASSWORD

    form = await request.form()
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    again = functools.partial(_login_page, request, name=name, next_path=str(form.get("next") or ""))
    nonce, cookie = str(form.get("csrf") or ""), request.cookies.get(LOGIN_COOKIE) or ""
    if not nonce or not cookie or not hmac.compare_digest(nonce, cookie):
        return again(error="The form expired; please log in again.", status_code=403)
    if not (0 < len(name) <= 64 and 0 < len(password) <= MAX_PASSWORD):
        return again(error="Wrong user name or password.", status_code=401)
    try:
        _user, _record, text = login_user(request, name, password)
    except TooManyRequestsError as exc:
        return again(error=exc.message, status_code=429, headers={"Retry-After": str(exc.retry_after)})
    except AuthError:
        return again(error="Wrong user name or password.", status_code=401)
    target = str(form.get("next") or "")
    response = RedirectResponse(target if is_local_next(target) else "/ui/", status_code=303)
    response.set_cookie(COOKIE, text, httponly=True, samesite="strict", path="/ui",
                        secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
def logout(request: Request, session: Session = Depends(require_session)) -> Response:
    _ctx(request).store.tokens.revoke(session.token.id)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# -- overview ------------------------------------------------------------------------------------

LOOP_TITLES = {"queue": "Queue (dispatcher)", "scheduler": "Scheduler", "notifier": "Notifier"}


def loop_health(request: Request, now: float | None = None) -> list[dict[str, Any]]:
    """Each background loop's last tick and whether it is stale (older than STALE_SECONDS, or never)."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return []
    now = time.time() if now is None else now
    gauges = runtime.gauges()
    out = []
    for key, value in gauges.items():
        if not key.endswith("_last_tick_seconds"):
            continue
        name = key[: -len("_last_tick_seconds")]
        last = value or None
        age = now - last if last else None
        out.append({"name": name, "title": LOOP_TITLES.get(name, name.capitalize()), "last": last, "age": age,
                    "stale": age is None or age > STALE_SECONDS, "errors": int(gauges.get(f"{name}_errors", 0))})
    return out


def overview_data(request: Request) -> dict[str, Any]:
    from mloop.engine.transitions import RUN_STATUSES
    from mloop.runs import list_runs
    from mloop.services.schedules import list_schedules, next_fire_times

    ctx = _ctx(request)
    counts = ctx.store.count_runs_by_status()
    order = ["running", "pending", "waiting", "stopping", "succeeded", "failed", "stopped"]
    states = [s for s in order if s in RUN_STATUSES] + sorted(set(RUN_STATUSES) - set(order))
    now = datetime.now(timezone.utc)
    fires = []
    for sched in list_schedules(ctx):
        if sched.paused:
            continue
        upcoming = next_fire_times(sched, now, 1)
        if upcoming:
            fires.append({"schedule": sched, "at": upcoming[0]})
    fires.sort(key=lambda f: f["at"])
    runtime = getattr(request.app.state, "runtime", None)
    return {
        "counts": [(s, counts.get(s, 0)) for s in states],
        "total": sum(counts.values()),
        "recent": list_runs(ctx, limit=10),
        "fires": fires[:10],
        "loops": loop_health(request),
        "queued": ctx.store.count_queued_runs(),
        "executing": len(runtime.dispatcher.running) if runtime is not None else 0,
        "now": now,
    }


@router.get("")
def root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/")
def overview(request: Request, session: Session = Depends(require_session)) -> Response:
    return render(request, "overview.html", **overview_data(request))


@router.get("/partials/overview")
def overview_live(request: Request, session: Session = Depends(require_session)) -> Response:
    return render(request, "_overview_live.html", **overview_data(request))


# -- runs ----------------------------------------------------------------------------------------

#: "Started by" choices of the runs list (a run's ``origin.kind``).
ORIGIN_KINDS = ("api", "console", "copy", "git", "schedule")


def _day(text: str | None, field: str, end: bool = False) -> datetime | None:
    """A ``YYYY-MM-DD`` (or ISO date-time) filter value as UTC; a day's end is the next midnight."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadArgumentError(f"{field}: {text[:40]!r} is not a date", hint="YYYY-MM-DD, e.g. 2026-12-01") from None
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if end and len(text.strip()) == 10:
        value += timedelta(days=1)
    return value


@router.get("/runs")
def runs_page(request: Request, workflow: str | None = None, state: str | None = None, before: str | None = None,
              limit: int = PAGE_SIZE, since: str | None = Query(None, max_length=40),
              until: str | None = Query(None, max_length=40), by: str | None = Query(None, max_length=32),
              trigger: str | None = Query(None, max_length=64), commit: str | None = Query(None, max_length=64),
              session: Session = Depends(require_session)) -> Response:
    from mloop.engine.transitions import RUN_STATUSES
    from mloop.runs import list_runs
    from mloop.server.app import http_status
    from mloop.services.workflows import list_workflows

    ctx = _ctx(request)
    workflow, state, before = workflow or None, state or None, before or None
    limit = max(1, min(int(limit), 200))
    error, status_code, runs, older = None, 200, [], None
    texts = {"since": since or "", "until": until or "", "by": by or "", "trigger": trigger or "",
             "commit": (commit or "").strip()}
    origin = {k: v for k, v in {"kind": texts["by"], "trigger": texts["trigger"],
                                "commit": texts["commit"] + "*" if texts["commit"] else ""}.items() if v}
    try:
        found = list_runs(ctx, workflow, [state] if state else None, limit + 1, before=before,
                          since=_day(since, "since"), until=_day(until, "until", end=True), origin=origin or None)
        runs = found[:limit]
        older = runs[-1].id if len(found) > limit else None
    except MloopError as exc:
        error, status_code = exc.message + (f" ({exc.hint})" if exc.hint else ""), http_status(exc)
    filters = {k: v for k, v in {"workflow": workflow, "state": state, **texts}.items() if v}
    if limit != PAGE_SIZE:
        filters["limit"] = str(limit)
    return render(request, "runs.html", status_code=status_code, runs=runs, older=older, error=error,
                  workflow=workflow or "", state=state or "", before=before, filters=filters, texts=texts,
                  workflows=[w.name for w in list_workflows(ctx)], states=sorted(RUN_STATUSES),
                  kinds=ORIGIN_KINDS)


#: A plain run page, mounted only while mloop.server.web.run_page (the full one) is absent.
fallback_router = APIRouter(prefix="/ui", include_in_schema=False)


@fallback_router.get("/runs/{run_id}")
def _fallback_run_page(request: Request, run_id: str, session: Session = Depends(require_session)) -> Response:
    from mloop.runs import run_detail
    from mloop.server.app import http_status

    try:
        detail = run_detail(_ctx(request), run_id)
    except MloopError as exc:
        return render(request, "error.html", status_code=http_status(exc), title="Run", message=exc.message)
    return render(request, "run_basic.html", detail=detail, run=detail.run)


# -- workflows -----------------------------------------------------------------------------------

@router.get("/workflows")
def workflows_page(request: Request, session: Session = Depends(require_session)) -> Response:
    from mloop.services.workflows import list_workflows

    return render(request, "workflows.html", workflows=list_workflows(_ctx(request)))


# -- mounting ------------------------------------------------------------------------------------

def install(app: Any) -> None:
    from starlette.staticfiles import StaticFiles

    @app.middleware("http")
    async def console_headers(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if not (path == "/ui" or path.startswith("/ui/")):
            return await call_next(request)
        static = path.startswith("/ui/static/")
        if not static and not assets_present():
            response: Any = render(request, "unbuilt.html", status_code=503, session=None)
        else:
            response = await call_next(request)
        for key, value in security_headers(request.url.scheme == "https", static).items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("hx-request"):
            # a partial refresh: send the whole page to the login, then back to where the user was
            current = urlsplit(request.headers.get("hx-current-url", ""))
            back = current.path + (f"?{current.query}" if current.query else "")
            return Response(status_code=204, headers={"HX-Redirect": login_url(back)})
        target = login_url(exc.next_path)
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return render(request, "error.html", status_code=403, title="Refused", message=str(exc))

    try:
        from mloop.server.web import run_page
    except ImportError as exc:
        if getattr(exc, "name", None) != "mloop.server.web.run_page":
            log.warning("the run page (mloop.server.web.run_page) did not import: %s", exc)
        run_page = None  # type: ignore[assignment]
    page_router = getattr(run_page, "router", None)
    if page_router is not None:
        app.include_router(page_router)
    else:
        app.include_router(fallback_router)
    from mloop.server.web.compare_page import router as compare_router
    from mloop.server.web.workflow_page import router as workflow_router

    app.include_router(workflow_router)
    app.include_router(compare_router)
    from mloop.server.web.settings_page import router as settings_router

    app.include_router(settings_router)
    from mloop.server.web.models_page import router as models_router

    app.include_router(models_router)
    from mloop.server.web.services_page import router as services_router

    app.include_router(services_router)
    from mloop.server.web.datasets_page import router as datasets_router

    app.include_router(datasets_router)
    from mloop.server.web.labeling_page import router as labeling_router

    app.include_router(labeling_router)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=str(STATIC_DIR), check_dir=False), name="ui-static")
