"""The console's workflow page: versions and their spec diff, schedules, git triggers and
subscriptions, and the configure-and-run form generated from the workflow's placeholders.

::

    GET  /ui/workflows/{name}                    a release (?version=, default the latest),
                                                 its form (?config= prefills a saved one)
    GET  /ui/workflows/{name}/diff?a=&b=         the spec diff between two versions
    POST /ui/workflows/{name}/run                queue a run (fields ``v:<placeholder>``;
                                                 ``save_as`` also saves the values)
    POST /ui/workflows/{name}/schedules          add a schedule (``cron``, ``tz``, ``schedule``, and
                                                 ``config``: a saved configuration's values)
    POST /ui/schedules/{schedule}/{action}       pause | resume | delete
    POST /ui/workflows/{name}/subscriptions      add a subscription (``sub``, ``channel``,
                                                 ``target``, ``events``)
    POST /ui/subscriptions/{sub}/delete          remove one

Every action calls the same service functions as the REST API (``submit``, ``save_config``,
``create_schedule`` …), so the form refuses exactly what the API refuses; a placeholder's error
is shown beside its field and the page keeps what the user typed. Writes need the ``run`` scope
and the session's CSRF token (checked by :func:`~mloop.server.web.session.require_session`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mloop.errors import MloopError, PlaceholderValueError
from mloop.server.web.session import Session, require_session

router = APIRouter(include_in_schema=False)

#: How many of a workflow's newest runs are read to find the git triggers that started it.
TRIGGER_LOOKBACK_RUNS = 200


def _ctx(request: Request) -> Any:
    return request.app.state.backend


def _may_act(session: Session, what: str) -> None:
    session.require("run", what)


def _page(name: str, **query: str) -> str:
    tail = "&".join(f"{k}={quote(v[:300], safe='')}" for k, v in query.items() if v)
    return f"/ui/workflows/{quote(name, safe='')}" + (f"?{tail}" if tail else "")


def _back(name: str, **query: str) -> RedirectResponse:
    return RedirectResponse(_page(name, **query), status_code=303)


def field_kind(placeholder: dict[str, Any], enum: list[Any] | None) -> str:
    """Which form control a placeholder gets: number, text, bool, enum, json (a text area) or path."""
    if placeholder["kind"] == "data":
        return "path" if placeholder["type"] in ("obs", "data_selector") else "dataset" \
            if placeholder["type"] == "dataset" else "json"
    ptype = placeholder["type"]
    if ptype == "enum" or enum:
        return "enum"
    return {"int": "int", "float": "float", "bool": "bool", "json": "json", "list": "json"}.get(ptype, "text")


def _shown(value: Any) -> str:
    """A default or a saved value as the text a form field holds."""
    import json

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and set(value) <= {"obs_url", "obs_path"}:
        return str(value.get("obs_url") or value.get("obs_path") or "")
    if isinstance(value, dict) and "dataset_name" in value:
        version = value.get("version_name")
        return f"{value['dataset_name']}:{version}" if version else str(value["dataset_name"])
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def form_fields(view: Any, spec: Any, typed: dict[str, str], errors: dict[str, str]) -> list[dict[str, Any]]:
    """The run form's fields, one per placeholder, with what the user typed (or the default)."""
    enums = {p.name: p.enum for p in spec.parameters}
    fields = []
    for p in view.placeholders:
        if p.get("delay"):
            continue  # asked for while the run waits (the run page's input form), not before
        enum = enums.get(p["name"])
        fields.append({
            "name": p["name"], "kind": field_kind(p, enum), "type": p["type"], "data": p["kind"] == "data",
            "choices": [_shown(c) for c in enum or []], "default": _shown(p["default"]),
            "value": typed.get(p["name"], ""), "required": bool(p["required"]) and p["default"] is None,
            "description": p.get("description") or "", "error": errors.get(p["name"]),
        })
    return fields


