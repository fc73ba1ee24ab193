"""The console's model pages: the registry's models, a model's versions with their metrics and
aliases, its lineage and its deployment history.

::

    GET  /ui/models                          every model
    GET  /ui/models/{name}                   versions, aliases, lineage, deployments
    POST /ui/models/{name}/alias             move an alias (``alias``, ``version``): the services
                                             that follow it switch to the version

Lineage reads facts the store already keeps: a version names the run and step that registered
it and the dataset version it was trained on; a run's job steps name in their recorded inputs
(``inputs["datasets"]``) the exact dataset versions they read; a deployment names the version a
service was given. The page draws them as a graph, dataset version → run → model version →
service (:func:`lineage_graph`: nodes and edges as JSON, laid out with dagre and drawn as SVG by
``static/lineage.js``), over the newest :data:`LINEAGE_VERSIONS` versions, with one store read
for their runs and one for those runs' step inputs whatever their number; a table under it says
the same for every version without JavaScript. For each service the page lists the spans of time each
version served (a deployment that succeeded serves until the next one that succeeded).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mloop.errors import MloopError
from mloop.server.web.session import Session, require_session

router = APIRouter(include_in_schema=False)

#: Deployments read per service for the history.
DEPLOYMENTS_PER_SERVICE = 200
#: Model versions the lineage graph draws (the newest); a note says how many older ones it leaves out.
LINEAGE_VERSIONS = 50


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


def _path(text: str) -> str:
    return quote(text, safe="")


def run_facts(ctx: Any, run_ids: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[str, str]]]]:
    """For these runs: ``{run id: {workflow, number, status}}`` (a deleted run is absent) and
    ``{run id: [(dataset, version), ...]}``, the dataset versions its job steps read (their
    recorded ``inputs["datasets"]``), in step order, each once.

    Two store reads whatever the number of runs (:meth:`~mloop.store.base.Store.runs_by_ids`,
    then only the ``datasets`` part of their steps' inputs,
    :meth:`~mloop.store.base.Store.step_inputs_of_runs`).
    """
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        return {}, {}
    runs = {run_id: {"workflow": run.workflow_name, "number": run.number, "status": run.status}
            for run_id, run in ctx.store.runs_by_ids(ids).items()}
    consumed: dict[str, list[tuple[str, str]]] = {}
    for run_id, steps in ctx.store.step_inputs_of_runs(ids, keys=("datasets",)).items():
        for step in steps:
            datasets = step.inputs.get("datasets")
            if not isinstance(datasets, dict):
                continue
            for used in datasets.values():
                if isinstance(used, dict) and used.get("dataset_name") and used.get("version_name"):
                    pair = (str(used["dataset_name"]), str(used["version_name"]))
                    seen = consumed.setdefault(run_id, [])
                    if pair not in seen:
                        seen.append(pair)
    return runs, consumed


def lineage_graph(name: str, versions: list[Any], runs: dict[str, dict[str, Any]],
                  consumed: dict[str, list[tuple[str, str]]], history: list[dict[str, Any]],
                  limit: int = LINEAGE_VERSIONS) -> dict[str, Any]:
    """The lineage as nodes and edges for ``static/lineage.js``: dataset version → run → model
    version → service, over the newest ``limit`` of ``versions`` (newest first).

    A node is ``{id, kind, label, sub, title, href, state}`` (``href`` None: nothing to open, a
    deleted run); an edge is ``[from, to]``. A version registered by hand with a dataset names
    it straight (dataset → version). Every string is data: the browser sets it as text.
    """
    shown = versions[:limit]
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str], None] = {}

    def node(node_id: str, kind: str, label: str, sub: str, href: str | None, state: str | None = None,
             title: str | None = None) -> str:
        if node_id not in nodes:
            nodes[node_id] = {"id": node_id, "kind": kind, "label": label, "sub": sub, "href": href,
                              "state": state, "title": title or f"{label} {sub}".strip()}
        return node_id

    def dataset(ds_name: str, ds_version: str) -> str:
        return node(f"dataset:{ds_name}:{ds_version}", "dataset", f"{ds_name}:{ds_version}", "dataset version",
                    f"/ui/datasets/{_path(ds_name)}?version={_path(ds_version)}",
                    title=f"dataset {ds_name} version {ds_version}")

    steps: dict[str, list[str]] = {}
    for v in shown:
        if v.run_id and v.step_name and v.step_name not in steps.setdefault(v.run_id, []):
            steps[v.run_id].append(v.step_name)
    for v in shown:
        aliases = ", ".join(v.aliases)
        model = node(f"model:{v.version}", "model", f"v{v.version}", aliases, f"#version-{v.version}",
                     title=f"model {name} version {v.version}" + (f" ({aliases})" if aliases else ""))
        trained = v.dataset or {}
        made_of = (str(trained["name"]), str(trained["version"])) if trained.get("name") and trained.get(
            "version") is not None else None
        if v.run_id:
            run = runs.get(v.run_id)
            via = ", ".join(steps.get(v.run_id, []))
            if run is not None:
                label = f"{run['workflow']} #{run['number']}"
                source = node(f"run:{v.run_id}", "run", label, f"step {via}" if via else run["status"],
                              f"/ui/runs/{_path(v.run_id)}", run["status"],
                              title=f"run {label} ({run['status']})" + (f", step {via}" if via else ""))
            else:
                source = node(f"run:{v.run_id}", "run", f"run {v.run_id[:8]}", "deleted", None, "deleted",
                              title=f"run {v.run_id} (deleted)")
            edges[(source, model)] = None
            for pair in ([made_of] if made_of else []) + consumed.get(v.run_id, []):
                edges[(dataset(*pair), source)] = None
        elif made_of:
            edges[(dataset(*made_of), model)] = None
    shown_versions = {v.version for v in shown}
    for h in history:
        served = [s["version"] for s in h["spans"] if s["version"] in shown_versions]
        if not served:
            continue
        sub = h["status"] + (f", follows {h['follows']}" if h.get("follows") else "")
        svc = node(f"service:{h['service']}", "service", h["service"], sub, f"/ui/services/{_path(h['service'])}",
                   h["status"], title=f"service {h['service']} ({sub})")
        for version in served:
            edges[(f"model:{version}", svc)] = None
    return {"nodes": list(nodes.values()), "edges": [list(e) for e in edges], "shown": len(shown),
            "total": len(versions), "hidden": len(versions) - len(shown)}


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
    deployed = ctx.store.services.latest_deployments(DEPLOYMENTS_PER_SERVICE)  # one query, every service
    for svc in list_services(ctx):
        deployments = deployed.get(svc.id, [])
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
    newest = versions[::-1]
    runs, consumed = run_facts(ctx, [v.run_id for v in newest[:LINEAGE_VERSIONS] if v.run_id])
    graph = lineage_graph(name, newest, runs, consumed, history)
    return render(request, "model.html", name=name, versions=newest, lineage=lineage, history=history, graph=graph,
                  can_act=session.allows("run"), csrf=session.csrf,
                  notice=request.query_params.get("notice"), message=request.query_params.get("error"))


@router.post("/ui/models/{name}/alias")
async def move_alias(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    from fastapi.concurrency import run_in_threadpool

    from mloop.services.models import move_alias as move

    session.require("run", "moving an alias")
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
