"""``/api/v1/label-tasks``: labeling tasks over HTTP (:mod:`mloop.services.labels` behind it).

::

    GET  /label-tasks                          tasks with their progress (?dataset=, ?status=)
    POST /label-tasks                          create one {"dataset", "version"?, "name", "task_type", "labels"?}
    GET  /label-tasks/{name}                   its status: total, labeled, remaining, by label
    GET  /label-tasks/{name}/samples           its samples (?labeled=false for those still to label)
    POST /label-tasks/{name}/labels            {"labels": {"sample_id": ["cat"]}, "annotator"?}
    POST /label-tasks/{name}/complete          {"allow_partial"?: false}: the labeled version

``?dataset=NAME`` tells apart tasks of the same name in two datasets. Completing a task resumes
no run by itself: a run whose engine is alive picks the completion up within a second; a run
left with no engine (``mloop run --no-wait``, a restart) goes on with ``mloop resume RUN`` (or
``mloop label complete TASK`` on the machine that runs it); the response lists both kinds.
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mloop.context import Context
from mloop.services.labels import (
    complete_task,
    create_task,
    get_task,
    list_tasks,
    runs_waiting_on,
    sample_rows,
    submit_labels,
    task_status,
)

router = APIRouter(tags=["labeling"])


def _backend(request: Request) -> Context:
    backend: Context = request.app.state.backend
    return backend


class CreateTask(BaseModel):
    dataset: str = Field(max_length=200, description="the dataset to label")
    version: Optional[str] = Field(None, max_length=200, description="its version (default: the latest)")
    name: str = Field(max_length=200, description="the task's name, unique in the dataset")
    task_type: Any = Field("IMAGE_CLASSIFICATION", description="a LabelTaskTypeEnum name or number")
    labels: Optional[list[str]] = Field(None, description="the label set (default: the version's classes)")
    description: str = Field("", max_length=10_000)


class SubmitLabels(BaseModel):
    labels: dict[str, Any] = Field(description='{"sample_id": ["label", ...]} (a single label may be a string)')
    annotator: Optional[str] = Field(None, max_length=200, description="who gave them")


class Complete(BaseModel):
    allow_partial: bool = Field(False, description="complete even with samples left unlabeled")


@router.get("/label-tasks")
def list_label_tasks(request: Request, dataset: Optional[str] = None,
                     status: Optional[str] = None) -> dict[str, Any]:
    tasks = list_tasks(_backend(request), dataset, status)
    return {"tasks": [{**t.model_dump(mode="json"), "label_names": t.label_names, "remaining": t.remaining}
                      for t in tasks]}


@router.post("/label-tasks", status_code=201)
def create_label_task(request: Request, body: CreateTask) -> dict[str, Any]:
    backend = _backend(request)
    task = create_task(backend, body.dataset, body.version, body.name, body.task_type, body.labels,
                       description=body.description)
    return task_status(backend, task).to_dict()


@router.get("/label-tasks/{name}")
def label_task_status(request: Request, name: str, dataset: Optional[str] = None) -> dict[str, Any]:
    return task_status(_backend(request), name, dataset).to_dict()


@router.get("/label-tasks/{name}/samples")
def label_task_samples(request: Request, name: str, dataset: Optional[str] = None,
                       labeled: Optional[bool] = Query(None, description="true: labeled only; false: still to label"),
                       offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=10_000)) -> dict[str, Any]:
    backend = _backend(request)
    task = get_task(backend, name, dataset)
    rows = sample_rows(backend, task, labeled=labeled, offset=offset, limit=limit)
    return {"task": task.name, "dataset": task.dataset_name, "version": task.base_version, "offset": offset,
            "limit": limit, "samples": rows}


@router.post("/label-tasks/{name}/labels")
def submit_label_task_labels(request: Request, name: str, body: SubmitLabels,
                             dataset: Optional[str] = None) -> dict[str, Any]:
    backend = _backend(request)
    task = get_task(backend, name, dataset)
    accepted = submit_labels(backend, task, body.labels, annotator=body.annotator)
    return {"accepted": accepted, "status": task_status(backend, task).to_dict()}


@router.post("/label-tasks/{name}/complete")
def complete_label_task(request: Request, name: str, body: Optional[Complete] = None,
                        dataset: Optional[str] = None) -> dict[str, Any]:
    from mloop.runs import has_live_engine

    backend = _backend(request)
    task = get_task(backend, name, dataset)
    done = complete_task(backend, task, allow_partial=body.allow_partial if body else False)
    runs = []
    for run in runs_waiting_on(backend, done):
        live = has_live_engine(run)
        runs.append({"run_id": run.id, "workflow": run.workflow_name, "engine_alive": live,
                     "continue_with": None if live else f"mloop resume {run.id[:12]}"})
    note = ("completing a task resumes no run by itself: a run whose engine is alive goes on within a second; "
            "a run with no engine goes on with `mloop resume RUN`")
    return {"task": task_status(backend, done).to_dict(), "output_version": done.output_version,
            "waiting_runs": runs, "note": note}
