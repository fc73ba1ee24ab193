"""MLflow's wire format as mloop's tracking API answers it: request and response shapes, and
bad requests answered 400/404 with MLflow's error bodies (never a 500).

A real SQLite store and a real local artifact store; no HTTP (the HTTP layers are thin and are
exercised by tests/integration/test_mlflow_tracking.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mloop.artifacts import ArtifactStore
from mloop.store import open_store
from mloop.tracking.api import StepTie, TrackingApi, parse_points


@pytest.fixture
def api(tmp_path: Path) -> Any:
    store = open_store(f"sqlite:///{tmp_path}/mloop.db")
    yield TrackingApi(store, ArtifactStore(str(tmp_path / "artifacts")))
    store.close()


def ok(api: TrackingApi, method: str, path: str, body: Any = None, **query: str) -> dict[str, Any]:
    status, answer = api.call(method, path, query, json.dumps(body).encode() if body is not None else b"")
    assert status == 200, answer
    return answer


def error(api: TrackingApi, method: str, path: str, body: Any = None, **query: str) -> tuple[int, str]:
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    status, answer = api.call(method, path, query, raw)
    assert set(answer) == {"error_code", "message"}, answer
    return status, answer["error_code"]


def new_run(api: TrackingApi, experiment_id: str = "exp") -> str:
    run = ok(api, "POST", "runs/create", {"experiment_id": experiment_id, "start_time": 1000, "run_name": "r",
                                          "tags": [{"key": "mlflow.user", "value": "ann"}]})["run"]
    return str(run["info"]["run_id"])


def test_experiments_are_names_and_zero_is_default(api: TrackingApi) -> None:
    assert ok(api, "GET", "experiments/get-by-name", experiment_name="wf")["experiment"]["experiment_id"] == "wf"
    assert ok(api, "POST", "experiments/create", {"name": "wf"}) == {"experiment_id": "wf"}
    default = ok(api, "GET", "experiments/get", experiment_id="0")["experiment"]
    assert default["name"] == "Default" and default["lifecycle_stage"] == "active"
    assert error(api, "POST", "experiments/create", {}) == (400, "INVALID_PARAMETER_VALUE")


def test_a_run_has_mlflows_shape(api: TrackingApi) -> None:
    run_id = new_run(api)
    ok(api, "POST", "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    ok(api, "POST", "runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"})
    for step in range(3):
        ok(api, "POST", "runs/log-metric", {"run_id": run_id, "key": "loss", "value": 1 / (step + 1),
                                            "step": step, "timestamp": 2000 + step})
    run = ok(api, "GET", "runs/get", run_id=run_id)["run"]
    info = run["info"]
    assert info["run_id"] == info["run_uuid"] == run_id
    assert (info["experiment_id"], info["status"], info["lifecycle_stage"], info["user_id"]) == \
        ("exp", "RUNNING", "active", "ann")
    assert info["start_time"] == 1000 and "end_time" not in info
    assert info["artifact_uri"] == f"mlflow-artifacts:/{run_id}/artifacts"
    assert run["data"]["metrics"] == [{"key": "loss", "value": pytest.approx(1 / 3), "timestamp": 2002, "step": 2}]
    assert {"key": "lr", "value": "0.1"} in run["data"]["params"]
    assert {"key": "k", "value": "v"} in run["data"]["tags"]
    info = ok(api, "POST", "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 5000})["run_info"]
    assert (info["status"], info["end_time"]) == ("FINISHED", 5000)


def test_latest_value_is_the_highest_step(api: TrackingApi) -> None:
    run_id = new_run(api)
    ok(api, "POST", "runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "acc", "value": 0.9, "step": 5, "timestamp": 1}, {"key": "acc", "value": 0.1, "step": 1, "timestamp": 9}]})
    metrics = ok(api, "GET", "runs/get", run_id=run_id)["run"]["data"]["metrics"]
    assert [(m["value"], m["step"]) for m in metrics] == [(0.9, 5)]


@pytest.mark.parametrize("value", ["abc", True, None, [1], {"v": 1}, ""])
def test_a_bad_metric_value_is_400_not_500(api: TrackingApi, value: Any) -> None:
    run_id = new_run(api)
    body = {"run_id": run_id, "key": "loss", "value": value, "timestamp": 1, "step": 0}
    assert error(api, "POST", "runs/log-metric", body) == (400, "INVALID_PARAMETER_VALUE")
    assert error(api, "POST", "runs/log-batch", {"run_id": run_id, "metrics": [body]}) == \
        (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize("field, value", [("step", "x"), ("step", 1.5), ("timestamp", True), ("key", 3), ("key", "")])
def test_bad_steps_timestamps_and_keys_are_400(api: TrackingApi, field: str, value: Any) -> None:
    run_id = new_run(api)
    body = {"run_id": run_id, "key": "loss", "value": 1.0, "timestamp": 1, "step": 0, field: value}
    assert error(api, "POST", "runs/log-metric", body) == (400, "INVALID_PARAMETER_VALUE")


def test_special_values_as_proto_json_sends_them(api: TrackingApi) -> None:
    run_id = new_run(api)
    for value in ("Infinity", "-Infinity", "NaN", "0.25", 3):
        ok(api, "POST", "runs/log-metric", {"run_id": run_id, "key": "x", "value": value, "timestamp": 1})
    history = ok(api, "GET", "metrics/get-history", run_id=run_id, metric_key="x")["metrics"]
    assert [m["value"] for m in history] == [float("inf"), float("-inf"), 0.25, 3.0]  # NaN is not stored


def test_unknown_runs_and_endpoints(api: TrackingApi) -> None:
    assert error(api, "GET", "runs/get", run_id="nope") == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error(api, "POST", "runs/log-metric", {"run_id": "nope", "key": "a", "value": 1, "timestamp": 1}) == \
        (404, "RESOURCE_DOES_NOT_EXIST")
    assert error(api, "GET", "runs/get") == (400, "INVALID_PARAMETER_VALUE")
    assert error(api, "GET", "registered-models/list") == (404, "ENDPOINT_NOT_FOUND")
    assert error(api, "GET", "runs/create") == (404, "ENDPOINT_NOT_FOUND")  # POST only
    assert error(api, "POST", "runs/create", b"{not json") == (400, "MALFORMED_REQUEST")
    assert error(api, "POST", "runs/create", [1, 2]) == (400, "MALFORMED_REQUEST")


def test_params_are_written_once(api: TrackingApi) -> None:
    run_id = new_run(api)
    ok(api, "POST", "runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.1"}]})
    ok(api, "POST", "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})  # the same: fine
    assert error(api, "POST", "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.2"}) == \
        (400, "INVALID_PARAMETER_VALUE")
    assert error(api, "POST", "runs/log-batch", {"run_id": run_id, "params": "lr"}) == (400, "INVALID_PARAMETER_VALUE")


def test_history_and_search_page(api: TrackingApi) -> None:
    run_id = new_run(api)
    ok(api, "POST", "runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "loss", "value": float(i), "step": i, "timestamp": i} for i in range(5)]})
    first = ok(api, "GET", "metrics/get-history", run_id=run_id, metric_key="loss", max_results="3")
    rest = ok(api, "GET", "metrics/get-history", run_id=run_id, metric_key="loss", max_results="3",
              page_token=first["next_page_token"])
    assert [m["step"] for m in first["metrics"] + rest["metrics"]] == [0, 1, 2, 3, 4]
    assert "next_page_token" not in rest
    other = new_run(api, "other")
    found = ok(api, "POST", "runs/search", {"experiment_ids": ["exp"], "max_results": 10})["runs"]
    assert [r["info"]["run_id"] for r in found] == [run_id]
    assert other in [r["info"]["run_id"] for r in ok(api, "POST", "runs/search", {"experiment_ids": ["other"]})["runs"]]
    assert error(api, "POST", "runs/search", {"filter": "metrics.loss > 1"}) == (400, "INVALID_PARAMETER_VALUE")


def test_a_jobs_token_ties_new_runs_to_its_step(api: TrackingApi) -> None:
    tie = StepTie("run-1", "train", 2, "wf")
    status, body = api.call("POST", "runs/create", {}, b'{"experiment_id": "0"}', tie=tie)
    assert status == 200
    record = api.store.tracking.get_run(body["run"]["info"]["run_id"])
    assert (record.experiment, record.run_id, record.step_name) == ("wf", "run-1", "train")
    assert api.store.tracking.values(record.id)["tag"]["mloop.attempt"] == "2"


def test_live_points(api: TrackingApi) -> None:
    run_id = new_run(api)
    body = {"points": [{"key": "loss", "value": 0.5, "step": 1, "timestamp": 10}, {"key": "loss", "value": 0.25}]}
    assert api.ingest(run_id, json.dumps(body).encode()) == (200, {"stored": 2})
    assert api.ingest(run_id, b'{"points": [{"key": "loss", "value": "high"}]}')[0] == 400
    assert api.ingest(run_id, b'{"points": {}}')[0] == 400
    assert api.ingest(run_id, b"junk")[0] == 400
    assert api.ingest("nope", json.dumps(body).encode())[0] == 404
    assert [p.value for p in api.store.tracking.points([run_id])] == [0.5, 0.25]


def test_parse_points_fills_defaults() -> None:
    assert parse_points([{"key": "a", "value": 1}], now_ms=7) == [("a", 1.0, 0, 7)]
    assert parse_points([{"key": "a", "value": "2.5", "step": "3", "timestamp": "4"}]) == [("a", 2.5, 3, 4)]


@pytest.mark.parametrize("path", ["../x", "/abs/x", "{run}/artifacts/../../x", "{run}/artifacts/%2e%2e/x",
                                  "{run}/artifacts/a\x00b", "{run}/artifacts//x", "{run}/other/x",
                                  "{run}/artifacts/a\\..\\b", "{run}/artifacts/./x", "{run}", "c:/x"])
def test_bad_artifact_paths_are_refused(api: TrackingApi, path: str) -> None:
    run_id = new_run(api)
    status, body = api.put_artifact(path.replace("{run}", run_id), b"data")
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body
    assert not list((Path(api.artifacts.root.replace("file://", "")).parent).glob("**/x"))  # type: ignore[union-attr]


def test_artifacts_round_trip(api: TrackingApi) -> None:
    run_id = new_run(api)
    assert api.put_artifact(f"{run_id}/artifacts/model/w%20eights.bin", b"\x00\x01") == (200, {})
    assert api.get_artifact(f"{run_id}/artifacts/model/w eights.bin") == (200, b"\x00\x01")
    assert api.list_artifacts(f"{run_id}/artifacts") == (200, {"files": [{"path": "model", "is_dir": True}]})
    assert api.list_artifacts(f"{run_id}/artifacts/model") == \
        (200, {"files": [{"path": "w eights.bin", "is_dir": False, "file_size": 2}]})
    assert api.get_artifact(f"{run_id}/artifacts/missing")[0] == 404
    assert api.put_artifact("0123456789abcdef/artifacts/x", b"")[0] == 404


def test_the_loopback_endpoint_answers_only_its_tokens(api: TrackingApi) -> None:
    import urllib.error
    import urllib.request

    from mloop.tracking import loopback

    endpoint, token = loopback.acquire(api.store, api.artifacts, StepTie("run-1", "train", 1, "wf"))
    try:
        def get(path: str, auth: str | None) -> tuple[int, dict[str, Any]]:
            headers = {"Authorization": f"Bearer {auth}"} if auth else {}
            try:
                with urllib.request.urlopen(urllib.request.Request(endpoint.url + path, headers=headers)) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        path = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=wf"
        assert get(path, token) == (200, {"experiment": TrackingApi.experiment_json("wf")})
        assert get(path, None)[0] == 401 and get(path, "guess")[0] == 401
        assert get("/api/2.0/mlflow/runs/get?run_id=nope", token)[1]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    finally:
        loopback.release(token)
    assert endpoint.tie(token) is None


def test_metric_logger_never_raises_when_the_endpoint_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.metrics import MetricLogger, live

    monkeypatch.setenv("MLOOP_METRICS_URL", "http://127.0.0.1:9/api/v1/tracking/runs/x/points")
    logger = MetricLogger(tmp_path)
    for i in range(3):
        logger.log_metric("loss", 1 / (i + 1), step=i)
    logger.log_metric("loss", float("nan"), step=3)
    poster = live.live_poster()
    assert poster is not None and logger._live is poster
    poster.flush()
    assert poster.sent == 0 and poster.failed >= 4
    assert json.loads((tmp_path / "metrics.json").read_text())[0]["key"] == "loss"  # the file output stays


def test_metric_logger_without_the_variable_posts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.metrics import MetricLogger

    monkeypatch.delenv("MLOOP_METRICS_URL", raising=False)
    logger = MetricLogger(tmp_path)
    logger.log_metric("loss", 0.5)
    assert logger._live is None and (tmp_path / "metrics.json").exists()
