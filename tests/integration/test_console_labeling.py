"""The console's labeling view on the real app (a real SQLite store, a dataset version made from
real PNG folders, the app served by uvicorn on loopback, two real headless Chromium contexts):
labeling by key and by button, undo, two people labeling one task at once with every sample
counted once, progress by label, completing the task into a labeled version; and over plain
HTTP the CSRF header, a label outside the set refused and named, a reader refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from console_helpers import app_on_loopback, form_login, logged_in_pages  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from helpers import UNLABELED, pets, wait_until  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402

PASSWORD = "correct horse battery"


def _login(app: Any, name: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url="http://127.0.0.1")
    return client, form_login(client, name)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from mloop.services import datasets as ds
    from mloop.services.labels import create_task

    pages.assets_present = lambda: True  # type: ignore[assignment]
    app = create_app(Settings(home=tmp_path / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1"):
        ctx = app.state.backend
        ds.create_dataset(ctx, "pets", str(pets(tmp_path / "pets")))
        create_task(ctx, "pets", name="sort-them", labels=["cat", "dog", "eel"])
        for name, scope in (("ann", "run"), ("bob", "run"), ("rex", "read")):
            ctx.store.users.add(name, PASSWORD, scope)
        yield {"app": app, "ctx": ctx}


def _status(ctx: Any) -> Any:
    from mloop.services.labels import task_status

    return task_status(ctx, "sort-them", "pets")


def test_labels_over_http_need_the_csrf_header_a_known_label_and_the_run_scope(world: dict[str, Any]) -> None:
    ann, csrf = _login(world["app"], "ann")
    nxt = ann.get("/ui/labeling/pets/sort-them/next").json()["sample"]
    assert nxt["id"] in UNLABELED and nxt["image"].startswith("/ui/datasets/pets/v1/file?path=")
    assert ann.get(nxt["image"]).headers["content-type"] == "image/png"
    url = "/ui/labeling/pets/sort-them/labels"
    assert ann.post(url, json={"sample": nxt["id"], "labels": ["cat"]}).status_code == 403  # no CSRF header
    bad = ann.post(url, json={"sample": nxt["id"], "labels": ["owl"]}, headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 422 and "owl" in bad.json()["error"]
    shape = ann.post(url, json={"sample": nxt["id"], "labels": "cat"}, headers={"X-CSRF-Token": csrf})
    assert shape.status_code == 400
    good = ann.post(url, json={"sample": nxt["id"], "labels": ["eel"]}, headers={"X-CSRF-Token": csrf})
    assert good.status_code == 200 and good.json()["status"]["by_label"]["eel"] == 1
    assert _status(world["ctx"]).annotators == {"ann": 1}
    skipped = ann.get("/ui/labeling/pets/sort-them/next", params={"skip": [s for s in UNLABELED]}).json()
    assert skipped["sample"] is None
    rex, rex_csrf = _login(world["app"], "rex")
    assert rex.post(url, json={"sample": nxt["id"], "labels": ["cat"]},
                    headers={"X-CSRF-Token": rex_csrf}).status_code == 403
    assert 'data-testid="complete-form"' not in rex.get("/ui/labeling/pets/sort-them").text


def test_two_people_label_at_once_and_every_sample_counts_once(world: dict[str, Any]) -> None:
    with app_on_loopback(world["app"]) as url, logged_in_pages(url, ("ann", "bob")) as people:
        for page, _ in people:
            page.goto(f"{url}/ui/labeling/pets/sort-them")
            page.wait_for_selector("body[data-ready='1']", timeout=15_000)
        (ann, ann_errors), (bob, bob_errors) = people
        first = ann.get_attribute("body", "data-sample")
        ann.keyboard.press("1")  # cat
        wait_until(lambda: ann.get_attribute("body", "data-sample") != first, 15, "ann's next sample")
        ann.keyboard.press("u")  # undo: the first one comes back
        wait_until(lambda: ann.get_attribute("body", "data-sample") == first, 15, "the undone sample")
        ann.click("button[data-label='dog']")  # relabel it: still one sample
        wait_until(lambda: ann.get_attribute("body", "data-sample") != first, 15, "ann's next sample")
        # both label until nothing is left, alternating
        for _ in range(12):
            done = 0
            for page, key in ((ann, "3"), (bob, "2")):
                sample = page.get_attribute("body", "data-sample")
                if not sample:
                    done += 1
                    continue
                page.keyboard.press(key)
                wait_until(lambda page=page, sample=sample: page.get_attribute("body", "data-sample") != sample,
                           15, "the next sample")
            if done == 2:
                break
        status = _status(world["ctx"])
        assert (status.labeled, status.total, status.labeled_in_task) == (10, 10, 4)
        assert sum(status.annotators.values()) == 4 and set(status.annotators) <= {"ann", "bob"}
        assert status.by_label["cat"] == 3 and sum(status.by_label.values()) == 10
        assert ann.locator("[data-testid=all-labeled]").count() == 1
        ann.reload()
        assert "10 / 10" in ann.inner_text("#progress-text")
        ann.click("[data-testid=complete-form] button[type=submit]")
        ann.wait_for_selector("[data-testid=notice]")
        assert "pets:v2" in ann.inner_text("[data-testid=notice]")
        assert ann_errors == [] and bob_errors == []
    from mloop.services.datasets import get_version

    assert get_version(world["ctx"], "pets", "v2").sample_count == 10
