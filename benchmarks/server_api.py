"""The team server's read API on a big store, beside MLflow's ``search_runs`` on as many runs.

    .venv/bin/python benchmarks/server_api.py [--reuse] [--requests 200] [--no-mlflow]
        [--with-index SQL ...] [--explain] [--json]

Builds (once; ``--reuse`` keeps it) an mloop SQLite store of 10 workflows, 10,000 runs in mixed
statuses, 10 steps per run (100,000) and 10 metric entries per step (1,000,000), by bulk
Core inserts after ``open_store`` created the schema, under ``<tmp>/mloop-bench-server-api``.
Then starts the real server (``create_app(settings, background=False)`` under uvicorn, its
own process, a loopback port) and times, over one keep-alive httpx connection, interleaved,
``--requests`` of each after a warm-up:

- ``GET /api/v1/runs?limit=50`` (the first page),
- ``GET /api/v1/runs?workflow=wf-3&status=failed&limit=50&offset=100`` (filtered, 3rd page),
- ``GET /api/v1/runs/{random id}`` (a run with its 10 steps),
- ``GET /api/v1/runs/{random id}/metrics?step=<random step>`` (10 entries).

The same store calls are also timed in-process (no HTTP), to compare with MLflow's client,
which talks to its SQLite store in-process too. The MLflow peer (``benchmarks/.venv-mlflow``,
made if missing: ``python3 -m venv`` + ``pip install mlflow``) loads 10,000 runs into 10
experiments with ``MlflowClient.log_batch`` (10 params, ``--mlflow-points`` metric points per
run) and times ``search_runs(all experiments, "attributes.status = 'FAILED'", max_results=50)``,
``search_runs`` with no filter, ``get_run(id)`` and ``get_metric_history(id, key)``.

``--with-index SQL`` (repeatable) times a copy of the store with that statement applied, e.g.
``--with-index "CREATE INDEX bx ON runs(created_at, number)"``; ``--explain`` prints SQLite's
query plans of the list, detail and metrics queries. Target (the issue): p95 ≤ 50 ms each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "server_api.json"
MLFLOW_VENV = BENCH_DIR / ".venv-mlflow"
WORKFLOWS = 10
STATUSES = ["succeeded"] * 6 + ["failed"] * 2 + ["stopped", "running"]  # a run's status, by weight
MLFLOW_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "stopped": "KILLED", "running": "RUNNING"}


# -- the mloop store ------------------------------------------------------------------------------
def build_store(db: Path, runs: int, steps: int, points: int, seed: int) -> dict[str, Any]:
    """Fill a fresh SQLite store; returns what the timing needs (run ids, step names, a token)."""
    from sqlalchemy import insert

    from mloop.store import open_store
    from mloop.store.models import Release, Run, Step

    t0 = time.perf_counter()
    rng = random.Random(seed)
    store = open_store(f"sqlite:///{db}")
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    step_names = [f"step-{i}" for i in range(steps)]
    releases = [dict(id=uuid.uuid4().hex, workflow_name=f"wf-{w}", version=1, spec={"name": f"wf-{w}"},
                     spec_hash=f"{w:064x}", created_at=base, extend={}) for w in range(WORKFLOWS)]
    run_rows, step_rows, run_ids = [], [], []
    numbers = [0] * WORKFLOWS
    for i in range(runs):
        w = i % WORKFLOWS
        numbers[w] += 1
        status = rng.choice(STATUSES)
        created = base + timedelta(seconds=60 * i)
        finished = None if status == "running" else created + timedelta(seconds=50)
        run_id = uuid.uuid4().hex
        run_ids.append(run_id)
        run_rows.append(dict(
            id=run_id, release_id=releases[w]["id"], workflow_name=f"wf-{w}", number=numbers[w], status=status,
            params={f"p{k}": k * 0.1 for k in range(10)}, storages={}, selected_steps=None, created_at=created,
            started_at=created + timedelta(seconds=1), finished_at=finished, engine_pid=None, engine_host=None,
            engine_started_at=None, stop_requested=False, message=None, attempt=1, origin=None))
        for p, name in enumerate(step_names):
            st = "running" if status == "running" and p == steps - 1 else (
                "failed" if status == "failed" and p == steps - 1 else "succeeded")
            step_rows.append(dict(
                run_id=run_id, name=name, position=p, type="job", status=st, attempt=1, created_at=created,
                started_at=created + timedelta(seconds=1 + 4 * p), finished_at=created + timedelta(seconds=4 + 4 * p),
                pid=1000 + p, executor_ref=f"local:{1000 + p}:0", exit_code=0, message=None,
                inputs={"data": "obs://bucket/in"}, outputs={"model": f"obs://bucket/{run_id}/{name}"},
                outputs_skipped=False, workdir=f"/tmp/w/{run_id}/{name}", log_path=f"/tmp/w/{run_id}/{name}.log",
                code_hash="0" * 64))
    with store.engine.begin() as conn:
        conn.execute(insert(Release), releases)
        conn.execute(insert(Run), run_rows)
        conn.execute(insert(Step), step_rows)
    # The million metric rows: the same Core table, through the driver's executemany with values
    # already in their stored form (JSON text), which is ~5x quicker than Core's per-row binds.
    keys = [f"loss{k}" for k in range(max(1, points // 10))]
    sql = ("INSERT INTO metrics (run_id, step_name, key, title, type, value, data, source) "
           "VALUES (?, ?, ?, ?, 'float', ?, ?, 'metrics.json')")
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for run_id in run_ids:
            cur.executemany(sql, [(run_id, name, keys[j % len(keys)], keys[j % len(keys)], rng.random(),
                                   f'{{"step": {j}}}') for name in step_names for j in range(points)])
        raw.commit()
    finally:
        raw.close()
    _record, token = store.tokens.create("bench", "read")
    store.close()
    meta = {"runs": runs, "steps": steps, "points": points, "run_ids": run_ids, "step_names": step_names,
            "token": token, "build_s": time.perf_counter() - t0}
    return meta


def explain(db: Path, meta: dict[str, Any]) -> None:
    """SQLite's plans of the statements the four endpoints run (as SQLAlchemy writes them)."""
    from sqlalchemy import select

    from mloop.store.models import Metric, Run, Step

    run_id, step = meta["run_ids"][0], meta["step_names"][0]
    queries = {
        "runs?limit=50": select(Run).order_by(Run.created_at.desc(), Run.number.desc()).limit(50),
        "runs?workflow&status": select(Run).where(Run.workflow_name == "wf-3", Run.status.in_(["failed"]))
        .order_by(Run.created_at.desc(), Run.number.desc()).limit(50).offset(100),
        "steps of a run": select(Step).where(Step.run_id == run_id).order_by(Step.position),
        "metrics of a step": select(Metric).where(Metric.run_id == run_id, Metric.step_name == step)
        .order_by(Metric.id),
    }
    con = sqlite3.connect(db)
    for name, q in queries.items():
        compiled = q.compile(compile_kwargs={"literal_binds": True})
        print(f"-- {name}")
        for row in con.execute(f"EXPLAIN QUERY PLAN {compiled}"):
            print(f"   {row[3]}")
    con.close()


