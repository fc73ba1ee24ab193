"""The console's dataset pages on the real app (TestClient, a real SQLite store, versions made by
the dataset service from real PNG folders): versions with parents and release splits, the
sample browser (filter by label and split, paging, a picture served by its digest with its
own content type), the diff between versions, and refusals: a path not in the version, a
non-image file, a path that climbs out."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from helpers import pets  # noqa: E402
from PIL import Image  # noqa: E402

from console_helpers import form_login
from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import datasets_page, pages  # noqa: E402

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from mloop.services import datasets as ds

    root = tmp_path_factory.mktemp("console-datasets")
    pages.assets_present = lambda: True  # type: ignore[assignment]
    app = create_app(Settings(home=root / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        ctx = app.state.backend
        src = pets(root / "pets")
        (src / "notes.txt").write_text("not a picture")
        ds.create_dataset(ctx, "pets", str(src))
        more = root / "more"
        shutil.copytree(src, more)
        for i in range(60):
            Image.new("RGB", (8, 8), (i, 2 * i, 3)).save(more / "cat" / f"extra{i}.png")
        ds.import_data(ctx, "pets", str(more))
        ds.release_version(ctx, "pets", "v2", ratio=0.75, seed=1)
        ctx.store.users.add("ann", PASSWORD, "read")
        form_login(client, "ann", PASSWORD)
        yield {"client": client, "src": src, "ctx": ctx}


def test_the_list_and_the_versions_with_parents_and_splits(world: dict[str, Any]) -> None:
    client = world["client"]
    assert 'href="/ui/datasets/pets"' in client.get("/ui/datasets").text
    html = client.get("/ui/datasets/pets").text
    rows = dict(re.findall(r'<tr data-version="([^"]+)">(.*?)</tr>', html, re.S))
    assert sorted(rows) == ["v1", "v2", "v3"]
    assert "<td>v2</td>" in rows["v3"] and "<td>v1</td>" in rows["v2"]  # parents
    assert re.search(r"train \d+ / eval \d+", rows["v3"]) and "ratio 0.75" in rows["v3"]


def test_the_sample_browser_filters_and_pages(world: dict[str, Any]) -> None:
    client = world["client"]
    html = client.get("/ui/datasets/pets", params={"version": "v3"}).text
    assert len(re.findall(r"<li data-sample=", html)) == datasets_page.PAGE
    assert 'data-testid="next"' in html
    dogs = client.get("/ui/datasets/pets", params={"version": "v3", "label": "dog"}).text
    labels = re.findall(r'<li data-sample="[^"]+">.*?<span class="labels">(.*?)</span>\s*(?:<span|\s*</li>)', dogs, re.S)
    assert len(labels) == 3 and all("dog" in lab for lab in labels)
    evals = client.get("/ui/datasets/pets", params={"version": "v3", "split": "eval"}).text
    shown = re.search(r"(\d+) shown by the filter", evals)
    assert shown and 0 < int(shown.group(1)) < 70
    last = client.get("/ui/datasets/pets", params={"version": "v3", "page": 99}).text
    assert "page 2 of 2" in last and 'rel="prev"' in last


def test_a_picture_is_served_by_its_digest_and_nothing_else_is(world: dict[str, Any]) -> None:
    client = world["client"]
    image = client.get("/ui/datasets/pets/v1/file", params={"path": "cat/cat0.png"})
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == (world["src"] / "cat" / "cat0.png").read_bytes()
    assert image.headers["x-content-type-options"] == "nosniff"
    assert client.get("/ui/datasets/pets/v1/file", params={"path": "notes.txt"}).status_code == 415
    assert client.get("/ui/datasets/pets/v1/file", params={"path": "cat/nope.png"}).status_code == 404
    climb = client.get("/ui/datasets/pets/v1/file", params={"path": "../../mloop.db.png"})
    assert climb.status_code == 404
    assert client.get("/ui/datasets/pets/v1/file", params={"path": "cat/extra1.png"}).status_code == 404  # only in v2


def test_the_diff_between_versions(world: dict[str, Any]) -> None:
    client = world["client"]
    html = client.get("/ui/datasets/pets/diff", params={"a": "v1", "b": "v2"}).text
    assert "60 added, 0 removed" in html
    assert "cat/extra0.png" in html.split('data-testid="added"', 1)[1]
    same = client.get("/ui/datasets/pets/diff", params={"a": "v2", "b": "v2"}).text
    assert 'data-testid="same"' in same
    missing = client.get("/ui/datasets/pets/diff", params={"a": "v1", "b": "v9"})
    assert missing.status_code == 404


def test_an_unknown_dataset_is_a_404(world: dict[str, Any]) -> None:
    assert world["client"].get("/ui/datasets/nope", headers={"accept": "text/html"}).status_code == 404
