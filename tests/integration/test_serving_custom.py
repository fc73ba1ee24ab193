"""A ModelArts-style ``customize_service.py`` runs unchanged: its class is built with the model
name and path, ``_preprocess`` gets ModelArts' multipart shape, and a service that raises
answers 500 while the server keeps serving."""

from __future__ import annotations

import io
import logging
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mloop.errors import ModelLoadError
from mloop.serving.custom import load_custom_service
from serving_helpers import serve_folder, torchscript_model

# The service below loads TorchScript the way ModelArts examples do; torch 2.13 warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.load.*is deprecated:DeprecationWarning")

# Written the way ModelArts' PyTorch example writes it (seed 003): base class from
# model_service.pytorch_model_service, `import log`, label file beside the model file.
SERVICE = textwrap.dedent('''\
    import json
    import os

    import log
    import numpy as np
    import torch
    from PIL import Image

    from model_service.pytorch_model_service import PTServingBaseService

    logger = log.getLogger(__name__)


    class DigitService(PTServingBaseService):
        def __init__(self, model_name, model_path):
            super(DigitService, self).__init__(model_name, model_path)
            self.model = torch.jit.load(model_path)
            self.model.eval()
            dir_path = os.path.dirname(os.path.realpath(self.model_path))
            with open(os.path.join(dir_path, "label.json")) as f:
                self.label = json.load(f)

        def _preprocess(self, data):
            preprocessed = {}
            for k, v in data.items():
                if not isinstance(v, dict):
                    continue
                batch = []
                for file_name, file_content in v.items():
                    with Image.open(file_content) as image:
                        pixels = np.asarray(image.convert("L"), dtype=np.float32)[:2, :2].reshape(4) / 255.0
                        batch.append(torch.from_numpy(pixels))
                if data.get("fail") == "preprocess":
                    raise RuntimeError("preprocess was told to fail")
                preprocessed[k] = torch.stack(batch)
            return preprocessed

        def _postprocess(self, data):
            results = []
            for k, v in data.items():
                for row in v.numpy():
                    results.append({"field": k, "label": self.label[int(row.argmax())]})
            return {"results": results, "model": self.model_name}
''')


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def digit_service(tmp_path: Path) -> tuple[Path, object]:
    folder = tmp_path / "model"
    net = torchscript_model(folder)
    (folder / "label.json").write_text('["zero", "one", "two"]')
    (folder / "customize_service.py").write_text(SERVICE)
    return folder, net


def test_modelarts_service_takes_a_multipart_image_upload(digit_service: tuple[Path, object]) -> None:
    import torch

    folder, net = digit_service
    pixels = np.random.default_rng(3).integers(0, 256, size=(28, 28))
    expected_row = net(torch.from_numpy(pixels[:2, :2].reshape(1, 4).astype(np.float32) / 255.0))  # type: ignore[operator]
    expected = ["zero", "one", "two"][int(expected_row.argmax())]
    with serve_folder(folder, model_name="digits") as url:
        r = httpx.post(f"{url}/", files={"images": ("digit.png", _png(pixels), "image/png")})
        info = httpx.get(f"{url}/info").json()
    assert r.status_code == 200, r.text
    assert r.json() == {"results": [{"field": "images", "label": expected}], "model": "digits"}
    # ModelArts passes the model *file* to PyTorch services.
    assert info["service_class"] == "DigitService" and info["model_path"].endswith("model.pt")


def test_raising_service_answers_500_logs_the_traceback_and_keeps_serving(
        digit_service: tuple[Path, object], caplog: pytest.LogCaptureFixture) -> None:
    folder, _ = digit_service
    png = _png(np.zeros((28, 28)))
    with caplog.at_level(logging.ERROR, logger="mloop.serving"), serve_folder(folder) as url:
        bad = httpx.post(f"{url}/predict", files={"images": ("a.png", png, "image/png")}, data={"fail": "preprocess"})
        good = httpx.post(f"{url}/predict", files={"images": ("a.png", png, "image/png")})
    assert bad.status_code == 500
    assert "DigitService.inference raised RuntimeError: preprocess was told to fail" in bad.json()["error"]
    assert good.status_code == 200
    logged = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records)
    assert "DigitService.inference raised" in logged
    assert any(r.exc_info and "preprocess was told to fail" in str(r.exc_info[1]) for r in caplog.records)


def test_service_whose_constructor_raises_fails_to_load(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "customize_service.py").write_text(textwrap.dedent('''\
        from model_service.model_service import SingleNodeService

        class Broken(SingleNodeService):
            def __init__(self, model_name, model_path):
                super().__init__(model_name, model_path)
                raise FileNotFoundError("weights.bin is missing")
    '''))
    with pytest.raises(ModelLoadError, match="Broken.*raised FileNotFoundError: weights.bin is missing"):
        load_custom_service(folder, "m")


def test_batched_custom_service_sees_several_requests_in_one_call(tmp_path: Path) -> None:
    import concurrent.futures

    folder = tmp_path / "batched"
    folder.mkdir()
    (folder / "customize_service.py").write_text(textwrap.dedent('''\
        import time
        from model_service.model_service import SingleNodeService

        class Doubler(SingleNodeService):
            def _preprocess(self, data):
                return data["x"]

            def _inference_batch(self, items):
                time.sleep(0.02)  # a slow model: requests pile up behind it
                return [{"y": x * 2, "batch": len(items)} for x in items]
    '''))
    with serve_folder(folder) as url, httpx.Client(limits=httpx.Limits(max_connections=32)) as client:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: client.post(f"{url}/predict", json={"x": i}).json(), range(48)))
    assert [a["y"] for a in answers] == [i * 2 for i in range(48)]
    assert max(a["batch"] for a in answers) > 1
