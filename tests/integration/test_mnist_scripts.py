"""The MNIST example's job scripts, run as real processes the way a JobStep runs them.

``prepare_data.py`` and ``report.py`` are quick. Training is marked ``slow`` (a real CNN,
about 20-40 s on 2 CPU cores) and needs torch (``pip install 'mloop[mnist]'``). The training
data is made the way the workflow makes it: ``prepare_data.py`` writes class folders of PNGs,
the real ``mloop dataset`` commands version and release them, and ``train.py`` reads the
release in the job layout; the IDX path (``--format=idx``, the real MNIST files) is kept too.
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


def mloop_cli(*args: str, home: Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The ``mloop`` command on the store under ``home``; fails the test if it fails."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}, "MLOOP_HOME": str(home)}
    result = subprocess.run([str(MLOOP), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"mloop {' '.join(args)}\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MNIST IDX files (``--format=idx``)."""
    out = tmp_path_factory.mktemp("mnist") / "data"
    run_script("prepare_data.py", f"--output_url={out}", "--format=idx", "--seed=0", "--unknown_arg=1",
               cwd=out.parent)
    return out


@pytest.fixture(scope="module")
def png_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class folders of PNGs (the default format, what the workflow versions)."""
    out = tmp_path_factory.mktemp("mnist") / "images"
    run_script("prepare_data.py", f"--output_url={out}", cwd=out.parent)
    return out


@pytest.fixture(scope="module")
def release_dir(png_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``png_dir`` versioned, released 0.8/0.2 and exported in the job layout, by the real mloop commands."""
    if not MLOOP.exists():
        pytest.skip("the mloop command is not installed in this environment")
    work = tmp_path_factory.mktemp("mnist-release")
    home = work / "home"
    mloop_cli("dataset", "create", "mnist-digits", "--from", str(png_dir), "--format", "ModelArts imageNet 1.0",
              home=home, cwd=work)
    mloop_cli("dataset", "release", "mnist-digits:v1", "--split", "0.8", home=home, cwd=work)
    mloop_cli("dataset", "export", "mnist-digits:v2", str(work / "release"), "--layout", home=home, cwd=work)
    return work / "release"


def read_split(folder: Path) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Images, labels and paths of ``folder/<label>/*.png`` (sorted by path), read with Pillow."""
    from PIL import Image

    paths = sorted(folder.glob("*/*.png"))
    images = np.stack([np.asarray(Image.open(p).convert("L")) for p in paths])
    return images, np.array([int(p.parent.name) for p in paths]), paths


