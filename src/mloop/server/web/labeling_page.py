"""The console's labeling pages: tasks, and the labeling view for image and text
classification.

::

    GET  /ui/labeling                              every task with its progress
    GET  /ui/labeling/{dataset}/{task}             the labeling view (label.js)
    GET  /ui/labeling/{dataset}/{task}/next        the next unlabeled sample (JSON; ?skip=ID...)
    GET  /ui/labeling/{dataset}/{task}/sample?id=  one sample (JSON), for undo
    POST /ui/labeling/{dataset}/{task}/labels      {"sample": ID, "labels": [...]} (X-CSRF-Token)
    POST /ui/labeling/{dataset}/{task}/complete    make the labeled version (form, ``csrf``)

Labels go through :func:`mloop.services.labels.submit_labels` with the console user as the
annotator, one sample at a time: the store keeps one label set per sample of a task (the last
one given), so several people labeling at once never count a sample twice and never lose one.
Each labeler starts at a different place among the unlabeled samples (an offset from their
name), so two people rarely label the same picture. Undo brings the previous sample back to be
labeled again. Completing the task makes the labeled version; a run waiting on the task whose
engine is alive (the server's own runs) goes on by itself.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mloop.errors import BadArgumentError, MloopError
from mloop.server.web.session import Session, require_session

router = APIRouter(include_in_schema=False)

#: Labelers are spread over this many of the first unlabeled samples.
SPREAD = 64


def _ctx(request: Request) -> Any:
    return request.app.state.backend


def _may_label(session: Session) -> None:
    session.require("run", "labeling")


def _row(task: Any, row: dict[str, Any]) -> dict[str, Any]:
    from urllib.parse import quote

    out = {"id": row["id"], "labels": row["labels"], "text": row.get("text"), "file": row.get("file")}
    if row.get("file") and "text" not in row:
        out["image"] = (f"/ui/datasets/{quote(task.dataset_name, safe='')}/{quote(task.base_version, safe='')}"
                        f"/file?path={quote(row['file'], safe='')}")
    return out


@router.get("/ui/labeling", response_class=HTMLResponse)
def tasks_page(request: Request, session: Session = Depends(require_session)) -> Response:
    from mloop.server.web.pages import render
    from mloop.services.labels import list_tasks, task_status

    ctx = _ctx(request)
    tasks = [task_status(ctx, t) for t in list_tasks(ctx)]
    return render(request, "labeling.html", tasks=tasks)


@router.get("/ui/labeling/{dataset}/{task}", response_class=HTMLResponse)
def label_page(request: Request, dataset: str, task: str, session: Session = Depends(require_session)) -> Response:
    from mloop.server.web.pages import render
    from mloop.services.labels import get_task, task_status

    ctx = _ctx(request)
    record = get_task(ctx, task, dataset)  # NotFoundError: the 404 page
    status = task_status(ctx, record)
    base = f"/ui/labeling/{record.dataset_name}/{record.name}"
    data = {"task": record.name, "dataset": record.dataset_name, "type": record.task_type,
            "labels": record.label_names, "status": status.to_dict(), "csrf": session.csrf,
            "can_label": session.allows("run") and record.status == "in_progress",
            "urls": {"next": base + "/next", "sample": base + "/sample", "labels": base + "/labels"}}
    return render(request, "label.html", record=record, status=status, data=data, csrf=session.csrf,
                  can_label=data["can_label"], notice=request.query_params.get("notice"),
                  message=request.query_params.get("error"))


@router.get("/ui/labeling/{dataset}/{task}/next")
def next_sample(request: Request, dataset: str, task: str, skip: list[str] = Query(default=[], max_length=500),
                session: Session = Depends(require_session)) -> JSONResponse:
    from mloop.services.labels import get_task, sample_rows

    ctx = _ctx(request)
    record = get_task(ctx, task, dataset)
    skipped = set(skip)
    rows = [r for r in sample_rows(ctx, record, labeled=False, limit=SPREAD + len(skipped)) if r["id"] not in skipped]
    if not rows:
        return JSONResponse({"sample": None}, headers={"Cache-Control": "no-store"})
    start = int(hashlib.sha256(session.user.encode()).hexdigest(), 16) % len(rows)
    return JSONResponse({"sample": _row(record, rows[start])}, headers={"Cache-Control": "no-store"})


@router.get("/ui/labeling/{dataset}/{task}/sample")
def one_sample(request: Request, dataset: str, task: str, id: str = Query(..., max_length=1024),
               session: Session = Depends(require_session)) -> JSONResponse:
    from mloop.errors import NotFoundError
    from mloop.services.labels import get_task, sample_rows

    ctx = _ctx(request)
    record = get_task(ctx, task, dataset)
    row = next((r for r in sample_rows(ctx, record) if r["id"] == id), None)
    if row is None:
        raise NotFoundError(f"task {record.name!r} has no sample {id[:200]!r}")
    return JSONResponse({"sample": _row(record, row)}, headers={"Cache-Control": "no-store"})


@router.post("/ui/labeling/{dataset}/{task}/labels")
async def label(request: Request, dataset: str, task: str, session: Session = Depends(require_session)) -> Response:
    from fastapi.concurrency import run_in_threadpool

    from mloop.server.app import http_status
    from mloop.services.labels import get_task, submit_labels, task_status

    _may_label(session)
    try:
        body = await request.json()
        sample, labels = body["sample"], body["labels"]
        if not isinstance(sample, str) or not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise BadArgumentError('send {"sample": "<id>", "labels": ["<label>", ...]}') from None
    ctx = _ctx(request)
    record = get_task(ctx, task, dataset)
    try:
        await run_in_threadpool(submit_labels, ctx, record, {sample: labels}, annotator=session.user)
    except MloopError as exc:
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=http_status(exc))
    return JSONResponse({"status": task_status(ctx, record).to_dict()})


@router.post("/ui/labeling/{dataset}/{task}/complete")
async def complete(request: Request, dataset: str, task: str, session: Session = Depends(require_session)) -> Response:
    from urllib.parse import quote

    from fastapi.concurrency import run_in_threadpool

    from mloop.services.labels import complete_task, get_task

    _may_label(session)
    form = await request.form()
    ctx = _ctx(request)
    record = get_task(ctx, task, dataset)
    page = f"/ui/labeling/{quote(record.dataset_name, safe='')}/{quote(record.name, safe='')}"
    try:
        done = await run_in_threadpool(complete_task, ctx, record, allow_partial=form.get("partial") == "on")
    except MloopError as exc:
        return RedirectResponse(f"{page}?error={quote(exc.message[:300], safe='')}", status_code=303)
    from mloop.server.app import wake_queue

    wake_queue(request.app)
    note = f"completed: the labeled version is {done.dataset_name}:{done.output_version}"
    return RedirectResponse(f"{page}?notice={quote(note, safe='')}", status_code=303)
