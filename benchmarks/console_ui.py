"""The web console in a real browser on a big store, beside MLflow's UI on as many runs and points.

    .venv/bin/python benchmarks/console_ui.py [--quick] [--reuse] [--loads 20] [--events 25]
        [--no-mlflow]

Builds (``--reuse`` keeps it) the store of ``server_api.py`` (10,000 runs, 100,000 steps,
1,000,000 metric rows, by its bulk inserts) plus: a console user, a run whose one line chart
holds 1,000,000 points, a finished run of a 500-step workflow and a running run for the
event timing. Starts the real server (``create_app`` under uvicorn, its own process, a loopback
port), logs one headless Chromium (Debian's, driven by Playwright) in through the login form
and times, after one warm-up load each, ``--loads`` loads of:

- the runs list ``/ui/runs``: first paint (the paint timing's first-contentful-paint) and
  fully drawn (the document loaded and the runs table's rows in it);
- a run page ``/ui/runs/{random run}#step=step-0``: first paint, and fully drawn: the graph
  and the step panel with its metrics on screen (``data-drawn`` that run.js sets on <html>);
- the run whose line chart has 1,000,000 points (the server downsamples it to the chart's
  width), to fully drawn;
- the 500-step run, to its graph laid out and drawn as SVG (fully drawn);

and the event latency: with a running run's page open, a step's state is changed through the
store (``store.transition_step``: the run's and events' tables the server reads) and a
MutationObserver in the page records when the step's node shows the new state
(``performance.timeOrigin + performance.now()`` against the writer's ``time.time()``, one
machine, one clock). Two writers: this process (another process than the server, as an
engine started by ``mloop run`` is) and a thread of the server's process (where the server's
own engine writes), through a benchmark-only route the server script adds.

The MLflow peer (``benchmarks/.venv-mlflow``, made if missing) loads as many runs with 100
metric points each (the same 1,000,000 points) with ``server_api.py``'s loader, starts
``mlflow server`` on that SQLite store (a loopback port) and times, in the same browser, the
experiment's runs list, a run's page (overview with its metrics table) and a metric's chart
page, each to first paint and to drawn (the DOM readiness selectors are in ``MLFLOW_READY``).

Prints an 80-column table and writes ``benchmarks/results/console_ui.json``. ``--quick``: 200
runs and a 100,000-point chart, for a try in a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from server_api import (  # noqa: E402
    WORKFLOWS, _free_port, build_store, mlflow_store)

RESULTS = BENCH_DIR / "results" / "console_ui.json"
CHROMIUM = os.environ.get("MLOOP_CHROMIUM", "/usr/bin/chromium")
USER, PASSWORD = "bench", "bench password 1"

#: The mloop server, as server_api.py starts it, plus one benchmark-only route: a step
#: transition written by a thread of the server's process, as its own engine writes them.
SERVER = """
import sys, time, uvicorn
from fastapi.concurrency import run_in_threadpool
from mloop.config import Settings
from mloop.server.app import create_app
home, url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = create_app(Settings(home=home, database_url=url), background=False)

@app.post("/bench/transition/{run_id}/{step}/{status}")
async def bench_transition(run_id: str, step: str, status: str):
    def write():
        at = time.time()
        app.state.backend.store.transition_step(run_id, step, status)
        return at
    return {"at": await run_in_threadpool(write)}

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


