"""The console's model pages on the real app (TestClient, a real SQLite store, models registered
by the registry from real scikit-learn folders): versions with metrics, aliases and the run and
dataset they came from; moving an alias from the page (and a bad alias refused, saying why);
the lineage columns; the deployment history of a service, each version's span of serving."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sklearn")

from fastapi.testclient import TestClient  # noqa: E402
from serving_helpers import sklearn_model  # noqa: E402

from console_helpers import form_login
from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402
from mloop.server.web.models_page import served_spans  # noqa: E402
from mloop.store.services import DeploymentRecord  # noqa: E402

PASSWORD = "correct horse battery"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from mloop.services.models import register_model

    pages.assets_present = lambda: True  # type: ignore[assignment]
    app = create_app(Settings(home=tmp_path / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        ctx = app.state.backend
        sklearn_model(tmp_path / "m1")
        register_model(ctx, "digits", tmp_path / "m1", dataset={"name": "mnist", "version": "v3"},
                       metrics={"accuracy": 0.91}, description="<b>first</b>")
        register_model(ctx, "digits", tmp_path / "m1", metrics={"accuracy": 0.97})
        svc = ctx.store.services.create("web", host="127.0.0.1", log_path=str(tmp_path / "web.log"))
        for version, status in (("1", "succeeded"), ("2", "failed"), ("2", "succeeded")):
            dep = ctx.store.services.add_deployment(svc.id, model_name="digits", model_version=version)
            ctx.store.services.finish_deployment(dep.id, status)
        ctx.store.users.add("ann", PASSWORD, "run")
        yield {"client": client, "ctx": ctx, "csrf": form_login(client, "ann", PASSWORD)}


def test_the_models_list_and_a_models_versions(world: dict[str, Any]) -> None:
    listed = world["client"].get("/ui/models").text
    assert 'href="/ui/models/digits"' in listed
    html = world["client"].get("/ui/models/digits").text
    rows = re.findall(r'<tr data-version="([^"]+)">', html)
    assert rows == ["2", "1"]  # newest first
    assert "accuracy=0.97" in html and "accuracy=0.91" in html and "mnist:v3" in html
    assert "<b>first</b>" not in html


def test_an_alias_is_moved_from_the_page(world: dict[str, Any]) -> None:
    client, csrf = world["client"], world["csrf"]
    moved = client.post("/ui/models/digits/alias", data={"csrf": csrf, "alias": "production", "version": "1"},
                        follow_redirects=False)
    assert moved.status_code == 303 and "notice=" in moved.headers["location"]
    assert world["ctx"].store.registry.get_by_alias("digits", "production").version == "1"
    html = client.get("/ui/models/digits").text
    assert re.search(r'<tr data-version="1">.*?<span class="badge s-succeeded">production</span>', html, re.S)
    bad = client.post("/ui/models/digits/alias", data={"csrf": csrf, "alias": "9lives", "version": "2"},
                      follow_redirects=False)
    assert "error=" in bad.headers["location"]
    assert "invalid alias" in client.get(bad.headers["location"]).text
    missing = client.post("/ui/models/digits/alias", data={"csrf": csrf, "alias": "staging", "version": "7"},
                          follow_redirects=False)
    assert "has%20no%20version" in missing.headers["location"]


def test_lineage_and_the_deployment_history(world: dict[str, Any]) -> None:
    html = world["client"].get("/ui/models/digits").text
    lineage = html.split('data-testid="lineage"', 1)[1].split("</table>", 1)[0]
    assert "mnist:v3" in lineage and "digits:1" in lineage and "web" in lineage
    history = html.split('data-testid="deployments-web"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<td class="mono">(\d)</td>', history) == ["2", "1"]  # the failed deploy served nothing


def _dep(version: str, status: str, minutes: int) -> DeploymentRecord:
    at = datetime(2026, 12, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)
    return DeploymentRecord(id=f"d{minutes}", service_id="s", model_name="m", model_version=version, status=status,
                            created_at=at, finished_at=at + timedelta(seconds=30))


def test_served_spans_run_from_one_succeeded_deploy_to_the_next() -> None:
    deps = [_dep("3", "succeeded", 20), _dep("1", "succeeded", 0), _dep("2", "failed", 5), _dep("2", "succeeded", 10)]
    spans = served_spans(deps, current="3")
    assert [(s["version"], s["start"].minute, s["end"] and s["end"].minute) for s in spans] == \
        [("1", 0, 10), ("2", 10, 20), ("3", 20, None)]
    stopped = served_spans(deps, current=None)
    assert stopped[-1]["end"] == stopped[-1]["start"]  # not serving any more