class TestPrepareData:
    def test_writes_class_folders_of_pngs(self, png_dir: Path, data_dir: Path) -> None:
        from PIL import Image

        assert sorted(p.name for p in png_dir.iterdir()) == [str(d) for d in range(10)]
        images, labels, paths = read_split(png_dir)
        assert len(paths) == 1797 and not list(png_dir.glob("**/.*")), "every digit, no temp files left"
        with Image.open(paths[0]) as first:
            assert first.format == "PNG" and first.mode == "L" and first.size == (28, 28)
        assert images.dtype == np.uint8 and images.max() == 255 and images.min() == 0
        assert not images[:, :4].any() and not images[:, :, -4:].any(), "the digit lies in the 20x20 box"
        # The same frames as the IDX output (which splits them into train and test).
        train_x, train_y, test_x, test_y = idx.load_mnist(data_dir)
        order = np.argsort([int(p.stem) for p in paths])
        as_idx = np.concatenate([train_x, test_x])
        assert sorted(map(bytes, images)) == sorted(map(bytes, as_idx))
        assert np.bincount(labels[order], minlength=10).tolist() == np.bincount(
            np.concatenate([train_y, test_y]), minlength=10).tolist()

    def test_pngs_are_the_same_bytes_every_run(self, png_dir: Path, tmp_path: Path) -> None:
        """Unchanged digits must give unchanged files, or every run would make a new dataset version."""
        run_script("prepare_data.py", f"--output_url={tmp_path / 'again'}", "--format=png", cwd=tmp_path)
        first = {p.relative_to(png_dir): p.read_bytes() for p in png_dir.rglob("*.png")}
        again = {p.relative_to(tmp_path / "again"): p.read_bytes() for p in (tmp_path / "again").rglob("*.png")}
        assert again == first

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
        run_script("prepare_data.py", f"--output_url={tmp_path / 'a'}", "--format=idx", "--seed=0", cwd=tmp_path)
        run_script("prepare_data.py", f"--output_url={tmp_path / 'b'}", "--format=idx", "--seed=1",
                   "--test_fraction=0.3", cwd=tmp_path)
        for name in idx.MNIST_FILES.values():
            assert (tmp_path / "a" / name).read_bytes() == (data_dir / name).read_bytes()
        assert len(idx.read_labels(tmp_path / "b" / "t10k-labels-idx1-ubyte")) == math.ceil(1797 * 0.3)

    def test_rejects_a_bad_fraction(self, tmp_path: Path) -> None:
        result = run_script("prepare_data.py", f"--output_url={tmp_path}", "--test_fraction=1.5", cwd=tmp_path,
                            check=False)
        assert result.returncode == 2 and "test_fraction" in result.stderr

    def test_rejects_an_unknown_format(self, tmp_path: Path) -> None:
        result = run_script("prepare_data.py", f"--output_url={tmp_path}", "--format=jpeg", cwd=tmp_path, check=False)
        assert result.returncode == 2 and "--format" in result.stderr and "png" in result.stderr


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
    def test_trains_a_good_model_on_a_release_with_the_defaults(self, release_dir: Path, tmp_path: Path) -> None:
        import torch

        out = tmp_path / "model"
        started = time.monotonic()
        result = run_script("train.py", f"--data_url={release_dir}", f"--train_url={out}", cwd=tmp_path)
        seconds = time.monotonic() - started
        print(f"\ntrain.py with default parameters: {seconds:.1f}s\n{result.stdout}")
        assert "epoch 1/" in result.stdout and "done: accuracy" in result.stdout
        assert "(mnist-digits:v2)" in result.stdout

        for name in ("model.pt", "model_state.pt", "net.py", "config.json", "metrics.json"):
            assert (out / name).is_file(), f"{name} missing from train_url"

        entries = {e.key: e for e in load_metrics_file(out / "metrics.json")}
        accuracy = read_metric_value([str(out / "metrics.json")], "accuracy")
        assert accuracy >= 0.95, f"test accuracy {accuracy} below 0.95\n{result.stdout}"
        assert entries["loss"].type == "float" and entries["loss"].value is not None
        assert entries["train_loss"].type == "line chart"
        epochs = entries["train_loss"].data["x_axis"][0]["value"]
        assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 1

        # The test set is the release's eval split, and nothing else.
        manifest = json.loads((release_dir / "manifest.json").read_text())
        test_images, test_labels, test_paths = read_split(release_dir / "eval")
        train_images, _, train_paths = read_split(release_dir / "train")
        assert len(test_labels) == manifest["release"]["eval"] and len(train_images) == manifest["release"]["train"]
        assert not {p.name for p in test_paths} & {p.name for p in train_paths}, "eval images are not trained on"
        table = entries["confusion_matrix"]
        assert table.type == "table"
        cells = np.array(table.data["cell_value"])
        assert cells.shape == (10, 10)
        assert cells.sum() == len(test_labels)
        assert table.data["row_labels"]["value"] == [str(i) for i in range(10)]
        assert table.data["col_labels"]["value"] == [str(i) for i in range(10)]
        # columns are the true labels: each column sums to that class's eval count
        assert cells.sum(axis=0).tolist() == np.bincount(test_labels, minlength=10).tolist()
        assert np.trace(cells) / cells.sum() == pytest.approx(accuracy)

        config = json.loads((out / "config.json").read_text())
        assert config["model_type"] == "PyTorch" and config["input_shape"] == [1, 1, 28, 28]
        assert config["classes"] == [str(i) for i in range(10)]
        assert config["image"]["mode"] == "L" and config["image"]["size"] == [28, 28]
        assert config["dataset"] == {"name": "mnist-digits", "version": "v2", "train": len(train_images),
                                     "eval": len(test_labels)}
        assert config["metrics"]["test_size"] == len(test_labels)

        # The TorchScript model runs without net.py and agrees with the reported accuracy on the
        # eval PNGs, preprocessed as the inference server does (grey, /255).
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
    def test_idx_files_same_seed_same_model(self, data_dir: Path, tmp_path: Path) -> None:
        """The IDX layout (the real MNIST's) trains as before; a seed gives the same model again."""
        runs = []
        for name in ("a", "b"):
            run_script("train.py", f"--data_url={data_dir}", f"--train_url={tmp_path / name}", "--epochs=1",
                       "--num_threads=1", "--seed=3", cwd=tmp_path)
            entries = load_metrics_file(tmp_path / name / "metrics.json")
            runs.append({e.key: (e.value, e.data.get("cell_value")) for e in entries if e.type in ("float", "table")})
        assert runs[0] == runs[1]
        # The t10k files are the test set.
        cells = np.array(runs[0]["confusion_matrix"][1])
        test_labels = idx.read_labels(data_dir / "t10k-labels-idx1-ubyte")
        assert cells.sum(axis=0).tolist() == np.bincount(test_labels, minlength=10).tolist()
        config = json.loads((tmp_path / "a" / "config.json").read_text())
        assert config["classes"] == [str(i) for i in range(10)] and "dataset" not in config

    def test_missing_data_is_reported(self, data_dir: Path, tmp_path: Path) -> None:
        result = run_script("train.py", f"--data_url={tmp_path / 'empty'}", f"--train_url={tmp_path / 'out'}",
                            cwd=tmp_path, check=False)
        assert result.returncode == 2 and "train-images-idx3-ubyte" in result.stderr
        assert "neither a dataset release (train/<label>/*.png and eval/<label>/*.png)" in result.stderr

    def test_a_folder_without_eval_images_is_refused(self, png_dir: Path, tmp_path: Path) -> None:
        """An unreleased dataset (everything under train/) has no held-out test set: no model."""
        data = tmp_path / "data"
        for digit in ("3", "8"):
            (data / "train" / digit).mkdir(parents=True)
            for src in sorted((png_dir / digit).glob("*.png"))[:3]:
                (data / "train" / digit / src.name).write_bytes(src.read_bytes())
        result = run_script("train.py", f"--data_url={data}", f"--train_url={tmp_path / 'out'}", cwd=tmp_path,
                            check=False)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "no eval/<label>/ images" in result.stderr and "release" in result.stderr
        assert not (tmp_path / "out" / "model.pt").exists()

    def test_an_unreadable_image_is_named(self, png_dir: Path, tmp_path: Path) -> None:
        data = tmp_path / "data"
        for split in ("train", "eval"):
            (data / split / "3").mkdir(parents=True)
            src = next((png_dir / "3").glob("*.png"))
            (data / split / "3" / src.name).write_bytes(src.read_bytes())
        (data / "eval" / "3" / "broken.png").write_bytes(b"not a png")
        result = run_script("train.py", f"--data_url={data}", f"--train_url={tmp_path / 'out'}", cwd=tmp_path,
                            check=False)
        assert result.returncode == 2 and "broken.png" in result.stderr and "not a readable image" in result.stderr

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
        for name in ("prepare_data", "create_dataset", "release", "train", "accuracy_gate", "accept", "reject",
                     "register", "deploy"):
            assert f'"{name}"' in dumped
        assert str(CODE) in dumped, "code_dir is absolute"
        assert '"mnist-digits"' in dumped and '"ModelArts imageNet 1.0"' in dumped

    @needs_torch
    @pytest.mark.slow
    @pytest.mark.skipif(not MLOOP.exists(), reason="the mloop command is not installed in this environment")
    def test_runs_end_to_end_on_a_dataset_release(self, tmp_path: Path) -> None:
        """Run 1 versions the images, releases them, trains on the release, registers the model
        (which records the data version) and serves it. Run 2, with the same images and a gate no
        model passes, makes no new data version: it trains on the same release, and is rejected."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}

        def mloop(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(MLOOP), *args], cwd=tmp_path, capture_output=True, text=True,
                                  timeout=timeout, env=env)

        def run(*params: str) -> tuple[int, list[str], str]:
            result = mloop("run", str(EXAMPLE / "workflow.py"), *[a for p in params for a in ("-p", p)])
            output = result.stdout + result.stderr
            return result.returncode, output.splitlines(), output

        def step_line(lines: list[str], step: str, status: str) -> str:
            found = [line for line in lines if line.split()[1:3] == [step, status]]
            assert found, f"no '{step} {status}' line in:\n" + "\n".join(lines)
            return found[0]

        def dataset_versions() -> list[dict[str, Any]]:
            listed = mloop("dataset", "versions", "mnist-digits", "--json", timeout=60)
            assert listed.returncode == 0, listed.stdout + listed.stderr
            return json.loads(listed.stdout)

        def trained_on(run_id: str) -> dict[str, Any]:
            shown = mloop("show", run_id, "--json", timeout=60)
            assert shown.returncode == 0, shown.stdout + shown.stderr
            [train] = [s for s in json.loads(shown.stdout)["steps"] if s["name"] == "train"]
            return dict(train["inputs"]["datasets"]["data_url"])

        try:
            code, lines, output = run("epochs=2", "min_accuracy=0.9")
            assert code == 0, output
            assert "created mnist-digits:v1 (1797 samples, 10 classes)" in step_line(lines, "create_dataset",
                                                                                        "succeeded")
            assert "released mnist-digits:v2 (release of v1" in step_line(lines, "release", "succeeded")
            step_line(lines, "accept", "succeeded")
            step_line(lines, "reject", "skipped")
            assert "mnist:1" in step_line(lines, "deploy", "succeeded")
            versions = dataset_versions()
            assert [v["version"] for v in versions] == ["v1", "v2"]
            assert versions[1]["release"]["of"] == "v1" and versions[1]["release"]["ratio"] == 0.8
            run_1 = output.split(" · run ")[1].split()[0]

            # The registered model knows which data made it.
            shown = mloop("model", "show", "mnist", "--json", timeout=60)
            assert shown.returncode == 0, shown.stdout + shown.stderr
            model = json.loads(shown.stdout)
            assert model["version"] == "1"
            assert model["dataset"]["name"] == "mnist-digits" and model["dataset"]["version"] == "v2", model
            assert model["dataset"]["manifest_hash"] == versions[1]["manifest_hash"]
            assert "mnist-digits:v2" in mloop("model", "show", "mnist", timeout=60).stdout
            assert trained_on(run_1)["version_name"] == "v2"

            # The service answers for a held-out digit of the release, as the README shows.
            export = mloop("dataset", "export", "mnist-digits:v2", str(tmp_path / "release"), "--layout", timeout=60)
            assert export.returncode == 0, export.stdout + export.stderr
            digit = sorted((tmp_path / "release" / "eval" / "7").glob("*.png"))[0]
            called = mloop("service", "predict", "mnist", "--file", str(digit), timeout=60)
            assert called.returncode == 0, called.stdout + called.stderr
            answer = json.loads(called.stdout)
            assert answer["predictions"] == ["7"] and len(answer["probabilities"][0]) == 10, answer

            # Run 2: the same images, so the same dataset version and release; the gate rejects.
            code, lines, output = run("epochs=1", "min_accuracy=0.9999")
            assert code == 1, output
            assert "mnist-digits:v2 already holds this data (no new version)" in step_line(
                lines, "create_dataset", "succeeded")
            assert "reused release mnist-digits:v2" in step_line(lines, "release", "succeeded")
            step_line(lines, "reject", "failed")
            for skipped in ("accept", "register", "deploy"):
                step_line(lines, skipped, "skipped")
            run_2 = output.split(" · run ")[1].split()[0]
            assert trained_on(run_2) == trained_on(run_1)
            assert [v["version"] for v in dataset_versions()] == ["v1", "v2"]
            shown = mloop("model", "show", "mnist", "--json", timeout=60)
            assert json.loads(shown.stdout)["version"] == "1", "a rejected model is not registered"
        finally:
            if (tmp_path / ".mloop" / "services" / "mnist").exists():
                stopped = mloop("service", "stop", "mnist", timeout=120)
                assert stopped.returncode == 0, stopped.stdout + stopped.stderr
