"""The console's service pages against a real managed service (a scikit-learn model deployed by
the service manager: a real supervisor and worker process on loopback): status and version, the
predict form with a JSON body (the answer shown, escaped) and with bad JSON (a clear error, the
text kept), request counts and latency read from the service's own /metrics, the deployment
history and the log; a read user sees no form and is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sklearn")

from console_helpers import form_login  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serving_helpers import sklearn_model  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402
from mloop.server.web.services_page import _quantile, traffic  # noqa: E402

PASSWORD = "correct horse battery"


def _login(app: Any, name: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url="http://127.0.0.1")
    return client, form_login(client, name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from mloop.services.models import register_model
    from mloop.services.serving import deploy, stop_service

    root = tmp_path_factory.mktemp("console-services")
    pages.assets_present = lambda: True  # type: ignore[assignment]
    app = create_app(Settings(home=root / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1"):
        ctx = app.state.backend
        sklearn_model(root / "sk")
        register_model(ctx, "animals", root / "sk")
        deploy(ctx, "zoo", "animals:1")
        try:
            ctx.store.users.add("ann", PASSWORD, "run")
            ctx.store.users.add("rex", PASSWORD, "read")
            ann, csrf = _login(app, "ann")
            rex, rex_csrf = _login(app, "rex")
            yield {"ann": ann, "csrf": csrf, "rex": rex, "rex_csrf": rex_csrf, "ctx": ctx}
        finally:
            stop_service(ctx, "zoo")


def test_the_list_shows_state_version_and_traffic(world: dict[str, Any]) -> None:
    html = world["ann"].get("/ui/services").text
    row = re.search(r'<tr data-service="zoo">(.*?)</tr>', html, re.S)
    assert row and "s-running" in row.group(1) and "animals:1" in row.group(1)
    assert "no metrics" not in row.group(1)


def test_the_predict_form_shows_the_answer_and_the_traffic_counts_it(world: dict[str, Any]) -> None:
    ann, csrf = world["ann"], world["csrf"]
    before = traffic_of(ann)
    answer = ann.post("/ui/services/zoo/predict", data={"csrf": csrf, "json": '{"inputs": [[2, 2, 0, 0]]}'})
    assert answer.status_code == 200, answer.text
    shown = re.search(r'data-testid="answer">(.*?)</pre>', answer.text, re.S)
    assert shown and "&#34;predictions&#34;" in shown.group(1)
    assert traffic_of(ann) >= before + 1
    page = ann.get("/ui/services/zoo").text
    assert re.search(r"latency p50 [\d.]+ ms, p95 [\d.]+ ms", page)
    assert "animals:1" in page.split('data-testid="deployments"', 1)[1]
    assert page.split('data-testid="log">', 1)[1].strip().startswith(("20", "["))  # the service's own lines


def traffic_of(client: TestClient) -> int:
    found = re.search(r'data-testid="traffic">(\d+) requests', client.get("/ui/services/zoo").text)
    assert found
    return int(found.group(1))


def test_bad_json_is_a_clear_error_and_keeps_the_text(world: dict[str, Any]) -> None:
    answer = world["ann"].post("/ui/services/zoo/predict", data={"csrf": world["csrf"], "json": '{"inputs": [[1,'})
    assert answer.status_code == 400
    assert "not JSON" in answer.text and "{&#34;inputs&#34;: [[1," in answer.text
    wrong = world["ann"].post("/ui/services/zoo/predict", data={"csrf": world["csrf"], "json": '{"inputs": [[1]]}'})
    assert wrong.status_code >= 400 and 'data-testid="predict-error"' in wrong.text


def test_a_reader_sees_no_form_and_is_refused(world: dict[str, Any]) -> None:
    html = world["rex"].get("/ui/services/zoo").text
    assert 'data-testid="predict-form"' not in html
    refused = world["rex"].post("/ui/services/zoo/predict", data={"csrf": world["rex_csrf"], "json": "{}"})
    assert refused.status_code == 403


def test_quantiles_of_a_cumulative_histogram() -> None:
    buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert _quantile(buckets, 0.5) == pytest.approx(0.01)
    assert _quantile(buckets, 0.95) == pytest.approx(0.1 + 0.9 * 0.5)
    assert _quantile([], 0.5) is None
    text = ('# TYPE mloop_requests_total counter\nmloop_requests_total{path="/predict",status="200"} 7\n'
            'mloop_requests_total{path="/predict",status="500"} 1\n'
            '# TYPE mloop_request_duration_seconds histogram\n'
            'mloop_request_duration_seconds_bucket{path="/predict",le="0.01"} 8\n'
            'mloop_request_duration_seconds_bucket{path="/predict",le="+Inf"} 8\n'
            'mloop_request_duration_seconds_count{path="/predict"} 8\n'
            'mloop_request_duration_seconds_sum{path="/predict"} 0.02\n')
    facts = traffic(text)
    assert (facts["requests"], facts["errors"], facts["predicts"]) == (8, 1, 8)
