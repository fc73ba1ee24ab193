"""Metric ingestion: points/s into mloop's tracking endpoint, against MLflow's own ``log_metric``.

Everything runs in this process on 127.0.0.1, with a fresh SQLite store per trial (the
embedded default), through the same loopback endpoint a job gets (``mloop.tracking.loopback``):

* **batched**: ``POST /api/v1/tracking/runs/<id>/points`` with ``--batch`` points per request
  (what ``MetricLogger`` sends), over one keep-alive connection; the time runs from the first
  request to the last answer, so every point counted is stored (target ≥ 50,000 points/s);
* **one-by-one, MetricLogger**: ``MetricLogger.log_metric`` once per point with
  ``MLOOP_METRICS_URL`` set (``min_write_interval=1.0`` so the metrics file is not rewritten
  per call), until the last point is stored;
* **one-by-one, wire**: one ``runs/log-metric`` request per point (what MLflow's client sends),
  plain ``http.client``, keep-alive;
* **one-by-one, mlflow → mloop**: MLflow's client ``log_metric`` against the loopback endpoint;
* **MLflow's own**: ``mlflow.log_metric`` once per point against its own store, ``file:``
  (a folder) and, if MLflow's SQL store can be built here, ``sqlite:``. Not measured (said so)
  when mlflow is not importable.

Prints a table; writes ``benchmarks/results/metric_ingest-<time>.json``.

    .venv/bin/python benchmarks/metric_ingest.py --points 200000 --single 2000 --trials 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))


def _endpoint(folder: str) -> tuple[Any, Any, str, str]:
    from mloop.artifacts import ArtifactStore
    from mloop.store import open_store
    from mloop.tracking import loopback
    from mloop.tracking.api import StepTie

    store = open_store(f"sqlite:///{folder}/mloop.db")
    endpoint, token = loopback.acquire(store, ArtifactStore(os.path.join(folder, "artifacts")),
                                       StepTie("bench", "train", 1, "bench"))
    run = store.tracking.create_run("bench", "bench")
    return store, endpoint, token, run.id


def _close(store: Any, token: str) -> None:
    from mloop.tracking import loopback

    loopback.release(token)
    store.close()


def batched(points: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        store, endpoint, token, run_id = _endpoint(folder)
        now = int(time.time() * 1000)
        bodies = [json.dumps({"points": [{"key": "loss", "value": 1.0 / (i + 1), "step": i, "timestamp": now}
                                         for i in range(start, min(points, start + batch))]}).encode()
                  for start in range(0, points, batch)]
        conn = http.client.HTTPConnection("127.0.0.1", endpoint.port)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        started = time.perf_counter()
        for body in bodies:
            conn.request("POST", f"/api/v1/tracking/runs/{run_id}/points", body, headers)
            answer = conn.getresponse()
            data = answer.read()
            assert answer.status == 200, data
        elapsed = time.perf_counter() - started
        conn.close()
        stored = len(store.tracking.points([run_id], limit=points + 1))
        assert stored == points, (stored, points)
        _close(store, token)
        return points / elapsed


def single_wire(points: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        store, endpoint, token, run_id = _endpoint(folder)
        conn = http.client.HTTPConnection("127.0.0.1", endpoint.port)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        started = time.perf_counter()
        for i in range(points):
            body = json.dumps({"run_id": run_id, "key": "loss", "value": 1.0 / (i + 1), "step": i,
                               "timestamp": int(time.time() * 1000)})
            conn.request("POST", "/api/2.0/mlflow/runs/log-metric", body, headers)
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200
        elapsed = time.perf_counter() - started
        conn.close()
        _close(store, token)
        return points / elapsed


def single_logger(points: int) -> float:
    from mloop.metrics import MetricLogger, live

    with tempfile.TemporaryDirectory() as folder:
        store, endpoint, token, run_id = _endpoint(folder)
        env = {"MLOOP_METRICS_URL": f"{endpoint.url}/api/v1/tracking/runs/{run_id}/points",
               "MLOOP_METRICS_TOKEN": token}
        os.environ.update(env)
        try:
            logger = MetricLogger(os.path.join(folder, "out"), min_write_interval=1.0)
            started = time.perf_counter()
            for i in range(points):
                logger.log_metric("loss", 1.0 / (i + 1), step=i)
            poster = live.live_poster()
            assert poster is not None
            poster.flush()
            elapsed = time.perf_counter() - started
        finally:
            for key in env:
                os.environ.pop(key, None)
        stored = len(store.tracking.points([run_id], limit=points + 1))
        assert stored == points, (stored, points)
        _close(store, token)
        return points / elapsed


def single_mlflow(points: int, uri: str | None) -> float:
    """``mlflow.log_metric`` per point; ``uri`` None: against mloop's loopback endpoint."""
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        store = token = None
        if uri is None:
            store, endpoint, token, _ = _endpoint(folder)
            os.environ["MLFLOW_TRACKING_TOKEN"] = token
            tracking_uri = endpoint.url
        else:
            tracking_uri = uri.format(folder=folder)
        mlflow.set_tracking_uri(tracking_uri)
        try:
            mlflow.set_experiment("bench")
            with mlflow.start_run():
                started = time.perf_counter()
                for i in range(points):
                    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
                elapsed = time.perf_counter() - started
        finally:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
            if store is not None and token is not None:
                _close(store, token)
        return points / elapsed


