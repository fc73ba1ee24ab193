"""The console's compare page on real runs (a real SQLite store, jobs that write line charts
with MetricLogger): parameters and metrics side by side with the differing rows marked, user
strings escaped, clear refusals, the runs list's "compare selected" form, and, in a real
headless Chromium against the app served on loopback, one chart per line chart with one series
per run and no script error under the CSP."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient  # noqa: E402
from helpers import Embedded, write_job, write_workflow  # noqa: E402
from console_helpers import form_login  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"

FLOW = """
    lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default=0.1)
    note = wf.Placeholder(name="note", placeholder_type=wf.PlaceholderType.STR, default="plain")
    points = wf.Placeholder(name="points", placeholder_type=wf.PlaceholderType.INT, default=5)
    train = job("train", params={"lr": lr, "note": note, "points": points}, metric_file="metrics.json")
    workflow = wf.Workflow(name="cmp", desc="", steps=[train])
"""

TRAIN = """
from mloop.metrics import MetricLogger
logger = MetricLogger(args.out)
for k in range(int(args.points)):
    logger.log_metric("loss", float(args.lr) / (k + 1), step=k)
logger.log_float("accuracy", 1 - float(args.lr))
logger.log_confusion_matrix("confusion", [[8, 2], [0, 10]], labels=["cat", "dog"])
logger.log_histogram("confidence", ["0-0.5", "0.5-1"], [3, 17])
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("console-compare")
    write_job(root / "code", TRAIN, args=("out", "lr", "note", "points"))
    flow = write_workflow(root, FLOW)
    backend = Embedded(root / ".mloop")
    runs = []
    try:
        for values in ({"lr": 0.1}, {"lr": 0.01, "note": XSS, "points": 8}, {"lr": 0.01, "points": 3}):
            done = backend.run(flow, values)
            assert done.status == "succeeded", done.why()
            runs.append(done.run.id)
    finally:
        backend.close()
    pages.assets_present = lambda: True  # type: ignore[assignment]  # the page, not the npm build
    app = create_app(Settings(home=root / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        app.state.backend.store.users.add("ann", PASSWORD, "read")
        form_login(client, "ann", PASSWORD)
        yield {"root": root, "runs": runs, "client": client, "app": app}


def _row(html: str, name: str) -> str:
    found = re.search(r'<tr( class="differs")? data-row="' + re.escape(name) + r'">(.*?)</tr>', html, re.S)
    assert found, f"no row {name}"
    return (found.group(1) or "") + found.group(2)


def test_runs_side_by_side_with_the_differing_rows_marked(world: dict[str, Any]) -> None:
    a, b, c = world["runs"]
    html = world["client"].get(f"/ui/compare?run={a}&run={b[:10]}&run={c}").text
    lr = _row(html, "parameters:lr")
    assert 'class="differs"' in lr and ">0.1<" in lr and lr.count(">0.01<") == 2
    assert 'class="differs"' in _row(html, "metrics:train.accuracy")
    code = _row(html, "code:train")
    assert 'class="differs"' not in code  # the same code in every run
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in _row(html, "parameters:note")
    assert html.count('href="/ui/runs/') >= 3


def test_the_chart_data_has_one_series_per_run(world: dict[str, Any]) -> None:
    a, b, c = world["runs"]
    html = world["client"].get(f"/ui/compare?run={a}&run={b}&run={c}").text
    blob = re.search(r'<script type="application/json" id="compare-data">(.*?)</script>', html, re.S)
    assert blob
    import json

    data = json.loads(blob.group(1))
    (loss,) = [chart for chart in data["charts"] if chart["key"] == "train.loss"]
    assert [s["run"] for s in loss["series"]] == [a, b, c]
    assert [len(s["y"]) for s in loss["series"]] == [5, 8, 3]
    assert "<script>" not in blob.group(1)  # tojson escapes <, so a value cannot end the block


def test_long_series_are_thinned_and_say_so() -> None:
    from mloop.server.web.compare_page import MAX_POINTS, _thin

    xs = list(range(10 * MAX_POINTS + 7))
    kept_x, kept_y, every = _thin(xs, [x * 2 for x in xs])
    assert every == 11 and len(kept_x) <= MAX_POINTS + 1 and kept_x[-1] == xs[-1] and kept_y[-1] == 2 * xs[-1]
    assert _thin([1, 2], [3, 4]) == ([1, 2], [3, 4], 1)


def test_refusals_are_pages_that_say_what_to_do(world: dict[str, Any]) -> None:
    a = world["runs"][0]
    one = world["client"].get(f"/ui/compare?run={a}")
    assert one.status_code == 400 and "at least two runs" in one.text
    twice = world["client"].get(f"/ui/compare?run={a}&run={a}")
    assert twice.status_code == 400 and "twice" in twice.text
    unknown = world["client"].get(f"/ui/compare?run={a}&run=ffffffffffff")
    assert unknown.status_code == 404
    many = world["client"].get("/ui/compare?" + "&".join(f"run={i:012x}" for i in range(13)))
    assert many.status_code == 400 and "compare at most 12 runs at once (13 given)" in many.text
    assert "<html" in many.text.lower()  # the console's page, not the framework's JSON


def test_the_runs_list_picks_runs_to_compare(world: dict[str, Any]) -> None:
    html = world["client"].get("/ui/runs").text
    assert '<form id="compare-form" method="get" action="/ui/compare"' in html
    for run_id in world["runs"]:
        assert f'<input type="checkbox" name="run" value="{run_id}" form="compare-form"' in html


def test_the_charts_draw_in_a_real_browser(world: dict[str, Any]) -> None:
    a, b, c = world["runs"]
    with served_page(world["app"]) as (page, url, errors):
        page.goto(f"{url}/ui/compare?run={a}&run={b}&run={c}")
        page.wait_for_selector("body[data-charts-ready='1']", timeout=15_000)
        holder = page.locator(".chart[data-key='train.loss']")
        assert holder.get_attribute("data-series") == "3"
        assert holder.get_attribute("data-points") == "8"  # the x values joined
        assert page.locator(".chart[data-key='train.loss'] canvas").count() == 1
        legend = page.locator(".chart[data-key='train.loss'] .u-legend").inner_text()
        assert legend.count("cmp #") == 3
        page.check(".chart[data-key='train.loss'] label.log input")
        page.wait_for_function("document.querySelectorAll(\".chart[data-key='train.loss'] canvas\").length == 1")
        assert errors == []


def test_the_run_page_draws_a_confusion_matrix_heat_map_and_histogram_bars(world: dict[str, Any]) -> None:
    """Rows are predictions, columns true labels (ModelArts' layout): precision of a class is its
    diagonal over its row, recall over its column."""
    with served_page(world["app"]) as (page, url, errors):
        page.goto(f"{url}/ui/runs/{world['runs'][0]}#step=train")
        page.wait_for_selector("table.matrix.heat", timeout=15_000)
        rows = page.locator("table.matrix.heat tbody tr")
        assert rows.nth(0).inner_text().split("\t") == ["cat", "8", "2", "80.0%"]  # precision 8/10
        assert rows.nth(1).inner_text().split("\t") == ["dog", "0", "10", "100.0%"]
        assert rows.nth(2).inner_text().split("\t") == ["recall", "100.0%", "83.3%", "90.0%"]
        shaded = page.locator("table.matrix.heat tbody tr:first-child td:nth-child(2)")
        assert "rgba(22, 163, 74" in shaded.evaluate("td => td.style.backgroundColor")
        assert page.locator(".chart.histogram[data-key='confidence'] canvas").count() == 1
        page.check(".chart[data-key='loss'] label.log input")
        page.wait_for_function("document.querySelectorAll(\".chart[data-key='loss'] canvas\").length == 1")
        assert errors == []


@contextlib.contextmanager
def served_page(app: Any) -> Iterator[tuple[Any, str, list[str]]]:
    """The app on loopback and a logged-in Chromium page on it, with the errors it meets."""
    from console_helpers import app_on_loopback, logged_in_pages

    with app_on_loopback(app) as url, logged_in_pages(url) as [(page, errors)]:
        yield page, url, errors
