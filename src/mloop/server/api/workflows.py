"""``/api/v1`` released workflows as objects: show, diff, delete, saved run configurations,
starting a run from one, and copying and deleting runs.

::

    GET    /workflows/{name}                  one release (?version=, default the latest): steps, placeholders
    GET    /workflows/{name}/diff?a=&b=       what changed between two versions (summary + unified diff)
    DELETE /workflows/{name}                  its releases, ended runs and configurations (409 while a run lives)
    GET    /workflows/{name}/configs          its saved run configurations
    GET    /workflows/{name}/configs/{config} one of them
    PUT    /workflows/{name}/configs/{config} save {"parameters", "steps"?, "description"?} (checked)
    DELETE /workflows/{name}/configs/{config} delete it
    POST   /workflows/{name}/runs             queue a run {"config"?, "parameters"?, "version"?, "cache"?}
    POST   /runs/{id}/copy                    queue a new run with the same release and values
    DELETE /runs/{id}                         delete an ended run (409 while it lives)

The lead includes it next to the runs router: ``app.include_router(workflows.router,
prefix="/api/v1", dependencies=authorized)`` (reads need scope ``read``, the rest ``run``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mloop.context import Context
from mloop.server.api._errors import INT64_MAX
from mloop.server.api.runs import RunOut
from mloop.store.workflows import RunConfigRecord

router = APIRouter(tags=["workflows"])


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.backend
    return ctx


def _wake(request: Request) -> None:
    from mloop.server.app import wake_queue  # (app imports this module)

    wake_queue(request.app)


def _origin(request: Request, kind: str, **more: Any) -> dict[str, Any]:
    token = getattr(request.state, "token", None)
    return {"kind": kind, "token": token.name if token else None, **more}


# -- shapes -------------------------------------------------------------------------------------
class StepSummary(BaseModel):
    name: str
    type: str
    title: Optional[str] = None
    depends: list[str]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


class PlaceholderOut(BaseModel):
    name: str
    kind: str = Field(description="parameter | data")
    type: str
    default: Any = None
    required: bool
    delay: bool
    description: str = ""


class WorkflowDetailOut(BaseModel):
    name: str
    version: int
    versions: list[int]
    release_id: str
    spec_hash: str
    created_at: datetime
    description: str
    steps: list[StepSummary]
    placeholders: list[PlaceholderOut]
    extend: dict[str, Any] = Field(description="git and CI facts of the release")
    configs: list[str]


class DiffOut(BaseModel):
    name: str
    a: int
    b: int
    same: bool
    summary: list[str]
    steps_added: list[str]
    steps_removed: list[str]
    steps_changed: list[str]
    placeholders_added: list[str]
    placeholders_removed: list[str]
    defaults_changed: list[str]
    diff: list[str] = Field(description="unified diff of the specs' canonical JSON, line by line")


class DeletedWorkflowOut(BaseModel):
    name: str
    releases: int
    configs: int
    runs: list[str]


class ConfigIn(BaseModel):
    parameters: dict[str, Any] = Field(default_factory=dict, description="placeholder and data values")
    steps: Optional[list[str]] = Field(None, description="run only these steps")
    description: str = Field("", max_length=2000)


class ConfigOut(BaseModel):
    id: str
    workflow: str
    name: str
    parameters: dict[str, Any]
    steps: Optional[list[str]] = None
    description: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, c: RunConfigRecord) -> ConfigOut:
        return cls(id=c.id, workflow=c.workflow_name, name=c.name, parameters=c.params, steps=c.steps,
                   description=c.description, created_at=c.created_at, updated_at=c.updated_at)


class StartRun(BaseModel):
    config: Optional[str] = Field(None, description="a saved run configuration to start from")
    parameters: dict[str, Any] = Field(default_factory=dict, description="values (override the configuration's)")
    version: Optional[int] = Field(None, ge=1, le=INT64_MAX, description="the release version (default: the latest)")
    cache: bool = Field(True, strict=True, description="false: every job step runs, reusing no earlier result")


class DeletedRunOut(BaseModel):
    id: str
    workflow: str
    number: int


# -- workflows ----------------------------------------------------------------------------------
@router.get("/workflows/{name}", response_model=WorkflowDetailOut)
def show_workflow(request: Request, name: str,
                  version: Optional[int] = Query(None, ge=1, le=INT64_MAX)) -> WorkflowDetailOut:
    from mloop.services.workflows import show_workflow as show

    return WorkflowDetailOut.model_validate(show(_ctx(request), name, version).to_dict())


@router.get("/workflows/{name}/diff", response_model=DiffOut)
def diff_workflow(request: Request, name: str, a: int = Query(..., ge=1, le=INT64_MAX),
                  b: int = Query(..., ge=1, le=INT64_MAX)) -> DiffOut:
    from mloop.services.workflows import diff_workflow as diff

    result = diff(_ctx(request), name, a, b)
    return DiffOut(**result.to_dict(), same=result.same)


@router.delete("/workflows/{name}", response_model=DeletedWorkflowOut)
def delete_workflow(request: Request, name: str) -> DeletedWorkflowOut:
    from mloop.services.workflows import delete_workflow as delete

    deleted = delete(_ctx(request), name)
    return DeletedWorkflowOut(name=deleted.name, releases=deleted.releases, configs=deleted.configs,
                              runs=deleted.run_ids)


# -- run configurations -------------------------------------------------------------------------
@router.get("/workflows/{name}/configs", response_model=list[ConfigOut])
def list_configs(request: Request, name: str) -> list[ConfigOut]:
    from mloop.services.workflows import list_configs as configs

    return [ConfigOut.of(c) for c in configs(_ctx(request), name)]


@router.get("/workflows/{name}/configs/{config}", response_model=ConfigOut)
def get_config(request: Request, name: str, config: str) -> ConfigOut:
    from mloop.services.workflows import get_config as get

    return ConfigOut.of(get(_ctx(request), name, config))


@router.put("/workflows/{name}/configs/{config}", response_model=ConfigOut)
def save_config(request: Request, name: str, config: str, body: ConfigIn) -> ConfigOut:
    from mloop.services.workflows import save_config as save

    return ConfigOut.of(save(_ctx(request), name, config, body.parameters, steps=body.steps,
                             description=body.description))


@router.delete("/workflows/{name}/configs/{config}", response_model=ConfigOut)
def delete_config(request: Request, name: str, config: str) -> ConfigOut:
    from mloop.services.workflows import delete_config as delete

    return ConfigOut.of(delete(_ctx(request), name, config))


# -- runs ---------------------------------------------------------------------------------------
@router.post("/workflows/{name}/runs", status_code=201, response_model=RunOut)
def start_run(request: Request, name: str, body: StartRun) -> RunOut:
    from mloop.runs.queue import submit
    from mloop.services.workflows import config_values

    ctx = _ctx(request)
    values, steps = config_values(ctx, name, body.config, body.parameters)
    run = submit(ctx, name, values, version=body.version, steps=steps, cache=body.cache,
                 origin=_origin(request, "api", **({"config": body.config} if body.config else {})))
    _wake(request)
    return RunOut.of(run)


@router.post("/runs/{run_id}/copy", status_code=201, response_model=RunOut)
def copy_run(request: Request, run_id: str) -> RunOut:
    from mloop.runs.queue import copy_run as copy

    run = copy(_ctx(request), run_id, origin=_origin(request, "copy"))
    _wake(request)
    return RunOut.of(run)


@router.delete("/runs/{run_id}", response_model=DeletedRunOut)
def delete_run(request: Request, run_id: str) -> DeletedRunOut:
    from mloop.services.workflows import delete_run as delete

    run = delete(_ctx(request), run_id)
    return DeletedRunOut(id=run.id, workflow=run.workflow_name, number=run.number)
