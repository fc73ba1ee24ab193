"""``/api/v1/triggers``: git-push triggers (:mod:`mloop.triggers.service` behind it).

Two routers, because they authenticate differently:

* :data:`webhook_router` — ``POST /triggers/git/{name}``: where GitHub, Gitea and GitLab post
  push events. It takes no API token: the event's signature (the trigger's secret) is its
  authentication, so mount it without token auth.
* :data:`router` — management, behind the server's token auth::

    GET    /triggers                      the triggers (secrets left out)
    POST   /triggers                      define one {"name", "repo_url", "workflow_path", "branches"?,
                                          "paths"?, "params"?, "secret"?}; the secret is in this answer only
    DELETE /triggers/{name}               remove one and its delivery history
    GET    /triggers/{name}/deliveries    its latest deliveries (?limit=50)
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mloop.context import Context
from mloop.errors import PayloadTooLargeError, TriggerError
from mloop.server.app import backend_of
from mloop.triggers.service import (
    MAX_PAYLOAD_BYTES, check_trigger_name, create_trigger, delete_trigger, handle_push, list_deliveries,
    list_triggers, mask_url, webhook_path,
)

__all__ = ["router", "webhook_router"]

webhook_router = APIRouter(tags=["triggers"])
router = APIRouter(tags=["triggers"])


def _backend(request: Request) -> Context:
    return backend_of(request.app)


async def _read_body(request: Request) -> bytes:
    """The raw body, refused (413) as soon as it passes :data:`MAX_PAYLOAD_BYTES`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > MAX_PAYLOAD_BYTES
        except ValueError:
            raise TriggerError("bad Content-Length header") from None
        if too_big:
            raise PayloadTooLargeError(f"the payload is over {MAX_PAYLOAD_BYTES} bytes", limit=MAX_PAYLOAD_BYTES)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(f"the payload is over {MAX_PAYLOAD_BYTES} bytes", limit=MAX_PAYLOAD_BYTES)
    return bytes(body)


@webhook_router.post("/triggers/git/{name}")
async def git_push(request: Request, name: str) -> JSONResponse:
    """A push event from GitHub, Gitea or GitLab for trigger ``name`` (signed with its secret)."""
    check_trigger_name(name)  # before any lookup or read
    body = await _read_body(request)
    ctx = _backend(request)
    result = await run_in_threadpool(handle_push, ctx, name, dict(request.headers), body)
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.wake()  # a queued run starts now, not at the next poll
    return JSONResponse(result.to_dict(), status_code=200)


class CreateTrigger(BaseModel):
    name: str = Field(max_length=64, description="1-64 letters, digits, '-' or '_'")
    repo_url: str = Field(max_length=2000, description="the git URL the server fetches pushed commits from")
    workflow_path: str = Field(max_length=1000,
                               description="the workflow file's path in the repository, e.g. flows/train.py")
    branches: list[str] = Field(default_factory=list, description="fnmatch patterns of branches (default: any)")
    paths: list[str] = Field(default_factory=list, description="fnmatch patterns of changed paths (default: any)")
    params: dict[str, Any] = Field(default_factory=dict, description="placeholder values for the runs")
    secret: Optional[str] = Field(None, max_length=1000, description="the webhook secret (default: a new random one)")


def _public(trigger: Any) -> dict[str, Any]:
    out: dict[str, Any] = trigger.public()
    out["repo_url"] = mask_url(out["repo_url"])
    out["webhook_path"] = webhook_path(trigger.name)
    return out


@router.get("/triggers")
def list_git_triggers(request: Request) -> dict[str, Any]:
    return {"triggers": [_public(t) for t in list_triggers(_backend(request))]}


@router.post("/triggers", status_code=201)
def create_git_trigger(request: Request, body: CreateTrigger) -> dict[str, Any]:
    trigger, secret = create_trigger(_backend(request), body.name, repo_url=body.repo_url,
                                     workflow_path=body.workflow_path, branches=body.branches, paths=body.paths,
                                     params=body.params, secret=body.secret)
    return {**_public(trigger), "secret": secret}


@router.delete("/triggers/{name}")
def delete_git_trigger(request: Request, name: str) -> dict[str, Any]:
    delete_trigger(_backend(request), name)
    return {"deleted": name}


@router.get("/triggers/{name}/deliveries")
def git_trigger_deliveries(request: Request, name: str, limit: int = 50) -> dict[str, Any]:
    deliveries = list_deliveries(_backend(request), name, limit=max(1, min(limit, 500)))
    return {"deliveries": [d.model_dump(mode="json") for d in deliveries]}
