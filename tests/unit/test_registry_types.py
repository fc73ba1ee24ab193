"""Model types are decided from a folder's files, and a folder that lacks what its type needs is
refused with the missing file named — without loading anything."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from mloop.errors import ModelError
from mloop.registry.types import canonical_type, detect_model_type, inspect_model_folder, is_torchscript
from mloop.services.models import parse_model_ref
from mloop.steps.model import _declared_metrics, _find_dataset, default_model_name

NET = '''\
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)
'''


def torch_folders(root: Path) -> tuple[Path, Path]:
    """(a TorchScript folder, a state-dict + class folder), both real torch files."""
    import importlib.util

    import torch

    ts, sd = root / "ts", root / "sd"
    ts.mkdir()
    sd.mkdir()
    (sd / "net.py").write_text(NET)
    spec = importlib.util.spec_from_file_location("h3_net", sd / "net.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(net).save(str(ts / "model.pt"))
    torch.save(net.state_dict(), sd / "model_state.pt")
    (sd / "config.json").write_text(json.dumps({"model_type": "PyTorch", "model_class": "net:Net"}))
    return ts, sd


@pytest.fixture(scope="module")
def torch_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return torch_folders(tmp_path_factory.mktemp("torch"))


def folder(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


class TestCanonicalType:
    @pytest.mark.parametrize("given, expected", [
        ("PyTorch", "pytorch"), ("Scikit_Learn", "sklearn"), ("ONNX", "onnx"), ("Custom", "custom"),
        ("torchscript", "torchscript"), ("pytorch_state_dict", "pytorch_state_dict"), ("sklearn", "sklearn"),
    ])
    def test_modelarts_and_canonical_names_map_onto_the_small_set(self, given: str, expected: str) -> None:
        assert canonical_type(given) == expected

    def test_a_modelarts_type_mloop_cannot_serve_is_refused_with_the_supported_list(self) -> None:
        with pytest.raises(ModelError, match="'TensorFlow' is not supported") as info:
            canonical_type("TensorFlow")
        assert "torchscript" in (info.value.hint or "") and "Scikit_Learn" in (info.value.hint or "")

    def test_an_unknown_type_is_refused(self) -> None:
        with pytest.raises(ModelError, match="unknown model type 'Keras'"):
            canonical_type("Keras")


class TestDetection:
    def test_torchscript_archive_is_told_from_a_state_dict_by_its_zip_entries(
            self, torch_models: tuple[Path, Path]) -> None:
        ts, sd = torch_models
        assert is_torchscript(ts / "model.pt")
        assert not is_torchscript(sd / "model_state.pt")
        assert not is_torchscript(sd / "net.py")

    def test_pytorch_family_becomes_torchscript_when_the_archive_is_there(
            self, torch_models: tuple[Path, Path]) -> None:
        found = inspect_model_folder(torch_models[0], "PyTorch")
        assert (found.model_type, found.layout) == ("torchscript", {"model_file": "model.pt"})

    def test_pytorch_family_becomes_state_dict_when_config_names_the_class(
            self, torch_models: tuple[Path, Path]) -> None:
        found = inspect_model_folder(torch_models[1])  # config.json says PyTorch
        assert found.model_type == "pytorch_state_dict"
        assert found.layout == {"config": "config.json", "state_dict_file": "model_state.pt", "model_class": "net:Net"}

    def test_files_alone_decide_the_type(self, tmp_path: Path) -> None:
        assert detect_model_type(folder(tmp_path / "o", {"model.onnx": b"\x08\x07"})) == "onnx"
        assert detect_model_type(folder(tmp_path / "s", {"model.joblib": b"x"})) == "sklearn"
        assert detect_model_type(folder(tmp_path / "c", {"customize_service.py": "class S:\n    pass\n"})) == "custom"

    def test_seed_003_layout_pytorch_weights_loaded_by_customize_service_is_custom(self, tmp_path: Path) -> None:
        found = inspect_model_folder(folder(tmp_path / "m", {
            "config.json": json.dumps({"model_type": "PyTorch", "runtime": "python3.6"}),
            "customize_service.py": "class Resnet(PTServingBaseService):\n    def _inference(self, d):\n        return d\n",
            "model.py": "def resnet34():\n    pass\n", "resnet34.pth": b"weights",
        }))
        assert found.model_type == "custom"
        assert found.layout["framework"] == "pytorch" and found.layout["model_file"] == "resnet34.pth"
        assert found.layout["customize_service"] == "customize_service.py"

    def test_customize_service_is_named_in_every_layout(self, torch_models: tuple[Path, Path], tmp_path: Path) -> None:
        import shutil

        copy = tmp_path / "ts"
        shutil.copytree(torch_models[0], copy)
        (copy / "customize_service.py").write_text("class S:\n    pass\n")
        assert inspect_model_folder(copy).layout["customize_service"] == "customize_service.py"


class TestRefusals:
    def test_a_missing_folder(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match="does not exist"):
            inspect_model_folder(tmp_path / "nope")

    def test_an_empty_folder(self, tmp_path: Path) -> None:
        (tmp_path / "m").mkdir()
        with pytest.raises(ModelError, match="is empty"):
            inspect_model_folder(tmp_path / "m")

    def test_nothing_recognisable(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match="cannot tell what kind of model"):
            inspect_model_folder(folder(tmp_path / "m", {"weights.bin": b"x"}))

    def test_state_dict_without_the_class_file_names_it(self, torch_models: tuple[Path, Path], tmp_path: Path) -> None:
        import shutil

        copy = tmp_path / "sd"
        shutil.copytree(torch_models[1], copy)
        (copy / "net.py").unlink()
        with pytest.raises(ModelError, match="has no net.py") as info:
            inspect_model_folder(copy)
        assert info.value.fields["missing"] == "net.py"

    def test_state_dict_whose_file_does_not_define_the_class(self, torch_models: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
        import shutil

        copy = tmp_path / "sd"
        shutil.copytree(torch_models[1], copy)
        (copy / "config.json").write_text(json.dumps({"model_type": "PyTorch", "model_class": "net:Other"}))
        with pytest.raises(ModelError, match="defines no 'Other'"):
            inspect_model_folder(copy)

    def test_state_dict_without_the_weights_names_them(self, torch_models: tuple[Path, Path], tmp_path: Path) -> None:
        import shutil

        copy = tmp_path / "sd"
        shutil.copytree(torch_models[1], copy)
        (copy / "config.json").write_text(json.dumps({"model_class": "net:Net", "state_dict_file": "w.pt"}))
        with pytest.raises(ModelError, match="has no state dict file w.pt"):
            inspect_model_folder(copy)

    def test_torchscript_declared_but_only_a_state_dict_there(self, torch_models: tuple[Path, Path]) -> None:
        # Issue 9 item 15: the file is there; the error says what it is, not that it is missing.
        with pytest.raises(ModelError, match=r"is not TorchScript: a torch\.save\(\) archive"):
            inspect_model_folder(torch_models[1], "torchscript")

    @pytest.mark.parametrize("declared, missing", [("Scikit_Learn", "model.joblib"), ("ONNX", "model.onnx"),
                                                   ("Custom", "customize_service.py")])
    def test_declared_type_without_its_file_names_the_file(self, tmp_path: Path, declared: str, missing: str) -> None:
        with pytest.raises(ModelError, match=missing.replace(".", r"\.")):
            inspect_model_folder(folder(tmp_path / "m", {"readme.txt": "hi"}), declared)

    def test_unsupported_type_hints_at_what_the_files_look_like(self, torch_models: tuple[Path, Path]) -> None:
        with pytest.raises(ModelError, match="looks like a torchscript model") as info:
            inspect_model_folder(torch_models[0], "TensorFlow")
        assert "PyTorch" in (info.value.hint or "")

    def test_config_json_that_is_not_an_object(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match="not valid JSON"):
            inspect_model_folder(folder(tmp_path / "a", {"config.json": "{", "model.onnx": b"x"}))
        with pytest.raises(ModelError, match="must hold a JSON object"):
            inspect_model_folder(folder(tmp_path / "b", {"config.json": "[1]", "model.onnx": b"x"}))

    def test_config_paths_may_not_leave_the_folder(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match="points outside the model folder"):
            inspect_model_folder(folder(tmp_path / "m", {"config.json": json.dumps({"model_file": "../x.onnx"}),
                                                         "model.onnx": b"x"}))

    def test_customize_service_without_a_class(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match="defines no class"):
            inspect_model_folder(folder(tmp_path / "m", {"customize_service.py": "x = 1\n"}), "Custom")


class TestReferences:
    @pytest.mark.parametrize("ref, parts", [("m", ("m", None, None)), ("m:3", ("m", "3", None)),
                                            ("m:0.0.1", ("m", "0.0.1", None)), ("m@production", ("m", None,
                                                                                                  "production"))])
    def test_name_version_alias(self, ref: str, parts: tuple[str, str | None, str | None]) -> None:
        assert parse_model_ref(ref) == parts

    @pytest.mark.parametrize("ref", ["", "m:", "@prod", "m@", "a/b"])
    def test_malformed(self, ref: str) -> None:
        with pytest.raises(ModelError):
            parse_model_ref(ref)


class TestModelStepHelpers:
    def test_default_name_is_readable_and_stable(self) -> None:
        assert default_model_name("mnist", "register") == "mnist-register"
        long = default_model_name("w" * 60, "register")
        assert long.startswith("model-") and long == default_model_name("w" * 60, "register")

    def test_declared_metrics_accept_json_text_or_an_object(self) -> None:
        assert _declared_metrics('{"f1": 0.5}', "s") == {"f1": 0.5}
        assert _declared_metrics({"f1": 1}, "s") == {"f1": 1.0}
        with pytest.raises(ModelError, match="not JSON"):
            _declared_metrics("f1=0.5", "s")

    def test_dataset_is_found_in_recorded_job_inputs_in_either_spelling(self) -> None:
        assert _find_dataset({"values": {"data_url": "/x"}}) is None
        assert _find_dataset({"datasets": {"data_url": {"dataset": "mnist", "version": 3}}}) == {
            "name": "mnist", "version": "3"}
        assert _find_dataset([{"dataset_name": "flowers", "version_name": "V002"}]) == {
            "name": "flowers", "version": "V002"}
