"""The console's run page in a real headless Chromium (Debian's ``chromium``, driven by Playwright)
against a real ``mloop server`` process: log in, watch a running run's graph change state live
(latency from the gate file to the DOM), follow a step's log and its line chart as the job
writes metrics, stop and retry from the page; a ``<script>`` step name, title, message and log
line show as text; a 500-step graph is laid out and drawn in under a second."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Cli, wait_until, write_job, write_workflow

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)

from test_server_api import start_server  # noqa: E402

pytestmark = pytest.mark.timeout(180)

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "run.png"

#: ``train`` logs a line-chart point and a log line every 0.1 s until its gate file exists.
TRAIN = """
from mloop.metrics import MetricLogger
logger = MetricLogger(args.out)
gate = os.path.join(args.gates, "train")
k = 0
while not os.path.exists(gate) and k < 1500:
    logger.log_metric("loss", 1.0 / (k + 1), step=k)
    print(f"epoch {k} loss {1.0 / (k + 1):.4f}", flush=True)
    k += 1
    time.sleep(0.1)
logger.log_float("accuracy", 0.875)
print("<script>alert('log')</script>", flush=True)
"""

#: The other steps wait for their gate file.
GATE = """
print("step", args.me, "waits for its gate", flush=True)
open(os.path.join(args.gates, args.me + ".waiting"), "w").close()
wait_for_file(os.path.join(args.gates, args.me), timeout=120)
print("step", args.me, "passed its gate", flush=True)
"""

FLOW = """
    gates = wf.Placeholder(name="gates", placeholder_type=wf.PlaceholderType.STR, default="")
    note = wf.Placeholder(name="note", placeholder_type=wf.PlaceholderType.STR, default="<script>alert('param')</script>")
    train = job("train", script="train.py", params={"gates": gates, "note": note})
    b = job("b", script="gate.py", params={"gates": gates, "me": "b"}, inputs={"data": train.outputs["out"].as_input()})
    c = job("c", script="gate.py", params={"gates": gates, "me": "c"}, depend=[b])
    d = job("d", script="gate.py", params={"gates": gates, "me": "d"}, depend=[c])
    workflow = wf.Workflow(name="live", desc="", steps=[train, b, c, d])
"""


@dataclass
class Console:
    url: str
    admin: str
    home: Path
    gates: Path
    big_run: str
    xss_run: str


def _fake_runs(home: Path, folder: Path) -> tuple[str, str]:
    """Before the server starts (so its queue never sees them pending): a finished run of a
    500-step release, and a failed run whose step name, title, message and log are ``<script>``."""
    from mloop.config import Settings
    from mloop.runs import open_backend
    from mloop.spec import SCHEMA_VERSION, dump_spec, load_spec

    with open_backend(Settings(home=home)) as ctx:
        store = ctx.store
        steps: list[dict[str, Any]] = []
        width = 50
        for i in range(500):
            layer, k = divmod(i, width)
            step: dict[str, Any] = {"name": f"s{i:03d}", "type": "job"}
            if layer:
                step["depend_steps"] = [f"s{(layer - 1) * width + k:03d}"]
                src = f"s{(layer - 1) * width + (k + 7) % width:03d}"
                step["inputs"] = [{"name": "data", "type": "obs", "data": f"$ref/consumptions/{src}/out"}]
            steps.append(step)
        spec = dump_spec(load_spec({"schema_version": SCHEMA_VERSION, "name": "big", "steps": steps}, validate=False))
        release = store.create_release("big", spec)
        big = store.create_run(release.id, [(s["name"], "job") for s in steps])
        store.transition_run(big.id, "running")
        for i, s in enumerate(steps[:320]):
            store.transition_step(big.id, s["name"], "running")
            store.transition_step(big.id, s["name"], "failed" if i == 317 else "succeeded")
        store.transition_run(big.id, "failed", message="s317 failed")

        xss_spec = {"name": "xss", "steps": [{"name": XSS, "type": "job", "title": "title " + XSS}]}
        xss_release = store.create_release("xss", xss_spec)
        xss = store.create_run(xss_release.id, [(XSS, "job")], params={"p": XSS})
        log = folder / "xss.log"
        log.write_text(f"first line\n{XSS}\n<img src=x onerror=alert(2)>\n")
        store.transition_run(xss.id, "running")
        store.transition_step(xss.id, XSS, "running")
        store.update_step(xss.id, XSS, log_path=str(log))
        store.transition_step(xss.id, XSS, "failed", message=XSS)
        store.transition_run(xss.id, "failed", message=XSS)
        store.users.add("ann", PASSWORD, "run")
        return big.id, xss.id


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    write_job(folder / "code", TRAIN, args=("out", "gates", "note"), name="train.py")
    write_job(folder / "code", GATE, args=("out", "gates", "me", "data"), name="gate.py")
    write_workflow(folder, FLOW)
    cli = Cli(folder, folder / ".mloop")
    cli.ok("release", "flow.py")
    big, xss = _fake_runs(cli.home, folder)
    bg, url, admin = start_server(cli, "--concurrency", "2")
    assert admin is not None, bg.output()
    gates = folder / "gates"
    gates.mkdir()
    try:
        yield Console(url, admin, cli.home, gates, big, xss)
    finally:
        bg.proc.send_signal(signal.SIGTERM)
        try:
            bg.proc.wait(timeout=30)
        finally:
            cli.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.dialogs = []  # type: ignore[attr-defined]
    page.errors = []  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.goto(console.url + "/ui/login")
    page.fill("input[name=name]", "ann")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(console.url + "/ui/")
    yield page
    context.close()


def _api(console: Console) -> httpx.Client:
    return httpx.Client(base_url=console.url + "/api/v1", headers={"Authorization": f"Bearer {console.admin}"},
                        timeout=30)


def _node(step: str, state: str) -> str:
    return f'#run-graph [data-step="{step}"][data-state="{state}"]'


def _log_shows(page: Any, text: str) -> None:
    # A function, not an expression: Playwright evaluates expressions with eval, which the CSP forbids.
    page.wait_for_function("t => document.getElementById('step-log').textContent.includes(t)", arg=text,
                           timeout=20_000)


def _open_gate(page: Any, console: Console, step: str, run_id: str) -> float:
    """Open ``step``'s gate once the page shows it running; seconds until the page shows it succeeded."""
    page.wait_for_selector(_node(step, "running"), timeout=60_000)
    if step != "train":  # the job is at its gate: what is measured is the state change, not its start-up
        wait_until(lambda: (console.gates / f"{step}.waiting").exists(), 60, f"{step} at its gate")
    started = time.monotonic()
    (console.gates / step).write_text("go")
    GATE_WRITTEN.append((step, time.time()))
    page.wait_for_selector(_node(step, "succeeded"), timeout=20_000)
    return time.monotonic() - started