def delayed_fields(spec: Any, given: dict[str, Any], typed: dict[str, str] | None = None,
                   errors: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Form fields for a run's delayed placeholders (``delay=True``) that have no value yet: what
    a run waiting for input asks for."""
    typed, errors = typed or {}, errors or {}
    wanted: list[dict[str, Any]] = []
    for p in spec.parameters:
        if p.delay and given.get(p.name) is None:
            wanted.append({"name": p.name, "kind": "parameter", "type": str(getattr(p.type, "value", p.type)),
                           "default": p.default, "required": p.required, "description": p.description or "",
                           "enum": p.enum})
    for d in spec.data_requirements:
        if d.delay and given.get(d.name) is None:
            wanted.append({"name": d.name, "kind": "data", "type": d.type, "default": d.default,
                           "required": d.default is None, "description": "", "enum": None})
    return [{"name": p["name"], "kind": field_kind(p, p["enum"]), "type": p["type"], "data": p["kind"] == "data",
             "choices": [_shown(c) for c in p["enum"] or []], "default": _shown(p["default"]),
             "value": typed.get(p["name"], ""), "required": bool(p["required"]) and p["default"] is None,
             "description": p["description"], "error": errors.get(p["name"])} for p in wanted]


def _triggers_of(ctx: Any, name: str) -> list[Any]:
    """The git triggers that started runs of this workflow (a trigger names a file in a
    repository, not a workflow: its runs tell which workflow the file holds)."""
    from mloop.runs import list_runs
    from mloop.triggers.service import list_triggers

    names = {(r.origin or {}).get("trigger") for r in list_runs(ctx, name, None, TRIGGER_LOOKBACK_RUNS)}
    return [t for t in list_triggers(ctx) if t.name in names]


def _workflow_page(request: Request, session: Session, name: str, version: int | None, *,
                   config: str | None = None, typed: dict[str, str] | None = None,
                   errors: dict[str, str] | None = None, error: str | None = None,
                   status_code: int = 200) -> HTMLResponse:
    from mloop.notify.rules import EVENTS
    from mloop.server.api.notify import masked_target
    from mloop.server.app import http_status
    from mloop.server.web.pages import render
    from mloop.services.schedules import list_schedules
    from mloop.services.workflows import get_config, get_release, list_configs, show_workflow
    from mloop.spec import load_spec

    ctx = _ctx(request)
    try:
        view = show_workflow(ctx, name, version)
        spec = load_spec(get_release(ctx, name, view.version).spec, validate=False)
    except MloopError as exc:
        return render(request, "error.html", status_code=http_status(exc), title="Workflow", message=exc.message)
    typed = dict(typed or {})
    if config and not typed:
        try:
            saved = get_config(ctx, name, config)
            typed = {k: _shown(v) for k, v in saved.params.items()}
        except MloopError as exc:
            error = error or exc.message
    full = session.allows("run")
    subs = [s for s in ctx.store.notify.list_subscriptions() if s.workflow_name == name]
    subscriptions = [{"name": s.name, "channel": s.channel, "events": s.events, "enabled": s.enabled,
                      "target": s.target if full else masked_target(s.channel, s.target)} for s in subs]
    return render(request, "workflow.html", status_code=status_code, view=view,
                  fields=form_fields(view, spec, typed, errors or {}), error=error, config=config or "",
                  configs=list_configs(ctx, name), schedules=list_schedules(ctx, name),
                  triggers=_triggers_of(ctx, name), subscriptions=subscriptions, events=sorted(EVENTS),
                  can_act=full, csrf=session.csrf, notice=request.query_params.get("notice"),
                  message=request.query_params.get("error"))


@router.get("/ui/workflows/{name}", response_class=HTMLResponse)
def workflow_page(request: Request, name: str, version: int | None = Query(None, ge=1, le=2**31),
                  config: str | None = Query(None, max_length=64),
                  session: Session = Depends(require_session)) -> Response:
    return _workflow_page(request, session, name, version, config=config or None)


@router.get("/ui/workflows/{name}/diff", response_class=HTMLResponse)
def workflow_diff(request: Request, name: str, a: int = Query(..., ge=1, le=2**31),
                  b: int = Query(..., ge=1, le=2**31), session: Session = Depends(require_session)) -> Response:
    from mloop.server.app import http_status
    from mloop.server.web.pages import render
    from mloop.services.workflows import diff_workflow, list_versions

    ctx = _ctx(request)
    try:
        diff = diff_workflow(ctx, name, a, b)
        versions = [r.version for r in list_versions(ctx, name)]
    except MloopError as exc:
        return render(request, "error.html", status_code=http_status(exc), title="Diff", message=exc.message)
    lines = [{"text": line, "kind": "meta" if line.startswith(("---", "+++", "@@")) else
              "add" if line.startswith("+") else "del" if line.startswith("-") else ""} for line in diff.diff]
    return render(request, "workflow_diff.html", name=name, diff=diff, lines=lines, versions=versions)


@router.post("/ui/workflows/{name}/run")
async def run_workflow(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    from mloop.runs.queue import submit
    from mloop.services.workflows import save_config

    _may_act(session, "starting a run")
    form = await request.form()
    raw_version = str(form.get("version") or "")
    version = int(raw_version) if raw_version.isdigit() else None
    typed = {key[2:]: str(value) for key, value in form.multi_items() if key.startswith("v:") and isinstance(value, str)}
    values = {k: v for k, v in typed.items() if v.strip() != ""}  # an empty field: the default
    save_as = str(form.get("save_as") or "").strip()
    # The checkbox follows a hidden "off": checked sends off, on; unchecked only off; a form
    # without it (an older page) reuses results as before.
    cache = [str(v) for v in form.getlist("cache")][-1:] != ["off"]
    ctx = _ctx(request)
    try:
        if save_as:
            save_config(ctx, name, save_as, values)
        run = submit(ctx, name, values, version=version, cache=cache,
                     origin={"kind": "console", "user": session.user, **({"config": save_as} if save_as else {})})
    except PlaceholderValueError as exc:
        errors: dict[str, str] = {}
        for problem in exc.problems:
            key = problem.placeholder or ""
            errors[key] = "; ".join(x for x in (errors.get(key), problem.message) if x)
        loose = errors.pop("", None)
        return _workflow_page(request, session, name, version, typed=typed, errors=errors,
                              error=loose or "some values are not acceptable: see the fields marked below",
                              status_code=422)
    except MloopError as exc:
        from mloop.server.app import http_status

        return _workflow_page(request, session, name, version, typed=typed, error=exc.message,
                              status_code=http_status(exc))
    from mloop.server.app import wake_queue

    wake_queue(request.app)
    return RedirectResponse(f"/ui/runs/{quote(run.id, safe='')}", status_code=303)


@router.post("/ui/workflows/{name}/schedules")
async def add_schedule(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    from mloop.services.schedules import create_schedule
    from mloop.services.workflows import get_config

    _may_act(session, "adding a schedule")
    form = await request.form()
    ctx = _ctx(request)
    config = str(form.get("config") or "").strip()
    try:
        params = get_config(ctx, name, config).params if config else {}
        made = create_schedule(ctx, name, str(form.get("cron") or "").strip(),
                               tz=str(form.get("tz") or "UTC").strip() or "UTC", params=params,
                               name=str(form.get("schedule") or "").strip() or None)
    except MloopError as exc:
        return _back(name, error=exc.message)
    return _back(name, notice=f"schedule {made.name} added")


@router.post("/ui/schedules/{schedule}/{action}")
def schedule_action(request: Request, schedule: str, action: str,
                    session: Session = Depends(require_session)) -> Response:
    from mloop.services.schedules import delete_schedule, get_schedule, pause_schedule, resume_schedule

    _may_act(session, "changing a schedule")
    acts = {"pause": pause_schedule, "resume": resume_schedule, "delete": delete_schedule}
    ctx = _ctx(request)
    record = get_schedule(ctx, schedule)  # NotFoundError: the console's 404 page
    if action not in acts:
        return _back(record.workflow_name, error=f"unknown action {action[:40]!r}: pause, resume or delete")
    try:
        acts[action](ctx, schedule)
    except MloopError as exc:
        return _back(record.workflow_name, error=exc.message)
    return _back(record.workflow_name, notice=f"schedule {schedule} {action}d".replace("eed", "ed"))


@router.post("/ui/workflows/{name}/subscriptions")
async def add_subscription(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    from mloop.notify.rules import check_target, normalize_events
    from mloop.services.workflows import get_release

    _may_act(session, "adding a subscription")
    form = await request.form()
    ctx = _ctx(request)
    get_release(ctx, name)  # NotFoundError for a workflow never released
    sub, channel = str(form.get("sub") or "").strip(), str(form.get("channel") or "").strip()
    events = [str(e) for e in form.getlist("events") if isinstance(e, str) and e]
    try:
        if not sub or len(sub) > 64:
            raise ValueError("a subscription needs a name of 1-64 characters")
        target = check_target(channel, str(form.get("target") or "").strip())
        ctx.store.notify.add_subscription(sub, channel=channel, target=target, workflow_name=name,
                                          events=normalize_events(events or None, step=None))
    except (ValueError, MloopError) as exc:
        return _back(name, error=getattr(exc, "message", None) or str(exc))
    return _back(name, notice=f"subscription {sub} added")


@router.post("/ui/subscriptions/{sub}/delete")
def remove_subscription(request: Request, sub: str, session: Session = Depends(require_session)) -> Response:
    from mloop.errors import NotFoundError

    _may_act(session, "removing a subscription")
    ctx = _ctx(request)
    found = next((s for s in ctx.store.notify.list_subscriptions() if s.name == sub), None)
    if found is None or not ctx.store.notify.remove_subscription(sub):
        raise NotFoundError(f"no subscription named {sub!r}")
    return RedirectResponse(_page(found.workflow_name, notice=f"subscription {sub} removed")
                            if found.workflow_name else "/ui/workflows", status_code=303)