# -- the store --------------------------------------------------------------------------------
def add_extras(db: Path, chart_points: int, event_steps: int, seed: int) -> dict[str, Any]:
    """The console user, the long-chart run, the 500-step run and the running run for events."""
    from mloop.store import open_store
    from mloop.store.base import MetricRecord

    rng = random.Random(seed)
    store = open_store(f"sqlite:///{db}")
    try:
        store.users.add(USER, PASSWORD, "run")
        # One step, one line chart of chart_points points.
        release = store.create_release("long-chart", {"name": "long-chart", "steps": [{"name": "train", "type": "job"}]})
        chart = store.create_run(release.id, [("train", "job")])
        store.transition_run(chart.id, "running")
        store.transition_step(chart.id, "train", "running")
        ys, v = [], 1.0
        for _ in range(chart_points):
            v = max(1e-6, v * (1 - 2e-6) + rng.gauss(0, 0.002))
            ys.append(round(v, 6))
        data = {"x_axis": [{"title": "step", "value": list(range(chart_points))}],
                "y_axis": [{"title": "loss", "value": ys}]}
        store.add_metrics(chart.id, "train", [MetricRecord(run_id=chart.id, step_name="train", key="loss",
                                                           title="loss", type="line chart", data=data,
                                                           source="metrics.json")])
        store.transition_step(chart.id, "train", "succeeded")
        store.transition_run(chart.id, "succeeded")
        # 500 steps in 10 layers of 50, each depending on one step of the layer before and
        # taking data from another (the shape of the console test's big graph).
        steps: list[dict[str, Any]] = []
        for i in range(500):
            layer, k = divmod(i, 50)
            step: dict[str, Any] = {"name": f"s{i:03d}", "type": "job"}
            if layer:
                step["depend_steps"] = [f"s{(layer - 1) * 50 + k:03d}"]
                src = f"s{(layer - 1) * 50 + (k + 7) % 50:03d}"
                step["inputs"] = [{"name": "data", "type": "obs", "data": f"$ref/consumptions/{src}/out"}]
            steps.append(step)
        big_release = store.create_release("big-graph", {"name": "big-graph", "steps": steps})
        big = store.create_run(big_release.id, [(s["name"], "job") for s in steps])
        store.transition_run(big.id, "running")
        for s in steps[:320]:
            store.transition_step(big.id, s["name"], "running")
            store.transition_step(big.id, s["name"], "succeeded")
        store.transition_run(big.id, "failed", message="stopped by the benchmark")
        # The event timing's workflow: its run is made once the server is up (a server that
        # starts ends the runs it finds running with no live engine).
        names = [f"e{i:03d}" for i in range(event_steps)]
        store.create_release("events", {"name": "events", "steps": [{"name": n, "type": "job"} for n in names]})
        return {"chart_run": chart.id, "chart_points": chart_points, "graph_run": big.id, "event_steps": names}
    finally:
        store.close()


