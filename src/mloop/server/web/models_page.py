"""The console's model pages: the registry's models, a model's versions with their metrics and
aliases, its lineage and its deployment history.

::

    GET  /ui/models                          every model
    GET  /ui/models/{name}                   versions, aliases, lineage, deployments
    POST /ui/models/{name}/alias             move an alias (``alias``, ``version``): the services
                                             that follow it switch to the version

Lineage reads facts the store already keeps: a version names the run and step that registered
it and the dataset version it was trained on; a deployment names the version a service was given.
So the page draws run → dataset version → model version → service in four columns, and for each
service the spans of time each version served (a deployment that succeeded serves until the next
one that succeeded).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mloop.errors import ForbiddenError, MloopError
from mloop.server.web.session import Session, require_session

router = APIRouter(include_in_schema=False)

#: Deployments read per service for the history.
DEPLOYMENTS_PER_SERVICE = 200


def _ctx(request: Request) -> Any:
    return request.app.state.backend


def served_spans(deployments: list[Any], current: str | None) -> list[dict[str, Any]]:
    """A service's deployments (any order) as spans ``{version, start, end}``: each succeeded
    deploy serves from when it finished until the next succeeded one finished (``end`` None:
    still serving, when it is what the service serves now)."""
    done = sorted((d for d in deployments if d.status == "succeeded"), key=lambda d: d.finished_at or d.created_at)
    spans = []
    for i, dep in enumerate(done):
        start = dep.finished_at or dep.created_at
        end = (done[i + 1].finished_at or done[i + 1].created_at) if i + 1 < len(done) else None
        if end is None and current != dep.model_version:
            end = start  # the last deploy no longer serves (the service was stopped or failed)
        spans.append({"model": dep.model_name, "version": dep.model_version, "start": start, "end": end,
                      "run_id": dep.run_id, "deployment": dep.id})
    return spans


@router.get("/ui/models", response_class=HTMLResponse)
def models_page(request: Request, session: Session = Depends(require_session)) -> Response:
    from mloop.server.web.pages import render
    from mloop.services.models import list_models

    return render(request, "models.html", models=list_models(_ctx(request)))


@router.get("/ui/models/{name}", response_class=HTMLResponse)
def model_page(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    from mloop.server.web.pages import render
    from mloop.services.models import list_model_versions
    from mloop.services.serving import list_services

    ctx = _ctx(request)
    versions = list_model_versions(ctx, name)  # NotFoundError: the 404 page
    history: list[dict[str, Any]] = []
    serving: dict[str, list[str]] = {}
    for svc in list_services(ctx):
        deployments = ctx.store.services.list_deployments(svc.id, DEPLOYMENTS_PER_SERVICE)
        current = svc.model_version if svc.model_name == name and svc.status == "running" else None
        spans = [s for s in served_spans(deployments, current) if s["model"] == name]
        if spans:
            history.append({"service": svc.name, "status": svc.status, "follows": svc.follows, "spans": spans[::-1]})
            for span in spans:
                serving.setdefault(span["version"], [])
                if svc.name not in serving[span["version"]]:
                    serving[span["version"]].append(svc.name)
    lineage = [{"version": v.version, "run_id": v.run_id, "step": v.step_name,
                "dataset": f"{v.dataset.get('name')}:{v.dataset.get('version')}" if v.dataset else None,
                "services": serving.get(v.version, [])} for v in versions[::-1]]
    return render(request, "model.html", name=name, versions=versions[::-1], lineage=lineage, history=history,
                  can_act=session.allows("run"), csrf=session.csrf,
                  notice=request.query_params.get("notice"), message=request.query_params.get("error"),
                  now=datetime.now())


@router.post("/ui/models/{name}/alias")
async def move_alias(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    from fastapi.concurrency import run_in_threadpool

    from mloop.services.models import move_alias as move

    if not session.allows("run"):
        raise ForbiddenError(f"the user {session.user!r} has scope {session.scope!r}; moving an alias needs 'run'",
                             needed="run")
    form = await request.form()
    alias, version = str(form.get("alias") or "").strip(), str(form.get("version") or "").strip()
    page = f"/ui/models/{quote(name, safe='')}"
    try:
        # followers switch (a deploy each) before this returns: off the event loop
        record, followed = await run_in_threadpool(move, _ctx(request), name, alias, version)
    except MloopError as exc:
        return RedirectResponse(f"{page}?error={quote(exc.message[:300], safe='')}", status_code=303)
    failed = [f for f in followed if getattr(f, "error", None)]
    note = f"{alias} → {record.version}" + (f"; {len(followed)} service(s) switched" if followed else "")
    if failed:
        note += f"; {len(failed)} could not switch: " + "; ".join(f"{f.service}: {f.error}" for f in failed)[:200]
    return RedirectResponse(f"{page}?notice={quote(note, safe='')}", status_code=303)
