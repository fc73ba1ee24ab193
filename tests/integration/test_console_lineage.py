"""The model page's lineage graph on the real app, a real SQLite store and (for drawing) real
Chromium: dataset version → run → model version → service.

The world: the dataset service makes ``pets:v1``; a real workflow run (a job process that reads
``pets:v1``, then a ModelStep) registers ``digits`` v1; a run left in the store by a foreign
writer, with ``<script>`` in its workflow and step names and an ``<img onerror>`` dataset in its
job's recorded inputs, registers v2; v3 is registered by hand from a dataset; v4 names a run
that no longer exists; the service ``web`` served v1. The page's JSON lists those nodes and
edges, the browser draws them as SVG links that open their pages, and the hostile names show as
text. A model of 80 versions (80 runs) draws the newest 50, says how many it left out, and reads
its runs and their inputs in a fixed number of queries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from console_helpers import XSS, app_on_loopback, browser, form_login, log_in  # noqa: E402,F401 - fixture
from fastapi.testclient import TestClient  # noqa: E402
from helpers import Embedded, pets, write_job, write_workflow  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402
from mloop.server.web.models_page import LINEAGE_VERSIONS  # noqa: E402

pytestmark = pytest.mark.timeout(300)

PASSWORD = "correct horse battery"
IMG = '<img src=x onerror="window.__pwned=1">'
GONE = "0123456789abcdef0123456789abcdef"
MANY = 80

#: A job that checks it got the dataset's layout and leaves a Custom model behind.
TRAIN = """
    manifest = json.load(open(os.path.join(args.data_url, "manifest.json")))
    assert manifest["dataset"] == "pets", manifest
    with open(os.path.join(args.out, "customize_service.py"), "w") as fh:
        fh.write("class Service:\\n    pass\\n")
"""

FLOW = """
    train = job("train", inputs={"data_url": wf.data.Dataset(dataset_name="pets", version_name="v1")})
    register = wf.steps.ModelStep(
        name="register", inputs=wf.steps.ModelInput(name="model", data=train.outputs["out"].as_input()),
        outputs=wf.steps.ModelOutput(name="model", model_config=wf.steps.ModelConfig(
            model_name="digits", model_type="Custom")),
        depend_steps=[train])
    workflow = wf.Workflow(name="lineage", desc="", steps=[train, register])
