"""MLflow-compatible tracking and live metrics, with real parts on loopback.

* a JobStep whose script logs with the real ``mlflow`` client (when installed) or with plain
  ``urllib`` in MLflow's wire format runs embedded; its step ends with the tracking run's
  latest values as metrics (source ``mlflow``), its params and tags kept, every point stored;
* a script outside mloop logs to the team server (real uvicorn on 127.0.0.1, an API token),
  and ``runs/get`` returns its values; bad artifact paths and missing tokens are refused;
* ``MetricLogger`` points arrive while the job still runs: the job waits on a file the test
  writes only once it has seen points through ``GET /api/v1/runs/{id}/metrics/points``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import Embedded, database_url, embedded, wait_until, write_job, write_workflow  # noqa: F401
from mloop.cli import load_workflow
from mloop.runs import execute_run
from mloop.runs.service import start_run

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
needs_mlflow = pytest.mark.skipif(not HAS_MLFLOW, reason="the mlflow client is not installed (pip install mlflow-skinny)")

MLFLOW_JOB = """
import mlflow
mlflow.start_run()
mlflow.log_param("lr", 0.1)
for i in range(20):
    mlflow.log_metric("loss", 1 / (i + 1), step=i)
mlflow.set_tag("k", "v")
mlflow.end_run()
"""

#: The same calls as MLflow's client makes them, with the standard library only.
WIRE_JOB = """
import json, os, urllib.request

def call(method, path, body=None):
    url = os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/" + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"], "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())

run_id = os.environ["MLFLOW_RUN_ID"]
assert call("GET", "runs/get?run_id=" + run_id)["run"]["info"]["status"] == "RUNNING"
call("POST", "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
for i in range(20):
    call("POST", "runs/log-metric", {"run_id": run_id, "key": "loss", "value": 1 / (i + 1), "step": i,
                                     "timestamp": 1000 + i})
call("POST", "runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"})
call("POST", "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 5000})
"""


def _flow(tmp_path: Path, body: str) -> Path:
    write_job(tmp_path / "code", body)
    return write_workflow(tmp_path, """
        workflow = wf.Workflow(name="tracked", desc="mlflow inside a job", steps=[job("train")])
    """)


def _check_tracked_step(embedded: Embedded, run_id: str) -> None:
    result = embedded.result(run_id)
    assert result.status == "succeeded", result.why()
    loss = [m for m in result.metrics if m.step_name == "train" and m.key == "loss"]
    assert len(loss) == 1 and loss[0].value == pytest.approx(1 / 20) and loss[0].source == "mlflow"
    tracked = embedded.store.tracking.runs_of_step(run_id, "train")
    assert len(tracked) == 1 and tracked[0].experiment == "tracked" and tracked[0].status == "FINISHED"
    values = embedded.store.tracking.values(tracked[0].id)
    assert values["param"] == {"lr": "0.1"} and values["tag"]["k"] == "v"
    points = embedded.store.tracking.points([tracked[0].id], key="loss")
    assert [p.step for p in points] == list(range(20))


@needs_mlflow
def test_a_job_logging_with_the_mlflow_client_is_captured_into_its_step(tmp_path: Path, embedded: Embedded) -> None:
    result = start_run(embedded.backend, load_workflow(str(_flow(tmp_path, MLFLOW_JOB))))
    _check_tracked_step(embedded, result.run.id)


def test_a_job_speaking_mlflows_wire_format_is_captured_into_its_step(tmp_path: Path, embedded: Embedded) -> None:
    result = start_run(embedded.backend, load_workflow(str(_flow(tmp_path, WIRE_JOB))))
    _check_tracked_step(embedded, result.run.id)


def test_a_job_without_tracking_calls_gets_no_tracking_metrics(tmp_path: Path, embedded: Embedded) -> None:
    result = start_run(embedded.backend, load_workflow(str(_flow(
        tmp_path, "assert os.environ['MLFLOW_TRACKING_URI'].startswith('http://127.0.0.1:')\n"))))
    finished = embedded.result(result.run.id)
    assert finished.status == "succeeded", finished.why()
    assert [m for m in finished.metrics if m.source == "mlflow"] == []
    assert embedded.store.tracking.runs_of_step(result.run.id, "train")[0].status == "FINISHED"


# -- the team server -------------------------------------------------------------------------------

class LiveServer:
    """``create_app`` served by uvicorn in a thread on 127.0.0.1 (a free port), with a token."""

    def __init__(self, home: Path) -> None:
        import uvicorn

        from mloop.config import Settings
        from mloop.server.app import create_app

        self.app = create_app(Settings(home=home), background=False)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 30, "the server to start")
        self.url = "http://127.0.0.1:%d" % self.server.servers[0].sockets[0].getsockname()[1]
        self.token = self.app.state.backend.store.tokens.create("tracking", "run")[1]

    def call(self, method: str, path: str, body: bytes | None = None, token: str | None = "default") -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / ".mloop")
    yield server
    server.stop()


OUTSIDE_SCRIPT = """
import mlflow
mlflow.set_experiment("team-exp")
with mlflow.start_run(run_name="outside") as run:
    mlflow.log_params({"lr": 0.01, "layers": 3})
    for i in range(5):
        mlflow.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 10}, step=i)
    mlflow.set_tags({"team": "vision"})
    with open("notes.txt", "w") as fh:
        fh.write("trained")
    mlflow.log_artifact("notes.txt")
