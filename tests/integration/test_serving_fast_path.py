"""``POST /predict`` is answered by a lean ASGI path beside FastAPI (``ServingApp``): it must accept
and answer exactly what the FastAPI route did, stay described in the OpenAPI page, and keep the
standard library's JSON behaviour where ``orjson`` would differ (NaN, huge integers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import numpy as np
import pytest

from mloop.serving.app import _dumps, _loads
from serving_helpers import metric_value, serve_folder, torchscript_model

X = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)


def test_lean_path_answers_like_the_route_and_openapi_still_describes_it(tmp_path: Path) -> None:
    torchscript_model(tmp_path / "ts")
    with serve_folder(tmp_path / "ts") as url:
        lean = httpx.post(f"{url}/predict", json={"inputs": X.tolist()})
        modelarts = httpx.post(f"{url}/", json={"instances": X.tolist()})
        # NaN is not JSON, but Python's json module (and so this server) always took it
        nan = httpx.post(f"{url}/predict", content=b'{"inputs": [[NaN, 0.0, 1.0, 2.0]]}',
                         headers={"content-type": "application/json; charset=utf-8"})
        schema = httpx.get(f"{url}/openapi.json").json()
        get_predict = httpx.get(f"{url}/predict")
        metrics = httpx.get(f"{url}/metrics").text
    assert lean.status_code == 200 and lean.headers["content-type"] == "application/json"
    assert int(lean.headers["content-length"]) == len(lean.content)
    assert lean.json() == modelarts.json()
    assert len(lean.json()["predictions"]) == 3
    assert nan.status_code == 200
    assert math.isnan(json.loads(nan.content)["outputs"][0][0])  # written as NaN, not null
    assert "post" in schema["paths"]["/predict"] and "post" in schema["paths"]["/"]
    assert "multipart/form-data" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert get_predict.status_code == 405  # other methods still go through FastAPI's routing
    assert metric_value(metrics, "mloop_requests_total", path="/predict", status="200") == 2
    assert metric_value(metrics, "mloop_requests_total", path="/", status="200") == 1
    assert metric_value(metrics, "mloop_requests_total", path="/predict", status="405") == 1
    assert metric_value(metrics, "mloop_request_duration_seconds_count", path="/predict") == 3  # 2 POST + GET


def test_json_helpers_match_the_standard_library() -> None:
    assert _loads(b'{"inputs": [1, 2.5]}') == {"inputs": [1, 2.5]}
    assert math.isnan(_loads(b"[NaN]")[0])  # orjson refuses it; json takes it
    assert _loads(b"[123456789012345678901234567890]") == [pytest.approx(1.2345678901234568e29)]  # as a float
    with pytest.raises(ValueError, match="Expecting"):  # json's message, as before
        _loads(b"{oops")
    body = {"outputs": [[0.1, -2.5e-07]], "predictions": ["3"], "n": 1, "ok": True, "none": None}
    assert json.loads(_dumps(body)) == body
    assert _dumps({"x": [float("nan")]}) == b'{"x": [NaN]}'  # json's spelling, not orjson's null
    with pytest.raises(ValueError):  # error bodies stay strict JSON
        _dumps({"x": float("inf")}, status=500)
    arr = np.array([[0.25, 1.0]])
    assert json.loads(_dumps({"a": arr, "f32": arr.astype(np.float32), "i": np.arange(3)})) == {
        "a": [[0.25, 1.0]], "f32": [[0.25, 1.0]], "i": [0, 1, 2]}
    assert json.loads(_dumps({"s": {1, 2}} | {"t": (1, 2)})) == {"s": [1, 2], "t": [1, 2]}


def test_without_orjson_the_standard_library_does_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    import mloop.serving.app as app_module

    monkeypatch.setattr(app_module, "orjson", None)  # as where the serve extra's orjson is missing
    assert _loads(b'{"inputs": [NaN, 1]}')["inputs"][1] == 1
    assert json.loads(_dumps({"a": np.array([0.5]), "b": [1, "x"]})) == {"a": [0.5], "b": [1, "x"]}