# -- timing -----------------------------------------------------------------------------------
def stats_ms(samples: list[float]) -> dict[str, float]:
    s = sorted(x * 1000 for x in samples)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]

    return {"n": len(s), "p50": statistics.median(s), "p95": pct(95), "p99": pct(99), "max": s[-1]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVER = """
import sys, uvicorn
from mloop.config import Settings
from mloop.server.app import create_app
home, url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = create_app(Settings(home=home, database_url=url), background=False)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def time_http(db: Path, home: Path, meta: dict[str, Any], requests: int, seed: int) -> dict[str, dict[str, float]]:
    """Start the server on ``db`` and time the four endpoints, interleaved."""
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(home), f"sqlite:///{db}", str(port)],
                              cwd=home, env=env, stdin=subprocess.DEVNULL)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                              headers={"Authorization": f"Bearer {meta['token']}"})
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.get("/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        rng = random.Random(seed)
        ids, steps = meta["run_ids"], meta["step_names"]
        endpoints = {
            "GET /runs?limit=50": lambda: "/api/v1/runs?limit=50",
            "GET /runs?workflow&status&offset": lambda: "/api/v1/runs?workflow=wf-3&status=failed&limit=50&offset=100",
            "GET /runs/{id}": lambda: f"/api/v1/runs/{rng.choice(ids)}",
            "GET /runs/{id}/metrics?step": lambda: f"/api/v1/runs/{rng.choice(ids)}/metrics?step={rng.choice(steps)}",
        }
        samples: dict[str, list[float]] = {name: [] for name in endpoints}
        for rnd in range(20 + requests):  # the first 20 rounds warm up
            for name, path in endpoints.items():
                url = path()
                t0 = time.perf_counter()
                resp = client.get(url)
                elapsed = time.perf_counter() - t0
                if resp.status_code != 200:
                    raise SystemExit(f"{url}: {resp.status_code} {resp.text[:300]}")
                if rnd >= 20:
                    samples[name].append(elapsed)
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {name: stats_ms(s) for name, s in samples.items()}


def time_inprocess(db: Path, meta: dict[str, Any], requests: int, seed: int) -> dict[str, dict[str, float]]:
    """The same reads as store calls in this process (what the routes call, without HTTP)."""
    from mloop.store import open_store

    store = open_store(f"sqlite:///{db}")
    rng = random.Random(seed)
    ids, steps = meta["run_ids"], meta["step_names"]
    calls = {
        "store.list_runs(limit=50)": lambda: store.list_runs(limit=50),
        "store.list_runs(wf, failed, offset)": lambda: store.list_runs("wf-3", ["failed"], 50, 100),
        "store.get_run + list_steps": lambda: (lambda r: store.list_steps(r.id))(store.get_run(rng.choice(ids))),
        "store.list_metrics(run, step)": lambda: store.list_metrics(rng.choice(ids), rng.choice(steps)),
    }
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for rnd in range(10 + requests):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            if rnd >= 10:
                samples[name].append(time.perf_counter() - t0)
    store.close()
    return {name: stats_ms(s) for name, s in samples.items()}


# -- the MLflow peer ----------------------------------------------------------------------------
MLFLOW_SCRIPT = r'''
import json, os, random, statistics, sys, time
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

mode, db, meta_path = sys.argv[1], sys.argv[2], sys.argv[3]
client = MlflowClient(tracking_uri=f"sqlite:///{db}")
if mode == "load":
    runs, points, workflows, seed = (int(x) for x in sys.argv[4:8])
    statuses = json.loads(sys.argv[8])
    rng = random.Random(seed)
    t0 = time.perf_counter()
    exps = [client.create_experiment(f"wf-{w}") for w in range(workflows)]
    keys = [f"loss{k}" for k in range(max(1, points // 10))]
    ids = []
    now = int(time.time() * 1000)
    for i in range(runs):
        run = client.create_run(exps[i % workflows], start_time=now + i)
        rid = run.info.run_id
        metrics = [Metric(keys[j % len(keys)], rng.random(), now + j, j // len(keys)) for j in range(points)]
        params = [Param(f"p{k}", str(k * 0.1)) for k in range(10)]
        client.log_batch(rid, metrics=metrics, params=params)
        status = rng.choice(statuses)
        if status != "RUNNING":
            client.set_terminated(rid, status=status)
        ids.append(rid)
        if i % 1000 == 999:
            print(f"mlflow: {i + 1} runs, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    json.dump({"experiments": exps, "run_ids": ids, "key": keys[0], "runs": runs, "points": points,
               "load_s": time.perf_counter() - t0, "version": mlflow.__version__}, open(meta_path, "w"))
else:
    requests, seed = int(sys.argv[4]), int(sys.argv[5])
    meta = json.load(open(meta_path))
    rng = random.Random(seed)
    exps, ids, key = meta["experiments"], meta["run_ids"], meta["key"]
    calls = {
        "search_runs(FAILED, 50)": lambda: client.search_runs(exps, filter_string="attributes.status = 'FAILED'",
                                                              max_results=50),
        "search_runs(50)": lambda: client.search_runs(exps, max_results=50),
        "get_run(id)": lambda: client.get_run(rng.choice(ids)),
        "get_metric_history(id, key)": lambda: client.get_metric_history(rng.choice(ids), key),
    }
    samples = {name: [] for name in calls}
    for rnd in range(10 + requests):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            if rnd >= 10:
                samples[name].append(time.perf_counter() - t0)
    json.dump({"version": mlflow.__version__, "samples": samples}, sys.stdout)
'''


def ensure_mlflow_venv() -> Path | None:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        print("creating benchmarks/.venv-mlflow (pip install mlflow)...", file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(MLFLOW_VENV)], check=True)
        if subprocess.run([str(python), "-m", "pip", "install", "-q", "mlflow"]).returncode != 0:
            return None
    return python


def mlflow_store(work: Path, args: argparse.Namespace) -> tuple[Path, Path, Path, Path, dict[str, str]] | None:
    """MLflow's venv and its SQLite store loaded with ``args.runs`` runs of ``args.mlflow_points``
    points (kept with ``--reuse``): (python, db, meta.json, the peer script, env); None when
    mlflow can't be installed."""
    python = ensure_mlflow_venv()
    if python is None:
        print("mlflow could not be installed: measuring mloop alone", file=sys.stderr)
        return None
    folder = work / f"mlflow-r{args.runs}-p{args.mlflow_points}"
    db, meta_path, script = folder / "mlflow.db", folder / "meta.json", work / "mlflow_peer.py"
    script.write_text(MLFLOW_SCRIPT)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    if not (args.reuse and meta_path.exists()):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        statuses = json.dumps([MLFLOW_STATUS[s] for s in STATUSES])
        subprocess.run([str(python), str(script), "load", str(db), str(meta_path), str(args.runs),
                        str(args.mlflow_points), str(WORKFLOWS), str(args.seed), statuses], env=env, check=True)
    return python, db, meta_path, script, env


def time_mlflow(work: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    found = mlflow_store(work, args)
    if found is None:
        return None
    python, db, meta_path, script, env = found
    out = subprocess.run([str(python), str(script), "measure", str(db), str(meta_path), str(args.requests),
                          str(args.seed)], env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout)
    meta = json.loads(meta_path.read_text())
    return {"version": result["version"], "load_s": meta["load_s"], "points_per_run": meta["points"],
            "results": {name: stats_ms(s) for name, s in result["samples"].items()}}


# -- main -------------------------------------------------------------------------------------
def _table(title: str, results: dict[str, dict[str, float]]) -> None:
    print(f"{title:<42} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'≤50':>5}")
    for name, r in results.items():
        print(f"  {name:<40} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} {'yes' if r['p95'] <= 50 else 'NO':>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=10, help="steps per run (default 10)")
    parser.add_argument("--points", type=int, default=10, help="metric entries per step (default 10: 1M in all)")
    parser.add_argument("--mlflow-points", type=int, default=100, help="metric points per MLflow run (default 100)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint (default 200)")
    parser.add_argument("--reuse", action="store_true", help="reuse the stores built by an earlier run")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow peer")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP server (in-process only)")
    parser.add_argument("--with-index", action="append", default=[], metavar="SQL",
                        help="also time a copy of the store with this statement applied (repeatable)")
    parser.add_argument("--explain", action="store_true", help="print SQLite's query plans")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help=f"also write {RESULTS.relative_to(REPO_DIR)}")
    args = parser.parse_args()

    work = Path(tempfile.gettempdir()) / "mloop-bench-server-api"
    store_dir = work / f"mloop-r{args.runs}-s{args.steps}-p{args.points}"
    db, meta_path = store_dir / "mloop.db", store_dir / "meta.json"
    if not (args.reuse and meta_path.exists()):
        shutil.rmtree(store_dir, ignore_errors=True)
        store_dir.mkdir(parents=True)
        meta = build_store(db, args.runs, args.steps, args.points, args.seed)
        meta_path.write_text(json.dumps(meta))
        print(f"built {db} in {meta['build_s']:.0f} s", file=sys.stderr)
    meta = json.loads(meta_path.read_text())
    from mloop.store.schema import upgrade_database

    upgrade_database(f"sqlite:///{db}")  # a store cached by an older tree: migrate it, as `mloop db upgrade`
    variants: list[tuple[str, Path]] = [("as is", db)]
    if args.with_index:
        copy = store_dir / "mloop-indexed.db"
        shutil.copyfile(db, copy)
        con = sqlite3.connect(copy)
        for statement in args.with_index:
            con.execute(statement)
        con.execute("ANALYZE") if any("ANALYZE" in s.upper() for s in args.with_index) else None
        con.commit()
        con.close()
        variants.append(("indexed", copy))
        for statement in args.with_index:
            print(f"indexed: {statement}", file=sys.stderr)

    payload: dict[str, Any] = {"runs": meta["runs"], "steps": meta["runs"] * meta["steps"],
                               "metric_rows": meta["runs"] * meta["steps"] * meta["points"], "with_index": args.with_index,
                               "variants": {}}
    for label, path in variants:
        if args.explain:
            print(f"query plans ({label}):")
            explain(path, meta)
        home = store_dir / "home"
        home.mkdir(exist_ok=True)
        entry: dict[str, Any] = {}
        if not args.no_http:
            entry["http"] = time_http(path, home, meta, args.requests, args.seed)
        entry["inprocess"] = time_inprocess(path, meta, args.requests, args.seed)
        payload["variants"][label] = entry
    if not args.no_mlflow:
        payload["mlflow"] = time_mlflow(work, args)

    print(f"store: {payload['runs']:,} runs, {payload['steps']:,} steps, {payload['metric_rows']:,} metric rows;"
          f" {args.requests} requests each")
    for label, entry in payload["variants"].items():
        if "http" in entry:
            _table(f"mloop server, HTTP ({label})", entry["http"])
        _table(f"mloop store in-process ({label})", entry["inprocess"])
    if payload.get("mlflow"):
        m = payload["mlflow"]
        _table(f"MLflow {m['version']} client, SQLite", m["results"])
        ours = payload["variants"]["as is"]["inprocess"]
        mine, theirs = ours["store.list_runs(wf, failed, offset)"], m["results"]["search_runs(FAILED, 50)"]
        print(f"ratio filtered list p50, MLflow / mloop in-process: {theirs['p50'] / mine['p50']:.1f}x;"
              f" get_run: {m['results']['get_run(id)']['p50'] / ours['store.get_run + list_steps']['p50']:.1f}x")
    load = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {load:.2f}")
    payload["load_1min"] = load
    if args.json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