print(run.info.run_id)
"""

OUTSIDE_WIRE = """
import json, os, urllib.request

def call(path, body):
    req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/" + path,
                                 data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"], "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())

run = call("runs/create", {"experiment_id": "team-exp", "run_name": "outside", "start_time": 1})["run"]
run_id = run["info"]["run_id"]
call("runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.01"}, {"key": "layers", "value": "3"}],
                        "tags": [{"key": "team", "value": "vision"}],
                        "metrics": [{"key": k, "value": v, "step": i, "timestamp": i}
                                    for i in range(5) for k, v in (("loss", 1.0 / (i + 1)), ("acc", i / 10))]})
req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow-artifacts/artifacts/"
                             + run_id + "/artifacts/notes.txt", data=b"trained", method="PUT",
                             headers={"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]})
urllib.request.urlopen(req).read()
call("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 2})
print(run_id)
"""


@pytest.mark.parametrize("script", [pytest.param(OUTSIDE_SCRIPT, marks=needs_mlflow, id="mlflow"),
                                    pytest.param(OUTSIDE_WIRE, id="wire")])
def test_a_script_outside_mloop_logs_to_the_server(tmp_path: Path, live_server: LiveServer, script: str) -> None:
    work = tmp_path / "outside"
    work.mkdir()
    (work / "train.py").write_text(textwrap.dedent(script))
    env = {**os.environ, "MLFLOW_TRACKING_URI": live_server.url, "MLFLOW_TRACKING_TOKEN": live_server.token}
    env.pop("MLFLOW_RUN_ID", None)
    done = subprocess.run([sys.executable, "train.py"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]

    status, body = live_server.call("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}")
    assert status == 200, body
    run = body["run"]
    assert run["info"]["status"] == "FINISHED" and run["info"]["experiment_id"] == "team-exp"
    metrics = {m["key"]: (m["value"], m["step"]) for m in run["data"]["metrics"]}
    assert metrics == {"loss": (pytest.approx(0.2), 4), "acc": (pytest.approx(0.4), 4)}
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params == {"lr": "0.01", "layers": "3"}
    assert {"key": "team", "value": "vision"} in run["data"]["tags"]
    record = live_server.app.state.backend.store.tracking.get_run(run_id)
    assert record.run_id is None and record.step_name is None  # not a job of mloop
    status, listing = live_server.call("GET", f"/api/2.0/mlflow-artifacts/artifacts?path={run_id}/artifacts")
    assert status == 200 and listing["files"] == [{"path": "notes.txt", "is_dir": False, "file_size": 7}]

    # Artifacts outside the run, or no token: refused.
    for bad in (f"{run_id}/artifacts/%2e%2e/%2e%2e/escape", f"{run_id}/artifacts/..%2f..%2fescape",
                "..%2F..%2Fescape", f"{run_id}/artifacts/a%00b"):
        status, body = live_server.call("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{bad}", b"x")
        assert status in (400, 404) and body["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"), (bad, body)
    assert not list(tmp_path.rglob("escape"))
    assert live_server.call("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}", token=None)[0] == 401
    assert live_server.call("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}", token="mloop_wrong")[0] == 401
    status, body = live_server.call("POST", "/api/2.0/mlflow/runs/log-metric",
                                    json.dumps({"run_id": run_id, "key": "x", "value": "high"}).encode())
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


# -- live metrics ----------------------------------------------------------------------------------

LIVE_JOB = """
from mloop.metrics import MetricLogger

logger = MetricLogger(args.out)
for i in range(10):
    logger.log_metric("loss", 1 / (i + 1), step=i)
wait_for_file(os.path.join(os.environ["MA_JOB_DIR"], "..", "..", "..", "..", "go"))
logger.log_metric("loss", 0.01, step=10)
"""


def test_metric_logger_points_arrive_while_the_job_runs(tmp_path: Path, embedded: Embedded,
                                                        live_server: LiveServer) -> None:
    # The server opens the same home as the embedded backend: it reads what the job reports.
    run = embedded.create(_flow(tmp_path, LIVE_JOB))
    runner = threading.Thread(target=execute_run, args=(embedded.backend, run.id), daemon=True)
    runner.start()
    seen: list[dict[str, Any]] = []

    def points_arrived() -> bool:
        status, body = live_server.call("GET", f"/api/v1/runs/{run.id}/metrics/points?step=train&key=loss")
        assert status == 200, body
        seen[:] = body["points"]
        return len(seen) >= 10

    wait_until(points_arrived, 60, lambda: f"10 live points of the job (saw {len(seen)})")
    assert embedded.store.get_run(run.id).status == "running"  # the job waits for us: it still runs
    assert [p["step"] for p in seen] == list(range(10)) and seen[0]["step_name"] == "train"
    workdir = embedded.store.list_steps(run.id)[0].workdir
    assert workdir
    go = Path(workdir, "..", "..", "..", "..", "go")
    go.write_text("go")
    runner.join(120)
    finished = embedded.result(run.id)
    assert finished.status == "succeeded", finished.why()
    status, body = live_server.call("GET", f"/api/v1/runs/{run.id}/metrics/points?after={seen[-1]['id']}")
    assert status == 200 and [(p["key"], p["value"], p["step"]) for p in body["points"]] == [("loss", 0.01, 10)]
    # The same points as Server-Sent Events; the stream ends with the run.
    request = urllib.request.Request(f"{live_server.url}/api/v1/runs/{run.id}/metrics/stream?after={seen[5]['id']}",
                                     headers={"Authorization": f"Bearer {live_server.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    frames = [f for f in text.split("\n\n") if "event: metric" in f]
    assert [json.loads(f.split("data: ", 1)[1])["step"] for f in frames] == [6, 7, 8, 9, 10]
    assert frames[0].startswith(f"id: {seen[6]['id']}\n") and text.rstrip().endswith("event: end\ndata: {}")
    # No metrics file is configured for the step: the latest live point is its metric.
    assert [(m.value, m.source) for m in finished.metrics if m.key == "loss"] == [(0.01, "mlflow")]


def test_a_read_token_may_search_but_not_write(live_server: LiveServer) -> None:
    """MLflow's searches are POSTs that change nothing: a ``read`` token (a dashboard, a
    notebook that only looks) makes them; creating a run still needs ``run``."""
    reader = live_server.app.state.backend.store.tokens.create("looker", "read")[1]
    status, body = live_server.call("POST", "/api/2.0/mlflow/experiments/search",
                                    json.dumps({"max_results": 10}).encode(), token=reader)
    assert status == 200, body
    status, body = live_server.call("POST", "/api/2.0/mlflow/runs/search",
                                    json.dumps({"experiment_ids": ["0"]}).encode(), token=reader)
    assert status == 200, body
    status, body = live_server.call("POST", "/api/2.0/mlflow/runs/create",
                                    json.dumps({"experiment_id": "0"}).encode(), token=reader)
    assert status == 403 and "run" in json.dumps(body), body
    status, body = live_server.call("POST", "/api/2.0/mlflow/runs/search/../create",
                                    json.dumps({"experiment_id": "0"}).encode(), token=reader)
    assert status in (403, 404), body  # a path that only looks like a search is not one