def prepare(work: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    folder = work / f"mloop-r{args.runs}-s{args.steps}-p{args.points}-c{args.chart_points}"
    db, meta_path = folder / "mloop.db", folder / "meta.json"
    if args.reuse and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if len(meta["event_steps"]) >= 2 * args.events:
            return db, meta
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    meta = build_store(db, args.runs, args.steps, args.points, args.seed)
    meta.update(add_extras(db, args.chart_points, 2 * args.events, args.seed))
    meta["build_s"] = time.perf_counter() - t0
    meta_path.write_text(json.dumps(meta))
    print(f"built {db} in {meta['build_s']:.0f} s", file=sys.stderr)
    return db, meta


def event_run(db: Path, names: list[str]) -> str:
    """A running run of the events workflow, its steps pending: each sample moves one on."""
    from mloop.store import open_store

    store = open_store(f"sqlite:///{db}")
    try:
        release = store.list_releases("events")[-1]
        ev = store.create_run(release.id, [(n, "job") for n in names])
        store.transition_run(ev.id, "running")
        return ev.id
    finally:
        store.close()


# -- the browser ------------------------------------------------------------------------------
def stats(samples: list[float]) -> dict[str, float]:
    """p50 and p95 (nearest rank) of milliseconds."""
    s = sorted(samples)
    rank = max(0, min(len(s) - 1, -(-95 * len(s) // 100) - 1))
    return {"n": len(s), "p50": round(s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2, 1),
            "p95": round(s[rank], 1), "max": round(s[-1], 1)}


#: Returns performance.now() once the page is drawn, else false (asked every animation frame).
RUNS_DRAWN = "() => document.readyState === 'complete' && document.querySelector('table.runs tbody tr') ? performance.now() : false"
RUN_DRAWN = "() => document.documentElement.dataset.drawn === 'ready' && window.runPage ? window.runPage.drawnAt : false"
GRAPH_DRAWN = ("() => document.querySelectorAll('#run-graph svg .node').length >= 500 && window.runPage && window.runPage.graph"
               " ? performance.now() : false")
FIRST_PAINT = """() => {
  const p = performance.getEntriesByType('paint');
  const e = p.find(x => x.name === 'first-contentful-paint') || p.find(x => x.name === 'first-paint');
  return e ? e.startTime : null;
}"""


def time_load(page: Any, url: str, drawn_js: str, timeout_ms: int = 120_000) -> dict[str, float]:
    """Load ``url`` in ``page``; ms from the navigation's start to first paint and to drawn.
    From about:blank each time: a new address that differs only after '#' (MLflow's, the
    long-chart run's) would otherwise be a same-document navigation, not a load."""
    page.goto("about:blank")
    page.goto(url, wait_until="commit", timeout=timeout_ms)
    drawn = page.wait_for_function(drawn_js, polling="raf", timeout=timeout_ms).json_value()
    paint = None
    for _ in range(50):
        paint = page.evaluate(FIRST_PAINT)
        if paint is not None:
            break
        time.sleep(0.02)
    return {"first_paint_ms": float(paint if paint is not None else drawn), "drawn_ms": float(drawn)}


def time_loads(page: Any, urls: Callable[[], str], drawn_js: str, loads: int, label: str) -> dict[str, Any]:
    time_load(page, urls(), drawn_js)  # warm-up: the static files cached, as for a person coming back
    samples = [time_load(page, urls(), drawn_js) for _ in range(loads)]
    out = {"first_paint": stats([s["first_paint_ms"] for s in samples]), "drawn": stats([s["drawn_ms"] for s in samples]),
           "samples": samples}
    print(f"  {label}: first paint p95 {out['first_paint']['p95']:.0f} ms, drawn p95 {out['drawn']['p95']:.0f} ms",
          file=sys.stderr)
    return out


def launch(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])


def log_in(page: Any, url: str) -> None:
    page.goto(url + "/ui/login")
    page.fill("input[name=name]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/ui/", timeout=60_000)


#: In the page: record when a step's node shows a new state (epoch ms, the same clock as
#: Python's time.time() on this machine).
OBSERVE = """() => {
  window.__changes = [];
  new MutationObserver((records) => {
    const at = performance.timeOrigin + performance.now();
    for (const r of records) {
      const step = r.target.getAttribute && r.target.getAttribute('data-step');
      if (step) window.__changes.push({ step, state: r.target.getAttribute('data-state'), at });
    }
  }).observe(document.getElementById('run-graph'), { subtree: true, attributes: true, attributeFilter: ['data-state'] });
  return true;
}"""
CHANGED = "([step, state]) => { const c = (window.__changes || []).find(x => x.step === step && x.state === state); return c ? c.at : false; }"


def time_events(page: Any, base: str, meta: dict[str, Any], samples: int, seed: int) -> dict[str, Any]:
    """Event latency, writer in this process and writer in the server's process."""
    import httpx

    from mloop.store import open_store

    rng = random.Random(seed)
    run_id, names = meta["event_run"], meta["event_steps"]
    page.goto(f"{base}/ui/runs/{run_id}")
    page.wait_for_function("() => window.runPage && window.runPage.streamOpen", timeout=60_000)
    page.evaluate(OBSERVE)
    store = open_store(f"sqlite:///{meta['db']}")
    out: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for mode, chosen in (("other process", names[:samples]), ("server process", names[samples:2 * samples])):
                lat, write = [], []
                for name in chosen:
                    time.sleep(rng.uniform(0.05, 0.35))  # land at any phase of the stream's poll
                    t0 = time.time()
                    if mode == "other process":
                        store.transition_step(run_id, name, "running")
                        write.append((time.time() - t0) * 1000)
                    else:
                        t0 = client.post(f"/bench/transition/{run_id}/{name}/running").json()["at"]
                    at = page.wait_for_function(CHANGED, arg=[name, "running"], polling="raf", timeout=30_000).json_value()
                    lat.append(at - t0 * 1000)
                out[mode] = {**stats(lat), "samples": [round(x, 1) for x in lat]}
                if write:
                    out[mode]["store_write_ms"] = stats(write)
                print(f"  event latency ({mode}): p50 {out[mode]['p50']:.0f} ms, p95 {out[mode]['p95']:.0f} ms",
                      file=sys.stderr)
    finally:
        store.close()
    return out


def measure_mloop(db: Path, meta: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    home = db.parent / "home"
    home.mkdir(exist_ok=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(home), f"sqlite:///{db}", str(port)],
                              cwd=home, env=env, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    meta = {**meta, "db": str(db)}
    try:
        _wait_http(base + "/api/v1/health", server)
        meta["event_run"] = event_run(db, meta["event_steps"])
        with sync_playwright() as pw:
            browser = launch(pw)
            try:
                page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
                log_in(page, base)
                res: dict[str, Any] = {}
                ids = meta["run_ids"]
                res["runs list"] = time_loads(page, lambda: f"{base}/ui/runs", RUNS_DRAWN, args.loads, "runs list")
                res["run page"] = time_loads(page, lambda: f"{base}/ui/runs/{rng.choice(ids)}#step=step-0", RUN_DRAWN,
                                             args.loads, "run page")
                res[f"chart of {meta['chart_points']:,} points"] = time_loads(
                    page, lambda: f"{base}/ui/runs/{meta['chart_run']}#step=train", RUN_DRAWN, args.loads, "long chart")
                res["500-step graph"] = time_loads(page, lambda: f"{base}/ui/runs/{meta['graph_run']}", GRAPH_DRAWN,
                                                   args.loads, "500-step graph")
                res["graph layout+draw (run.js)"] = page.evaluate("() => window.runPage.graph")
                res["events"] = time_events(page, base, meta, args.events, args.seed)
            finally:
                browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return res


def _wait_http(url: str, proc: subprocess.Popen[bytes], limit: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + limit
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not answer at {url}")
        time.sleep(0.3)


# -- the MLflow peer ----------------------------------------------------------------------------
#: MLflow's React UI: what "drawn" waits for on each page (mlflow 3.x; see the README).
MLFLOW_READY = {
    # the experiment's "Training runs" table (ag-grid) with its first rows
    "runs list": "() => document.querySelectorAll('.ag-center-cols-container .ag-row').length >= 10 ? performance.now() : false",
    # the run's overview with its metrics table: the row of the run's first metric and value
    "run page": ("() => [...document.querySelectorAll('[role=row]')].some(r => /^loss0[0-9.]/.test(r.textContent))"
                 " ? performance.now() : false"),
    # the metric page's chart (Plotly) with its line drawn
    "metric chart": "() => document.querySelector('.js-plotly-plot .scatterlayer path.js-line') ? performance.now() : false",
}


def measure_mlflow(work: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    from playwright.sync_api import sync_playwright

    found = mlflow_store(work, args)
    if found is None:
        return None
    python, db, meta_path, script, env = found
    meta = json.loads(meta_path.read_text())
    port = _free_port()
    mlflow = python.parent / "mlflow"
    artifacts = db.parent / "artifacts"  # beside its store, in the folder mlflow_store() made
    artifacts.mkdir(exist_ok=True)
    server = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", f"sqlite:///{db}",
                               "--default-artifact-root", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    by_exp: dict[str, list[str]] = {}
    for i, rid in enumerate(meta["run_ids"]):
        by_exp.setdefault(meta["experiments"][i % WORKFLOWS], []).append(rid)
    exps = list(by_exp)
    res: dict[str, Any] = {"version": meta["version"], "points_per_run": meta["points"]}
    try:
        _wait_http(base + "/health", server)
        with sync_playwright() as pw:
            browser = launch(pw)
            try:
                page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()

                def run_url(suffix: str = "") -> str:
                    exp = rng.choice(exps)
                    return f"{base}/#/experiments/{exp}/runs/{rng.choice(by_exp[exp])}{suffix}"

                def chart_url() -> str:
                    exp = rng.choice(exps)
                    runs = json.dumps([rng.choice(by_exp[exp])])
                    q = f'runs={runs}&metric="{meta["key"]}"&experiments=["{exp}"]&plot_metric_keys=["{meta["key"]}"]'
                    return f"{base}/#/metric?{q}"

                res["runs list"] = time_loads(page, lambda: f"{base}/#/experiments/{rng.choice(exps)}/runs",
                                              MLFLOW_READY["runs list"], args.loads, "MLflow runs list")
                res["run page"] = time_loads(page, run_url, MLFLOW_READY["run page"], args.loads, "MLflow run page")
                res["metric chart"] = time_loads(page, chart_url, MLFLOW_READY["metric chart"], args.loads,
                                                 "MLflow metric chart")
            finally:
                browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return res


# -- main -------------------------------------------------------------------------------------
def table(payload: dict[str, Any]) -> None:
    print(f"{'page (p50 / p95 ms over ' + str(payload['loads']) + ' loads)':<44}{'first paint':>17}{'drawn':>17}")
    rows = [("mloop", k, v) for k, v in payload["mloop"].items() if isinstance(v, dict) and "drawn" in v]
    if payload.get("mlflow"):
        rows += [(f"MLflow {payload['mlflow']['version']}", k, v) for k, v in payload["mlflow"].items()
                 if isinstance(v, dict) and "drawn" in v]
    for tool, name, v in rows:
        fp, dr = v["first_paint"], v["drawn"]
        print(f"{(tool + ': ' + name)[:44]:<44}{fp['p50']:>8.0f} /{fp['p95']:>7.0f}{dr['p50']:>8.0f} /{dr['p95']:>7.0f}")
    print(f"{'event latency, store -> DOM (p50 / p95 ms)':<44}{'':>17}{'latency':>17}")
    for mode, v in payload["mloop"]["events"].items():
        mark = "ok" if v["p95"] <= 500 else "OVER"
        label = f"  writer in the {mode} ({v['n']})"
        print(f"{label:<44}{mark:>17}{v['p50']:>8.0f} /{v['p95']:>7.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 runs and a 100,000-point chart")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--points", type=int, default=10, help="metric entries per step (default 10: 1M in all)")
    parser.add_argument("--chart-points", type=int, default=None, help="points of the long chart (default 1,000,000)")
    parser.add_argument("--mlflow-points", type=int, default=100, help="metric points per MLflow run (default 100)")
    parser.add_argument("--loads", type=int, default=20, help="timed loads per page (default 20)")
    parser.add_argument("--events", type=int, default=25, help="state changes timed per writer (default 25)")
    parser.add_argument("--reuse", action="store_true", help="reuse the stores built by an earlier run")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow peer")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.runs = args.runs or (200 if args.quick else 10_000)
    args.chart_points = args.chart_points or (100_000 if args.quick else 1_000_000)

    work = Path(tempfile.gettempdir()) / "mloop-bench-console-ui"
    work.mkdir(parents=True, exist_ok=True)
    db, meta = prepare(work, args)
    from mloop.store.schema import upgrade_database

    upgrade_database(f"sqlite:///{db}")
    loads_before = os.getloadavg()
    payload: dict[str, Any] = {"runs": meta["runs"], "steps": meta["runs"] * meta["steps"],
                               "metric_rows": meta["runs"] * meta["steps"] * meta["points"],
                               "chart_points": meta["chart_points"], "loads": args.loads,
                               "load_average_before": loads_before}
    print("mloop console...", file=sys.stderr)
    payload["mloop"] = measure_mloop(db, meta, args)
    payload["load_average_after_mloop"] = os.getloadavg()
    if not args.no_mlflow:
        print("MLflow UI...", file=sys.stderr)
        payload["mlflow"] = measure_mlflow(work, args)
    payload["load_average_after"] = os.getloadavg()
    payload["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    payload["date"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    payload["chromium"] = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()

    print(f"store: {payload['runs']:,} runs, {payload['steps']:,} steps, {payload['metric_rows']:,} metric rows;"
          f" a {payload['chart_points']:,}-point chart; a 500-step graph")
    table(payload)
    print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in loads_before)};"
          f" after: {' '.join(f'{x:.2f}' for x in payload['load_average_after'])}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
