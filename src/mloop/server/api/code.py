"""``/api/v1`` code uploads and releases: what client mode sends before it starts a run.

::

    POST /code/missing        {"digests": [...]} -> {"missing": [...]}: the files to send
    PUT  /code/blobs/{sha256} the bytes of one file (checked against the digest)
    POST /code/trees          {"files": {path: {"digest", "executable"}}} -> {"digest", "path"}
    POST /releases            {"spec": {...}} -> the release (every code folder must be a tree)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from mloop.context import Context
from mloop.errors import BadArgumentError, SpecValidationError
from mloop.errors import Problem
from mloop.server.codestore import MAX_BLOB_BYTES, MAX_FILES, CodeStore

router = APIRouter(tags=["code"])


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.backend
    return ctx


def _store(request: Request) -> CodeStore:
    store = getattr(request.app.state, "code_store", None)
    if store is None:
        store = CodeStore(Path(_ctx(request).settings.home_path) / "code-store")
        request.app.state.code_store = store
    return store


class Digests(BaseModel):
    digests: list[str] = Field(max_length=MAX_FILES)


class Tree(BaseModel):
    files: dict[str, dict[str, Any]] = Field(description="relative path -> {digest, executable}")


class Release(BaseModel):
    spec: dict[str, Any]


@router.post("/code/missing")
def missing(request: Request, body: Digests) -> dict[str, list[str]]:
    return {"missing": _store(request).missing(body.digests)}


@router.put("/code/blobs/{digest}", status_code=201)
async def put_blob(request: Request, digest: str) -> dict[str, Any]:
    store = _store(request)
    store.blob_path(digest)  # a bad digest is refused before the body is read
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BLOB_BYTES):
        raise BadArgumentError(f"a code file is limited to {MAX_BLOB_BYTES} bytes",
                               hint="keep data out of code folders: put it in the artifact store")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BLOB_BYTES:
            raise BadArgumentError(f"a code file is limited to {MAX_BLOB_BYTES} bytes")
        chunks.append(chunk)
    created = await run_in_threadpool(store.put_blob, digest, b"".join(chunks))
    return {"digest": digest, "created": created}


@router.post("/code/trees")
def build_tree(request: Request, body: Tree) -> dict[str, str]:
    digest, path = _store(request).build(body.files)
    return {"digest": digest, "path": str(path)}


@router.post("/releases", status_code=201)
def release(request: Request, body: Release) -> dict[str, Any]:
    from mloop.runs.service import release_spec
    from mloop.spec import dump_spec, load_spec

    spec = load_spec(body.spec)
    store = _store(request)
    outside = []
    # The validated spec's shape, not the request's: a step or property of the wrong type was
    # refused by load_spec already.
    for step in dump_spec(spec).get("steps", []):
        algorithm = (step.get("properties") or {}).get("algorithm") or {}
        code_dir = algorithm.get("code_dir")
        if code_dir and not store.holds(str(code_dir)):
            outside.append(Problem(f"steps.{step.get('name')}.algorithm.code_dir",
                                   "a code folder must be uploaded to the server first (client mode does this)",
                                   step=step.get("name")))
    if outside:
        raise SpecValidationError(outside, headline="the spec names code the server does not hold:")
    rec = release_spec(_ctx(request), spec)
    return {"id": rec.id, "workflow": rec.workflow_name, "version": rec.version, "spec_hash": rec.spec_hash}
