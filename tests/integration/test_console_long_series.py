"""A long line chart on the run page (a real job writing 20,000 points to its metrics file, the
real app, a real headless Chromium): the step's answer carries no points, the server sends what
the chart's width can show (first, lowest, highest and last per pixel column, so a spike
survives), the page says how many points a pixel stands for, a zoom fetches the window at full
resolution, and a double-click goes back to the whole series."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from console_helpers import form_login, app_on_loopback, logged_in_pages  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from helpers import Embedded, wait_until, write_job, write_workflow  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402
from mloop.server.web.run_page import downsample  # noqa: E402

PASSWORD = "correct horse battery"
N = 20_000
SPIKE = 12_345

FLOW = """
    train = job("train", metric_file="metrics.json")
    workflow = wf.Workflow(name="long", desc="", steps=[train])
"""

TRAIN = f"""
import json, os
xs = list(range({N}))
ys = [1.0 / (1 + x) for x in xs]
ys[{SPIKE}] = 50.0  # one spike a downsampling must not lose
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "metrics.json"), "w") as fh:
    json.dump([{{"key": "loss", "title": "loss", "type": "line chart",
                 "data": {{"x_axis": [{{"title": "step", "value": xs}}], "y_axis": [{{"title": "value", "value": ys}}]}}}}], fh)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("long-series")
    write_job(root / "code", TRAIN)
    flow = write_workflow(root, FLOW)
    backend = Embedded(root / ".mloop")
    try:
        done = backend.run(flow, {})
        assert done.status == "succeeded", done.why()
    finally:
        backend.close()
    pages.assets_present = lambda: True  # type: ignore[assignment]
    app = create_app(Settings(home=root / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        app.state.backend.store.users.add("ann", PASSWORD, "read")
        form_login(client, "ann", PASSWORD)
        yield {"app": app, "client": client, "run": done.run.id}


def test_the_server_sends_what_the_width_can_show_and_keeps_the_spike(world: dict[str, Any]) -> None:
    client, run = world["client"], world["run"]
    step = client.get(f"/ui/runs/{run}/step", params={"name": "train"}).json()
    (loss,) = [m for m in step["metrics"] if m["key"] == "loss"]
    assert loss["data"] is None and loss["points"] == N
    whole = client.get(f"/ui/runs/{run}/series", params={"name": "train", "key": "loss", "width": 500}).json()
    assert whole["total"] == N and whole["shown"] <= 4 * 500 and whole["per_pixel"] == N / 500
    assert max(y for y in whole["y"] if y is not None) == 50.0 and SPIKE in whole["x"]
    assert whole["x"][0] == 0 and whole["x"][-1] == N - 1
    window = client.get(f"/ui/runs/{run}/series", params={"name": "train", "key": "loss", "width": 500,
                                                          "x0": 1000, "x1": 1999}).json()
    assert window["x"] == list(range(1000, 2000)) and window["per_pixel"] is None  # every point
    missing = client.get(f"/ui/runs/{run}/series", params={"name": "train", "key": "nope"})
    assert missing.status_code == 404


def test_downsampling_keeps_each_columns_extremes() -> None:
    xs = [float(i) for i in range(1000)]
    ys: list[float | None] = [0.0] * 1000
    ys[500], ys[501], ys[502] = -7.0, None, 9.0
    kept_x, kept_y = downsample(xs, ys, 10)
    assert len(kept_x) <= 40 and kept_x == sorted(kept_x)
    assert -7.0 in kept_y and 9.0 in kept_y and kept_x[0] == 0.0 and kept_x[-1] == 999.0
    assert downsample(xs[:30], ys[:30], 10) == (xs[:30], ys[:30])


def test_the_page_zooms_to_full_resolution_and_back(world: dict[str, Any]) -> None:
    with app_on_loopback(world["app"]) as url, logged_in_pages(url) as [(page, errors)]:
        page.goto(f"{url}/ui/runs/{world['run']}#step=train")
        chart = page.locator(".chart[data-key='loss']")
        chart.wait_for(timeout=15_000)
        wait_until(lambda: float(chart.get_attribute("data-per-pixel") or 0) > 1, 15, "the overview")
        assert "points per pixel" in chart.locator(".chart-count").inner_text()
        over = chart.locator(".u-over")
        over.scroll_into_view_if_needed()  # the mouse acts inside the viewport only
        box = over.bounding_box()
        assert box
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.50, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.52, y, steps=5)
        page.mouse.up()
        wait_until(lambda: chart.get_attribute("data-per-pixel") == "1", 15, "the zoomed window")
        assert "every point" in chart.locator(".chart-count").inner_text()
        over.dblclick()
        wait_until(lambda: float(chart.get_attribute("data-per-pixel") or 0) > 1, 15, "the overview again")
        assert errors == []
