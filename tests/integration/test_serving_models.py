"""The inference server answers for each model type, over real HTTP, what a direct call of the
model answers; bad requests get the 4xx that says what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from mloop.errors import ModelLoadError
from mloop.serving.loaders import detect_model_type, load_model
from serving_helpers import (metric_value, onnx_model, serve_folder, sklearn_model,
                                               state_dict_model, torchscript_model)

X = np.random.default_rng(7).normal(size=(5, 4)).astype(np.float32)


def _torch_direct(net: object, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()  # type: ignore[operator]


class TestModelTypes:
    def test_torchscript_batch_matches_direct_call(self, tmp_path: Path) -> None:
        net = torchscript_model(tmp_path / "ts")
        assert detect_model_type(tmp_path / "ts") == "torchscript"
        expected = _torch_direct(net, X)
        with serve_folder(tmp_path / "ts") as url:
            r = httpx.post(f"{url}/predict", json={"inputs": X.tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        np.testing.assert_allclose(body["outputs"], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(body["probabilities"], np.exp(expected), rtol=1e-5, atol=1e-6)
        assert body["predictions"] == [["a", "b", "c"][i] for i in expected.argmax(axis=1)]

    def test_state_dict_with_class_file_single_instance(self, tmp_path: Path) -> None:
        net = state_dict_model(tmp_path / "sd")
        assert detect_model_type(tmp_path / "sd") == "pytorch_state_dict"
        expected = _torch_direct(net, X[:1])
        with serve_folder(tmp_path / "sd") as url:
            r = httpx.post(f"{url}/predict", json={"inputs": X[0].tolist()})  # one instance, no batch dim
            info = httpx.get(f"{url}/info").json()
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["outputs"], expected, rtol=1e-5, atol=1e-6)
        assert info["model_type"] == "pytorch_state_dict" and info["input_shape"] == [4]

    def test_sklearn_joblib_predictions_and_probabilities(self, tmp_path: Path) -> None:
        model = sklearn_model(tmp_path / "sk")
        x = X.astype(np.float64)
        with serve_folder(tmp_path / "sk") as url:
            r = httpx.post(f"{url}/predict", json={"inputs": x.tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["predictions"] == model.predict(x).tolist()
        np.testing.assert_allclose(body["probabilities"], model.predict_proba(x), rtol=1e-9)

    def test_onnx_built_with_helper(self, tmp_path: Path) -> None:
        w, b = onnx_model(tmp_path / "onnx")
        with serve_folder(tmp_path / "onnx") as url:
            r = httpx.post(f"{url}/", json={"inputs": X.tolist()})  # ModelArts' path
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["outputs"], X @ w + b, rtol=1e-5, atol=1e-5)


class TestBadInput:
    def test_wrong_shape_is_422_naming_the_expected_shape(self, tmp_path: Path) -> None:
        torchscript_model(tmp_path / "ts")
        with serve_folder(tmp_path / "ts") as url:
            r = httpx.post(f"{url}/predict", json={"inputs": [[1.0, 2.0, 3.0]]})
            ragged = httpx.post(f"{url}/predict", json={"inputs": [[1.0, 2.0], [3.0]]})
            words = httpx.post(f"{url}/predict", json={"inputs": [["a", "b", "c", "d"]]})
            missing = httpx.post(f"{url}/predict", json={"data": [1, 2, 3, 4]})
            not_json = httpx.post(f"{url}/predict", content=b"{oops", headers={"content-type": "application/json"})
            ok = httpx.post(f"{url}/predict", json={"inputs": X.tolist()})
        assert r.status_code == 422
        assert "shape (1, 3)" in r.json()["error"] and "(4,)" in r.json()["error"] and "float32" in r.json()["error"]
        assert ragged.status_code == 422 and "rectangular" in ragged.json()["error"]
        assert words.status_code == 422
        assert missing.status_code == 422 and "'inputs'" in missing.json()["error"]
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
        assert ok.status_code == 200

    def test_oversized_body_is_413_before_and_while_reading(self, tmp_path: Path) -> None:
        torchscript_model(tmp_path / "ts")
        with serve_folder(tmp_path / "ts", max_body_bytes=2000) as url:
            big = json.dumps({"inputs": [[0.5] * 4] * 400}).encode()
            declared = httpx.post(f"{url}/predict", content=big, headers={"content-type": "application/json"})

            def chunks():  # no Content-Length: the limit is enforced as the body streams in
                for i in range(0, len(big), 500):
                    yield big[i:i + 500]

            streamed = httpx.post(f"{url}/predict", content=chunks(), headers={"content-type": "application/json"})
            small = httpx.post(f"{url}/predict", json={"inputs": X[:2].tolist()})
            metrics = httpx.get(f"{url}/metrics").text
        assert declared.status_code == 413 and "at most 2000 bytes" in declared.json()["error"]
        assert streamed.status_code == 413
        assert small.status_code == 200
        assert metric_value(metrics, "mloop_requests_total", path="/predict", status="413") == 2

    def test_model_that_takes_no_images_refuses_uploads_with_415(self, tmp_path: Path) -> None:
        torchscript_model(tmp_path / "ts")
        with serve_folder(tmp_path / "ts") as url:
            r = httpx.post(f"{url}/predict", files={"file": ("x.png", b"\x89PNG...", "image/png")})
            plain = httpx.post(f"{url}/predict", content=b"hello", headers={"content-type": "text/plain"})
        assert r.status_code == 415 and "does not take images" in r.json()["error"]
        assert plain.status_code == 415


class TestLoadFailures:
    def test_folder_without_model_names_what_was_looked_for(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.txt").write_text("hi")
        with pytest.raises(ModelLoadError, match="no model file found.*notes.txt"):
            load_model(tmp_path / "empty")

    def test_corrupt_torchscript_carries_the_loader_error(self, tmp_path: Path) -> None:
        folder = tmp_path / "bad"
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"not an onnx file")
        with pytest.raises(ModelLoadError, match="onnx loader failed"):
            load_model(folder)