def _median(fn: Callable[[], float], trials: int) -> dict[str, Any]:
    values = [fn() for _ in range(trials)]
    return {"median": statistics.median(values), "trials": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000, help="points per batched trial")
    parser.add_argument("--batch", type=int, default=5000, help="points per request (batched)")
    parser.add_argument("--single", type=int, default=2000, help="points per one-by-one trial")
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, Any] = {}
    results["batched"] = _median(lambda: batched(args.points, args.batch), args.trials)
    results["logger_one_by_one"] = _median(lambda: single_logger(args.single), args.trials)
    results["wire_one_by_one"] = _median(lambda: single_wire(args.single), args.trials)
    try:
        import mlflow
    except ImportError:
        results["mlflow"] = "not measured: mlflow is not importable in this venv"
    else:
        import logging

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        results["mlflow_version"] = mlflow.__version__
        results["mlflow_client_to_mloop"] = _median(lambda: single_mlflow(args.single, None), args.trials)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps it, in maintenance mode
        try:
            results["mlflow_own_file_store"] = _median(
                lambda: single_mlflow(args.single, "file://{folder}/mlruns"), args.trials)
        except Exception as exc:  # noqa: BLE001
            results["mlflow_own_file_store"] = f"not measured: {type(exc).__name__}: {exc}"[:300]
        try:
            results["mlflow_own_sqlite_store"] = _median(
                lambda: single_mlflow(args.single, "sqlite:///{folder}/mlflow.db"), args.trials)
        except Exception as exc:  # noqa: BLE001 - mlflow-skinny has no SQL store (alembic etc.)
            results["mlflow_own_sqlite_store"] = f"not measured: {type(exc).__name__}: {exc}"[:300]

    print(f"{'measure':32} {'points/s (median)':>18}   trials")
    for name, value in results.items():
        if isinstance(value, dict):
            trials = ", ".join(f"{v:,.0f}" for v in value["trials"])
            print(f"{name:32} {value['median']:>18,.0f}   {trials}")
        else:
            print(f"{name:32} {value}")
    own = results.get("mlflow_own_file_store")
    if isinstance(own, dict):
        for name in ("logger_one_by_one", "wire_one_by_one", "mlflow_client_to_mloop"):
            print(f"{name} / mlflow file store: {results[name]['median'] / own['median']:.1f}x")
    print(f"batched target >= 50,000 points/s: {'met' if results['batched']['median'] >= 50_000 else 'NOT met'}")
    out = BENCH_DIR / "results"
    out.mkdir(exist_ok=True)
    path = out / f"metric_ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"args": vars(args), "python": sys.version, "results": results}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
