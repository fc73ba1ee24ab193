"""The MNIST example's job scripts, run as real processes the way a JobStep runs them.

``prepare_data.py`` and ``report.py`` are quick. Training is marked ``slow`` (a real CNN,
about 20-40 s on 2 CPU cores) and needs torch (``pip install 'mloop[mnist]'``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from mloop.metrics import load_metrics_file, read_metric_value

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mnist"
CODE = EXAMPLE / "code"
MLOOP = Path(sys.executable).with_name("mloop")

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is not installed (pip install 'mloop[mnist]')")


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


idx = _load("mnist_idx_for_scripts", CODE / "idx.py")


def run_script(script: str, *args: str, cwd: Path, timeout: float = 300, check: bool = True,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code/<script>`` in a fresh interpreter, from ``cwd`` (not the code folder)."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    environ.update(env or {})
    result = subprocess.run([sys.executable, str(CODE / script), *args], cwd=cwd, env=environ,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"{script} {' '.join(args)} exited {result.returncode}\n"
                    f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mnist") / "data"
    run_script("prepare_data.py", f"--output_url={out}", "--seed=0", "--unknown_arg=1", cwd=out.parent)
    return out


class TestPrepareData:
    def test_writes_the_four_mnist_files(self, data_dir: Path) -> None:
        assert sorted(p.name for p in data_dir.iterdir()) == sorted(idx.MNIST_FILES.values())
        train_x, train_y, test_x, test_y = idx.load_mnist(data_dir)
        assert train_x.shape[1:] == (28, 28) and train_x.dtype == np.uint8
        assert len(train_x) + len(test_x) == 1797  # scikit-learn's digits
        assert len(test_x) == math.ceil(1797 * 0.2)  # scikit-learn rounds the test share up
        assert sorted(np.unique(test_y).tolist()) == list(range(10)), "the split is stratified"
        assert train_x.max() == 255 and train_x.min() == 0
        # MNIST's layout: the digit lies in the central 20x20 box, the 4-pixel border is empty.
        assert not train_x[:, :4].any() and not train_x[:, -4:].any()
        assert not train_x[:, :, :4].any() and not train_x[:, :, -4:].any()

    def test_same_seed_same_bytes_other_seed_other_split(self, data_dir: Path, tmp_path: Path) -> None:
        run_script("prepare_data.py", f"--output_url={tmp_path / 'a'}", "--seed=0", cwd=tmp_path)
        run_script("prepare_data.py", f"--output_url={tmp_path / 'b'}", "--seed=1", "--test_fraction=0.3",
                   cwd=tmp_path)
        for name in idx.MNIST_FILES.values():
            assert (tmp_path / "a" / name).read_bytes() == (data_dir / name).read_bytes()
        assert len(idx.read_labels(tmp_path / "b" / "t10k-labels-idx1-ubyte")) == math.ceil(1797 * 0.3)

    def test_rejects_a_bad_fraction(self, tmp_path: Path) -> None:
        result = run_script("prepare_data.py", f"--output_url={tmp_path}", "--test_fraction=1.5", cwd=tmp_path,
                            check=False)
        assert result.returncode == 2 and "test_fraction" in result.stderr


def write_train_output(folder: Path, accuracy: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entries = [{"key": "accuracy", "title": "accuracy", "type": "float", "data": {"value": accuracy}},
               {"key": "loss", "title": "loss", "type": "float", "data": {"value": 0.25}}]
    (folder / "metrics.json").write_text(json.dumps(entries))
    (folder / "config.json").write_text(json.dumps({"model_type": "PyTorch"}))
    return folder


class TestReport:
    def test_accept_copies_the_summary(self, tmp_path: Path) -> None:
        model = write_train_output(tmp_path / "model", 0.97)
        result = run_script("report.py", "--decision=accept", f"--model_url={model}",
                            f"--output_url={tmp_path / 'report'}", "--min_accuracy=0.95", cwd=tmp_path)
        assert "model accepted" in result.stdout
        summary = json.loads((tmp_path / "report" / "summary.json").read_text())
        assert summary["metrics"] == {"accuracy": 0.97, "loss": 0.25}
        assert summary["model_config"] == {"model_type": "PyTorch"}

    def test_reject_fails_and_says_why(self, tmp_path: Path) -> None:
        model = write_train_output(tmp_path / "model", 0.5)
        result = run_script("report.py", "--decision=reject", f"--model_url={model}", "--min_accuracy=0.95",
                            cwd=tmp_path, check=False)
        assert result.returncode == 1
        assert "model rejected" in result.stderr and "0.5" in result.stderr and "0.95" in result.stderr


@needs_torch
class TestTrain:
    @pytest.mark.slow
    @pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
    def test_trains_a_good_model_with_the_defaults(self, data_dir: Path, tmp_path: Path) -> None:
        import torch

        out = tmp_path / "model"
        started = time.monotonic()
        result = run_script("train.py", f"--data_url={data_dir}", f"--train_url={out}", cwd=tmp_path)
        seconds = time.monotonic() - started
        print(f"\ntrain.py with default parameters: {seconds:.1f}s\n{result.stdout}")
        assert "epoch 1/" in result.stdout and "done: accuracy" in result.stdout

        for name in ("model.pt", "model_state.pt", "net.py", "config.json", "metrics.json"):
            assert (out / name).is_file(), f"{name} missing from train_url"

        entries = {e.key: e for e in load_metrics_file(out / "metrics.json")}
        accuracy = read_metric_value([str(out / "metrics.json")], "accuracy")
        assert accuracy >= 0.95, f"test accuracy {accuracy} below 0.95\n{result.stdout}"
        assert entries["loss"].type == "float" and entries["loss"].value is not None
        assert entries["train_loss"].type == "line chart"
        epochs = entries["train_loss"].data["x_axis"][0]["value"]
        assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 1

        table = entries["confusion_matrix"]
        assert table.type == "table"
        cells = np.array(table.data["cell_value"])
        test_labels = idx.read_labels(data_dir / "t10k-labels-idx1-ubyte")
        assert cells.shape == (10, 10)
        assert cells.sum() == len(test_labels)
        assert table.data["row_labels"]["value"] == [str(i) for i in range(10)]
        assert table.data["col_labels"]["value"] == [str(i) for i in range(10)]
        # columns are the true labels: each column sums to that class's test count
        assert cells.sum(axis=0).tolist() == np.bincount(test_labels, minlength=10).tolist()
        assert np.trace(cells) / cells.sum() == pytest.approx(accuracy)

        config = json.loads((out / "config.json").read_text())
        assert config["model_type"] == "PyTorch" and config["input_shape"] == [1, 1, 28, 28]
        assert config["classes"] == [str(i) for i in range(10)]

        # The TorchScript model runs without net.py and agrees with the reported accuracy.
        test_images = idx.read_images(data_dir / "t10k-images-idx3-ubyte")
        x = torch.from_numpy(test_images).float().div(255).unsqueeze(1)
        scripted = torch.jit.load(str(out / "model.pt"))
        scripted.eval()
        with torch.no_grad():
            out_scripted = scripted(x[:1])
            assert out_scripted.shape == (1, 10)
            predictions = scripted(x).argmax(dim=1).numpy()
        assert (predictions == test_labels).mean() == pytest.approx(accuracy)

        # model_state.pt + the copied net.py give the same outputs.
        net = _load("copied_net", out / "net.py")
        model = net.Net()
        model.load_state_dict(torch.load(out / "model_state.pt"))
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x[:8]), scripted(x[:8]))

    @pytest.mark.slow
    def test_same_seed_same_model(self, data_dir: Path, tmp_path: Path) -> None:
        runs = []
        for name in ("a", "b"):
            run_script("train.py", f"--data_url={data_dir}", f"--train_url={tmp_path / name}", "--epochs=1",
                       "--num_threads=1", "--seed=3", cwd=tmp_path)
            entries = load_metrics_file(tmp_path / name / "metrics.json")
            runs.append({e.key: (e.value, e.data.get("cell_value")) for e in entries if e.type in ("float", "table")})
        assert runs[0] == runs[1]

    def test_missing_data_is_reported(self, data_dir: Path, tmp_path: Path) -> None:
        result = run_script("train.py", f"--data_url={tmp_path / 'empty'}", f"--train_url={tmp_path / 'out'}",
                            cwd=tmp_path, check=False)
        assert result.returncode == 2 and "train-images-idx3-ubyte" in result.stderr

    def test_writes_metrics_without_mloop(self, tmp_path: Path) -> None:
        """The fallback writer (mloop not importable) writes files mloop reads back."""
        script = (
            "import sys; sys.modules['mloop.metrics'] = None\n"
            f"sys.path.insert(0, {str(CODE)!r})\n"
            "import train\n"
            "assert train.MetricLogger is None\n"
            f"log = train.LocalMetricLogger({str(tmp_path)!r})\n"
            "log.log_metric('train_loss', 0.5, step=1); log.log_metric('train_loss', 0.25, step=2)\n"
            "log.log_float('accuracy', 0.0)\n"
            "log.log_confusion_matrix('confusion_matrix', [[1, 0], [2, 3]], labels=['0', '1'])\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120, cwd=tmp_path)
        entries = {e.key: e for e in load_metrics_file(tmp_path / "metrics.json")}
        assert entries["train_loss"].data["y_axis"][0]["value"] == [0.5, 0.25]
        assert read_metric_value([str(tmp_path / "metrics.json")], "accuracy") == 0.0
        assert entries["confusion_matrix"].data["cell_value"] == [[1, 0], [2, 3]]
        assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


class TestWorkflow:
    def load(self) -> Any:
        return _load("mnist_workflow", EXAMPLE / "workflow.py").workflow

    def test_builds_and_validates_from_any_directory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        spec = self.load().compile()
        dumped = json.dumps(spec.model_dump(mode="json"))
        for name in ("prepare_data", "train", "accuracy_gate", "accept", "reject"):
            assert f'"{name}"' in dumped
        assert str(CODE) in dumped, "code_dir is absolute"

    @needs_torch
    @pytest.mark.slow
    @pytest.mark.skipif(not MLOOP.exists(), reason="the mloop command is not installed in this environment")
    @pytest.mark.parametrize("min_accuracy,code,ran", [("0.9", 0, "accept"), ("0.9999", 1, "reject")])
    def test_runs_end_to_end(self, tmp_path: Path, min_accuracy: str, code: int, ran: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}

        def mloop(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(MLOOP), *args], cwd=tmp_path, capture_output=True, text=True,
                                  timeout=timeout, env=env)

        try:
            result = mloop("run", str(EXAMPLE / "workflow.py"), "-p", "epochs=2", "-p", f"min_accuracy={min_accuracy}")
            output = result.stdout + result.stderr
            assert result.returncode == code, output
            other = "reject" if ran == "accept" else "accept"
            lines = output.splitlines()
            assert any(ran in line and ("succeeded" in line or "failed" in line) for line in lines), output
            assert any(other in line and "skipped" in line for line in lines), output
            if ran == "reject":
                assert any("deploy" in line and "skipped" in line for line in lines), output
                return
            # The accepted model was registered and is served: send it a test digit as a PNG.
            assert any("deploy" in line and "succeeded" in line and "mnist:1" in line for line in lines), output
            [data] = list((tmp_path / ".mloop" / "storage" / "mnist").glob("*/data"))
            from PIL import Image

            Image.fromarray(idx.read_images(data / "t10k-images-idx3-ubyte")[0]).save(tmp_path / "digit.png")
            label = str(int(idx.read_labels(data / "t10k-labels-idx1-ubyte")[0]))
            called = mloop("service", "predict", "mnist", "--file", "digit.png", timeout=60)
            assert called.returncode == 0, called.stdout + called.stderr
            answer = json.loads(called.stdout)
            assert answer["predictions"] == [label] and len(answer["probabilities"][0]) == 10, answer
        finally:
            if (tmp_path / ".mloop" / "services" / "mnist").exists():
                stopped = mloop("service", "stop", "mnist", timeout=120)
                assert stopped.returncode == 0, stopped.stdout + stopped.stderr