"""


def _custom_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customize_service.py").write_text("class Service:\n    pass\n")
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from mloop.services import datasets as ds
    from mloop.services.models import move_alias, register_model

    root = tmp_path_factory.mktemp("console-lineage")
    write_job(root / "code", TRAIN, args=("data_url", "out"))
    flow = write_workflow(root, FLOW)
    backend = Embedded(root / ".mloop")
    try:
        ds.create_dataset(backend.backend, "pets", str(pets(root / "pets")))
        done = backend.run(flow)
        assert done.status == "succeeded", done.why()
    finally:
        backend.close()
    pages.assets_present = lambda: True  # type: ignore[assignment]  # the page, not the npm build
    app = create_app(Settings(home=root / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        ctx = app.state.backend
        store = ctx.store
        folder = _custom_model(root / "by-hand")
        # A run as a foreign writer could have left it (the SDK refuses such names).
        release = store.create_release(f"wf {XSS}", {"workflow": XSS})
        hostile = store.create_run(release.id, [(f"step {XSS}", "job")])
        store.update_step(hostile.id, f"step {XSS}", inputs={"datasets": {"data": {
            "dataset_name": IMG, "version_name": "v9"}}})
        store.transition_run(hostile.id, "failed", message="foreign")
        register_model(ctx, "digits", folder, run_id=hostile.id, step_name=f"step {XSS}")
        register_model(ctx, "digits", folder, dataset={"name": "pets", "version": "v1"})
        register_model(ctx, "digits", folder, run_id=GONE, step_name="register")
        move_alias(ctx, "digits", "production", "1")
        svc = store.services.create("web", host="127.0.0.1", log_path=str(root / "web.log"))
        deployed = store.services.add_deployment(svc.id, model_name="digits", model_version="1")
        store.services.finish_deployment(deployed.id, "succeeded")
        store.services.update(svc.id, status="running", model_name="digits", model_version="1")
        # A long history: MANY versions, each from its own run that read a dataset version.
        many = store.create_release("nightly", {"workflow": "nightly"})
        for i in range(MANY):
            run = store.create_run(many.id, [("train", "job")])
            store.update_step(run.id, "train", inputs={"datasets": {"data_url": {
                "dataset_name": "pets", "version_name": "v1"}}})
            register_model(ctx, "many", folder, run_id=run.id, step_name="register")
        store.users.add("ann", PASSWORD, "read")
        form_login(client, "ann")
        yield {"app": app, "client": client, "ctx": ctx, "run": done.run, "hostile": hostile.id, "root": root}


def _graph(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="lineage-data">(.*?)</script>', html, re.S)
    assert found, html
    return json.loads(found.group(1))


def test_the_graph_lists_the_runs_datasets_versions_and_services(world: dict[str, Any]) -> None:
    html = world["client"].get("/ui/models/digits").text
    assert 'src="/ui/static/lineage.js"' in html and 'src="/ui/static/vendor/dagre.min.js"' in html
    graph = _graph(html)
    nodes = {n["id"]: n for n in graph["nodes"]}
    run, hostile = world["run"], world["hostile"]
    assert set(nodes) == {f"run:{run.id}", f"run:{hostile}", f"run:{GONE}", "dataset:pets:v1", f"dataset:{IMG}:v9",
                          "model:1", "model:2", "model:3", "model:4", "service:web"}
    assert sorted(map(tuple, graph["edges"])) == sorted([
        ("dataset:pets:v1", f"run:{run.id}"), (f"run:{run.id}", "model:1"), ("model:1", "service:web"),
        (f"dataset:{IMG}:v9", f"run:{hostile}"), (f"run:{hostile}", "model:2"),
        ("dataset:pets:v1", "model:3"),  # registered by hand, from a dataset
        (f"run:{GONE}", "model:4"),
    ])
    first = nodes[f"run:{run.id}"]
    assert (first["label"], first["sub"], first["href"], first["state"]) == \
        ("lineage #1", "step register", f"/ui/runs/{run.id}", "succeeded")
    assert nodes["model:1"]["sub"] == "production" and nodes["model:1"]["href"] == "#version-1"
    assert nodes["dataset:pets:v1"]["href"] == "/ui/datasets/pets?version=v1"
    assert (nodes["service:web"]["sub"], nodes["service:web"]["href"]) == ("running", "/ui/services/web")
    assert nodes[f"run:{GONE}"]["href"] is None and nodes[f"run:{GONE}"]["sub"] == "deleted"
    assert nodes[f"run:{hostile}"]["label"] == f"wf {XSS} #1"
    assert nodes[f"dataset:{IMG}:v9"]["href"] == \
        "/ui/datasets/%3Cimg%20src%3Dx%20onerror%3D%22window.__pwned%3D1%22%3E?version=v9"  # a path, quoted
    # in the HTML only escaped: no markup of theirs, in the data block or anywhere else
    assert XSS not in html and IMG not in html
    assert graph["hidden"] == 0 and 'data-testid="lineage-hidden"' not in html
    # the table (the view without JavaScript) is still there, and each version row has its anchor
    assert 'data-testid="lineage"' in html and 'id="version-1"' in html


def test_a_long_history_draws_the_newest_versions_in_a_fixed_number_of_queries(world: dict[str, Any]) -> None:
    from sqlalchemy import event

    engine = world["app"].state.backend.store.engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        html = world["client"].get("/ui/models/many").text
    finally:
        event.remove(engine, "before_cursor_execute", count)
    graph = _graph(html)
    models = [n for n in graph["nodes"] if n["kind"] == "model"]
    assert len(models) == LINEAGE_VERSIONS and (graph["shown"], graph["total"]) == (LINEAGE_VERSIONS, MANY)
    assert {n["label"] for n in models} == {f"v{i}" for i in range(MANY - LINEAGE_VERSIONS + 1, MANY + 1)}
    assert sum(n["kind"] == "run" for n in graph["nodes"]) == LINEAGE_VERSIONS
    assert [n["id"] for n in graph["nodes"] if n["kind"] == "dataset"] == ["dataset:pets:v1"]
    hidden = re.search(r'data-testid="lineage-hidden">(.*?)</span>', html, re.S)
    assert hidden and f"newest {LINEAGE_VERSIONS} of {MANY}" in hidden.group(1)
    assert f"{MANY - LINEAGE_VERSIONS} older versions are left out" in hidden.group(1)
    runs = [s for s in statements if re.search(r"\bFROM runs\b", s)]
    steps = [s for s in statements if re.search(r"\bFROM steps\b", s)]
    assert (len(runs), len(steps)) == (1, 1), statements  # not one per version
    deployments = [s for s in statements if re.search(r"\bFROM service_deployments\b", s)]
    assert len(deployments) == 1, statements  # not one per service
    assert len(statements) < 25, statements


# -- in Chromium -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page(world: dict[str, Any], browser: Any) -> Iterator[tuple[Any, str, dict[str, list[str]]]]:  # noqa: F811
    if not (pages.STATIC_DIR / "vendor" / "dagre.min.js").is_file():
        pytest.skip("the console's npm libraries are not built (npm ci --prefix frontend; pip install -e .)")
    with app_on_loopback(world["app"]) as url:
        context = browser.new_context()
        tab = context.new_page()
        seen: dict[str, list[str]] = {"errors": [], "dialogs": []}
        tab.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
        tab.on("console", lambda msg: seen["errors"].append(msg.text) if msg.type == "error"
              and not msg.text.startswith("Failed to load resource") else None)
        tab.on("dialog", lambda dialog: (seen["dialogs"].append(dialog.message), dialog.dismiss()))
        log_in(tab, url, "ann", PASSWORD)
        yield tab, url, seen
        context.close()


def _open(tab: Any, url: str) -> None:
    tab.goto(url + "/ui/models/digits")
    tab.wait_for_selector("#lineage-graph svg.lineage g.nodes > *")


def test_the_browser_draws_the_graph_as_svg(world: dict[str, Any], page: Any) -> None:
    tab, url, seen = page
    _open(tab, url)
    drawn = tab.eval_on_selector_all("svg.lineage [data-node]", "els => els.map(e => e.getAttribute('data-node'))")
    assert len(drawn) == 10 and f"run:{world['run'].id}" in drawn and "service:web" in drawn
    assert tab.locator("svg.lineage path.edge").count() == 7
    label = tab.locator(f'svg.lineage [data-node="run:{world["run"].id}"] text.lnode-label').text_content()
    assert label == "lineage #1"
    assert tab.locator('svg.lineage [data-node="model:1"] text.lnode-sub').text_content() == "production"
    # columns, left to right: dataset, run, model version, service
    x = {n: tab.locator(f'svg.lineage [data-node="{n}"]').bounding_box()["x"]
         for n in ("dataset:pets:v1", f"run:{world['run'].id}", "model:1", "service:web")}
    assert list(x.values()) == sorted(x.values())
    assert seen["errors"] == [] and seen["dialogs"] == []


def test_a_hostile_name_is_text_and_runs_nothing(world: dict[str, Any], page: Any) -> None:
    tab, url, seen = page
    _open(tab, url)
    run = tab.locator(f'svg.lineage [data-node="run:{world["hostile"]}"]')
    assert run.locator("title").text_content() == f"run wf {XSS} #1 (failed), step step {XSS}"
    assert run.locator("text.lnode-label").text_content().startswith("wf <script>alert(1)")
    data = tab.locator(f"svg.lineage [data-node={json.dumps(f'dataset:{IMG}:v9')}]")
    assert data.locator("text.lnode-label").text_content().startswith("<img src=x onerror=")
    assert tab.locator("#lineage-graph img, #lineage-graph script").count() == 0
    assert tab.evaluate("window.__pwned") is None
    assert seen["errors"] == [] and seen["dialogs"] == []


def test_clicking_a_node_opens_its_page(world: dict[str, Any], page: Any) -> None:
    tab, url, _ = page
    run_id = world["run"].id
    for node, where in ((f"run:{run_id}", f"/ui/runs/{run_id}"), ("dataset:pets:v1", "/ui/datasets/pets?version=v1"),
                        ("service:web", "/ui/services/web")):
        _open(tab, url)
        tab.locator(f'svg.lineage [data-node="{node}"] rect').click()
        tab.wait_for_url(url + where)
    _open(tab, url)
    tab.locator('svg.lineage [data-node="model:2"] rect').click()
    tab.wait_for_url(url + "/ui/models/digits#version-2")