#: (step, wall time) of each gate the test opened.
GATE_WRITTEN: list[tuple[str, float]] = []


def test_a_live_run_moves_on_the_page_without_reloading(page: Any, console: Console) -> None:
    with _api(console) as api:
        answer = api.post("/runs", json={"workflow": "live", "parameters": {"gates": str(console.gates)}})
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["id"]
    page.goto(f"{console.url}/ui/runs/{run_id}")
    page.wait_for_selector("#run-graph svg .node")
    page.evaluate("() => { window.notReloaded = true; }")
    edges = page.eval_on_selector_all("#run-graph path.edge", "es => es.map(e => e.getAttribute('class'))")
    assert sorted(edges) == ["edge edge-data", "edge edge-depend", "edge edge-depend"]

    # The step panel: the log and the line chart grow while the job runs.
    page.wait_for_selector(_node("train", "running"), timeout=60_000)
    page.click('#run-graph [data-step="train"]')
    page.wait_for_selector("#step-panel:not([hidden])")
    _log_shows(page, "epoch 3 ")
    chart = '#step-charts .chart[data-key="loss"]'
    page.wait_for_selector(chart, timeout=20_000)
    first = int(page.get_attribute(chart, "data-points") or 0)
    page.wait_for_function("([sel, n]) => Number(document.querySelector(sel).dataset.points) >= n", arg=[chart, first + 5],
                           timeout=20_000)
    assert page.is_visible(f"{chart} canvas")
    params = page.inner_text("#step-parameters")
    assert "<script>alert('param')</script>" in params  # shown as text
    assert page.locator("#step-panel script").count() == 0
    page.screenshot(path=str(_screenshot_path()), full_page=False)

    latencies = [_open_gate(page, console, "train", run_id)]
    _log_shows(page, "<script>alert('log')</script>")
    page.wait_for_selector('#step-metrics td:text("0.875")', timeout=20_000)  # the float metric, as a table
    latencies += [_open_gate(page, console, step, run_id) for step in ("b", "c")]
    timeline_bars = page.locator("#run-timeline .bar").count()
    assert timeline_bars >= 3

    # The page was never reloaded for any of that.
    assert page.evaluate("() => window.notReloaded === true")

    # Stop from the page while d waits, then retry: d runs again and passes its gate.
    page.wait_for_selector(_node("d", "running"), timeout=60_000)
    page.click('#run-graph [data-step="d"]')
    _log_shows(page, "waits for its gate")
    page.click("#stop-button")
    page.wait_for_selector('#run-status[data-state="stopped"]', timeout=30_000)
    page.wait_for_selector(_node("d", "stopped"))
    assert page.is_enabled("#retry-button") and not page.is_enabled("#stop-button")
    (console.gates / "d.waiting").unlink()
    page.click("#retry-button")
    page.wait_for_selector(".run-notice", timeout=10_000)
    latencies.append(_open_gate(page, console, "d", run_id))
    page.wait_for_selector('#run-status[data-state="succeeded"]', timeout=30_000)
    with _api(console) as api:
        run = api.get(f"/runs/{run_id}").json()
        events = api.get(f"/runs/{run_id}/events", params={"after": 0}).text
    assert run["status"] == "succeeded" and run["attempt"] == 2, run
    # Split the latency: gate file -> the store's transition (the job ending, the engine) and
    # the store -> the DOM (the event stream and the page).
    succeeded = [json.loads(f.split("data: ", 1)[1]) for f in events.split("\n\n") if "event: transition" in f]
    succeeded = [e for e in succeeded if e["to"] == "succeeded" and e["step"]]
    engine = []
    for step, wall in GATE_WRITTEN:
        at = [_epoch(e["at"]) for e in succeeded if e["step"] == step]
        engine.append(round(at[-1] - wall, 3))
    assert page.dialogs == [] and page.errors == [], (page.dialogs, page.errors)  # type: ignore[attr-defined]
    _report("event_latency_by_step_s", dict(zip(["train", "b", "c", "d"], [round(x, 3) for x in latencies])))
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    _report("event_latency_s", {"samples": [round(x, 3) for x in latencies], "p95": round(p95, 3),
                                "gate_to_store_s": engine})
    # No bound on the figures here: this measure starts at the gate file (the job noticing it,
    # the engine's finish) and Playwright polls every 500 ms, and CI machines are shared. The
    # target (p95 <= 500 ms, store to DOM) is measured by benchmarks/console_ui.py with a
    # MutationObserver; tests/integration/test_console_event_latency.py checks its mechanism.


