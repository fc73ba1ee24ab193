"""The console's dataset pages: datasets, a dataset's versions with parents and release splits,
the diff between two versions, and a paged sample browser with thumbnails.

::

    GET /ui/datasets                                  every dataset
    GET /ui/datasets/{name}?version=&label=&split=&page=
                                                      versions, and the samples of one version
    GET /ui/datasets/{name}/diff?a=&b=                what changed between two versions
    GET /ui/datasets/{name}/{version}/file?path=      one file of a version (images only)

A sample's picture is served from the dataset's object store by the file's digest in the
version's manifest: the ``path`` is only looked up in that manifest, never joined to a
folder, and only image types are answered (with their own content type and ``nosniff``).
"""

from __future__ import annotations

import posixpath
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from mloop.errors import MloopError, NotFoundError
from mloop.server.web.session import Session, require_session

router = APIRouter(include_in_schema=False)

#: Samples per page of the browser.
PAGE = 48
#: File types the browser shows as pictures, and their content types.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".bmp": "image/bmp", ".webp": "image/webp"}
#: Largest file answered as a thumbnail.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: At most this many sample ids are listed per kind of change in a diff.
DIFF_SHOWN = 200


def _ctx(request: Request) -> Any:
    return request.app.state.backend


@router.get("/ui/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, session: Session = Depends(require_session)) -> Response:
    from mloop.server.web.pages import render
    from mloop.services.datasets import list_datasets

    return render(request, "datasets.html", datasets=list_datasets(_ctx(request)))


@router.get("/ui/datasets/{name}", response_class=HTMLResponse)
def dataset_page(request: Request, name: str, version: str | None = Query(None, max_length=128),
                 label: str | None = Query(None, max_length=128), split: str | None = Query(None, max_length=32),
                 page: int = Query(1, ge=1, le=1_000_000), session: Session = Depends(require_session)) -> Response:
    from mloop.server.web.pages import render
    from mloop.services.datasets import cached_manifest, get_version, list_versions

    ctx = _ctx(request)
    versions = list_versions(ctx, name)  # NotFoundError: the console's 404 page
    if not versions:
        return render(request, "dataset.html", name=name, versions=[], shown=None, samples=[], labels=[],
                      splits=[], filters={}, page=1, pages=1, total=0)
    shown = get_version(ctx, name, version or None)
    manifest = cached_manifest(ctx, shown)
    everything = manifest.samples
    labels = sorted({lab for s in everything for lab in s.labels})
    splits = sorted({s.split for s in everything if s.split})
    picked = [s for s in everything if (not label or label in s.labels) and (not split or s.split == split)]
    pages = max(1, -(-len(picked) // PAGE))
    page = min(page, pages)
    samples = [{"id": s.id, "file": s.file, "labels": s.labels, "split": s.split,
                "image": bool(s.file) and posixpath.splitext(s.file)[1].lower() in IMAGE_TYPES}
               for s in picked[(page - 1) * PAGE: page * PAGE]]
    filters = {k: v for k, v in {"version": shown.version, "label": label or "", "split": split or ""}.items() if v}
    return render(request, "dataset.html", name=name, versions=versions[::-1], shown=shown, samples=samples,
                  labels=labels, splits=splits, filters=filters, page=page, pages=pages, total=len(picked))


@router.get("/ui/datasets/{name}/diff", response_class=HTMLResponse)
def dataset_diff(request: Request, name: str, a: str = Query(..., max_length=128), b: str = Query(..., max_length=128),
                 session: Session = Depends(require_session)) -> Response:
    from mloop.server.app import http_status
    from mloop.server.web.pages import render
    from mloop.services.datasets import diff_versions, list_versions

    ctx = _ctx(request)
    try:
        diff = diff_versions(ctx, name, a, b)
    except MloopError as exc:
        return render(request, "error.html", status_code=http_status(exc), title="Dataset diff", message=exc.message)
    return render(request, "dataset_diff.html", name=name, diff=diff, limit=DIFF_SHOWN,
                  versions=[v.version for v in list_versions(ctx, name)])


@router.get("/ui/datasets/{name}/{version}/file")
def dataset_file(request: Request, name: str, version: str, path: str = Query(..., max_length=1024),
                 session: Session = Depends(require_session)) -> Response:
    from mloop.services.datasets import _objects, cached_manifest, get_version

    ctx = _ctx(request)
    kind = IMAGE_TYPES.get(posixpath.splitext(path)[1].lower())
    if kind is None:
        return Response("only image files are shown here", status_code=415, media_type="text/plain")
    record = get_version(ctx, name, version)
    entry = cached_manifest(ctx, record).file_map().get(path)  # a page of pictures: read once
    if entry is None:
        raise NotFoundError(f"version {version} of {name!r} has no file {path[:200]!r}")
    if entry.size > MAX_IMAGE_BYTES:
        return Response("the file is too large to show", status_code=413, media_type="text/plain")
    data = _objects(ctx).read(entry.hash)
    # content-addressed: the bytes of this path in this version never change
    return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=86400",
                                                    "X-Content-Type-Options": "nosniff"})