def _epoch(text: str) -> float:
    at = datetime.fromisoformat(text)
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()


def _screenshot_path() -> Path:
    """docs/screenshots/run.png when MLOOP_SCREENSHOTS is set (to refresh the README's picture),
    else a temporary file: a test run leaves the checkout as it found it."""
    import tempfile

    target = SCREENSHOT if os.environ.get("MLOOP_SCREENSHOTS") else Path(tempfile.mkdtemp()) / "run.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _report(name: str, value: Any) -> None:
    print(f"\nRUN PAGE FIGURE {name}: {json.dumps(value)}")
    out = os.environ.get("MLOOP_RUN_PAGE_FIGURES")
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps({name: value}) + "\n")


def test_script_strings_show_as_text_and_run_nothing(page: Any, console: Console) -> None:
    page.goto(f"{console.url}/ui/runs/{console.xss_run}")
    node = page.locator("#run-graph [data-step]")
    node.wait_for()
    assert node.get_attribute("data-step") == XSS
    assert XSS in page.inner_text("#run-message")
    node.click()
    _log_shows(page, "onerror")
    log = page.inner_text("#step-log")
    assert XSS in log and "<img src=x onerror=alert(2)>" in log
    assert page.inner_text("#step-name") == XSS and page.inner_text("#step-title") == "title " + XSS
    assert XSS in page.inner_text("#step-message")
    assert page.locator("main script").count() == 1  # only the JSON data block
    assert page.locator("main img").count() == 0
    page.wait_for_timeout(300)
    assert page.dialogs == [] and page.errors == [], (page.dialogs, page.errors)  # type: ignore[attr-defined]


def test_a_500_step_graph_lays_out_and_draws_in_under_a_second(page: Any, console: Console) -> None:
    loads = []
    for _ in range(3):
        started = time.monotonic()
        page.goto(f"{console.url}/ui/runs/{console.big_run}")
        page.wait_for_selector("html[data-run-page=ready]")
        loads.append(time.monotonic() - started)
    graph = page.evaluate("window.runPage.graph")
    assert graph["steps"] == 500 and graph["nodes"] == 500 and not graph["collapsed"], graph
    assert page.locator("#run-graph .node").count() == 500
    assert page.locator('#run-graph [data-state="succeeded"]').count() == 319
    assert page.locator('#run-graph [data-state="failed"]').count() == 1
    assert page.locator("#run-graph path.edge").count() == 450 * 2
    _report("graph_500", {**{k: round(v, 1) if isinstance(v, float) else v for k, v in graph.items()},
                          "page_load_to_drawn_s": [round(x, 3) for x in loads]})
    assert graph["totalMs"] < 1000, graph
    assert page.dialogs == [] and page.errors == [], (page.dialogs, page.errors)  # type: ignore[attr-defined]
