"""The model registry on a real store (SQLite file and PostgreSQL) and a real artifact folder:
real PyTorch (TorchScript and state dict), scikit-learn and ONNX models go in, come back out
byte for byte and still load; versions stay unique under concurrent registrations; aliases
move atomically; bad folders are refused before anything is stored."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers import BOTH_DATABASES, MLOOP, Cli, Embedded, cli, database_url, embedded  # noqa: F401 (fixtures)
from mloop.config import Settings
from mloop.errors import ArtifactError, ModelError, ModelVersionExistsError, NotFoundError
from mloop.runs import open_backend
from mloop.services import models as registry

pytestmark = pytest.mark.timeout(120)

NET = '''\
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.log_softmax(self.fc(x), dim=1)
'''

CUSTOM_SERVICE = '''\
import json
import os


class EchoService:
    def __init__(self, model_name, model_path):
        with open(os.path.join(os.path.dirname(model_path), "labels.json")) as fh:
            self.labels = json.load(fh)

    def _preprocess(self, data):
        return data

    def _inference(self, data):
        return {"label": self.labels[0]}

    def _postprocess(self, data):
        return data
'''


def _torch(root: Path) -> dict[str, Path]:
    import torch

    ts, sd = root / "torchscript", root / "state_dict"
    for d in (ts, sd):
        d.mkdir()
    (sd / "net.py").write_text(NET)
    spec = importlib.util.spec_from_file_location("h3_registry_net", sd / "net.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net = module.Net().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(net).save(str(ts / "model.pt"))
    (ts / "config.json").write_text(json.dumps({"model_type": "PyTorch", "metrics": {"accuracy": 0.5}}))
    torch.save(net.state_dict(), sd / "model_state.pt")
    (sd / "config.json").write_text(json.dumps({"model_type": "PyTorch", "model_class": "net:Net",
                                                "state_dict_file": "model_state.pt"}))
    return {"torchscript": ts, "pytorch_state_dict": sd}


def _sklearn(root: Path) -> Path:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    folder = root / "sklearn"
    folder.mkdir()
    x = np.array([[0.0, 0.1], [0.2, 0.0], [1.0, 0.9], [0.9, 1.1]])
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    joblib.dump(model, folder / "model.joblib")
    return folder


def _onnx(root: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = root / "onnx"
    (folder / "sub").mkdir(parents=True)
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "sub" / "notes.txt").write_text("nested files come back too\n")
    return folder


def _custom(root: Path) -> Path:
    folder = root / "custom"
    folder.mkdir()
    (folder / "customize_service.py").write_text(CUSTOM_SERVICE)
    (folder / "labels.json").write_text(json.dumps(["cat", "dog"]))
    os.chmod(folder / "customize_service.py", 0o755)  # modes survive the round trip
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real model folder per canonical type."""
    root = tmp_path_factory.mktemp("models")
    return {**_torch(root), "sklearn": _sklearn(root), "onnx": _onnx(root), "custom": _custom(root)}


def _loads(model_type: str, folder: Path) -> Callable[[], Any]:
    """A check that the exported folder still loads and predicts with its framework."""
    def check() -> Any:
        if model_type == "torchscript":
            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
                return torch.jit.load(str(folder / "model.pt"))(torch.ones(1, 4)).shape == (1, 3)
        if model_type == "pytorch_state_dict":
            import torch

            spec = importlib.util.spec_from_file_location("h3_exported_net", folder / "net.py")
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            net = module.Net()
            net.load_state_dict(torch.load(folder / "model_state.pt", weights_only=True))
            return net(torch.ones(1, 4)).shape == (1, 3)
        if model_type == "sklearn":
            import joblib

            return list(joblib.load(folder / "model.joblib").predict([[0.0, 0.0], [1.0, 1.0]])) == [0, 1]
        if model_type == "onnx":
            import onnx

            onnx.checker.check_model(onnx.load(str(folder / "model.onnx")))
            return True
        return "class EchoService" in (folder / "customize_service.py").read_text()
    return check


def _tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@BOTH_DATABASES
class TestRoundTrip:
    @pytest.mark.parametrize("model_type", ["torchscript", "pytorch_state_dict", "sklearn", "onnx", "custom"])
    def test_register_show_export_is_byte_for_byte_and_still_loads(
            self, model_type: str, models: dict[str, Path], embedded: Embedded, tmp_path: Path) -> None:
        source = models[model_type]
        rec = registry.register_model(embedded.backend, "m", source, description="first")

        assert (rec.name, rec.version, rec.model_type) == ("m", "1", model_type)
        assert rec.file_count == len(_tree(source))
        assert rec.size == sum(len(b) for b, _ in _tree(source).values())
        shown = registry.get_model_version(embedded.backend, "m:1")
        assert shown == rec and shown.description == "first"
        assert sorted(e.path for e in registry.model_files(embedded.backend, shown)) == sorted(_tree(source))

        out = registry.export_model(embedded.backend, "m", tmp_path / "export")

        assert _tree(out) == _tree(source)
        assert _loads(model_type, out)()

    def test_versions_count_up_and_identical_folders_share_immutable_files(
            self, models: dict[str, Path], embedded: Embedded, tmp_path: Path) -> None:
        b = embedded.backend
        first = registry.register_model(b, "m", models["onnx"])
        second = registry.register_model(b, "m", models["onnx"])
        third = registry.register_model(b, "m", models["sklearn"])

        assert [first.version, second.version, third.version] == ["1", "2", "3"]
        assert first.uri == second.uri and first.content_hash == second.content_hash != third.content_hash
        assert registry.get_model_version(b, "m").version == "3"
        assert [v.version for v in registry.list_model_versions(b, "m")] == ["1", "2", "3"]
        [summary] = registry.list_models(b)
        assert (summary.name, summary.latest_version, summary.version_count) == ("m", "3", 3)
        assert _tree(registry.export_model(b, "m:1", tmp_path / "one")) == _tree(models["onnx"])

    def test_explicit_versions_are_accepted_once(self, models: dict[str, Path], embedded: Embedded) -> None:
        b = embedded.backend
        assert registry.register_model(b, "m", models["onnx"], version="0.0.1").version == "0.0.1"
        assert registry.register_model(b, "m", models["onnx"]).version == "1"
        assert registry.register_model(b, "m", models["onnx"], version="7").version == "7"
        assert registry.register_model(b, "m", models["onnx"]).version == "8"
        with pytest.raises(ModelVersionExistsError, match="already has version '0.0.1'"):
            registry.register_model(b, "m", models["sklearn"], version="0.0.1")
        with pytest.raises(ModelError, match="invalid model version"):
            registry.register_model(b, "m", models["onnx"], version="v:1")
        assert registry.get_model_version(b, "m:0.0.1").model_type == "onnx"

    def test_aliases_move_and_resolve(self, models: dict[str, Path], embedded: Embedded) -> None:
        b = embedded.backend
        registry.register_model(b, "m", models["onnx"])
        registry.register_model(b, "m", models["sklearn"])

        assert registry.set_alias(b, "m", "production", "1").aliases == ["production"]
        assert registry.get_model_version(b, "m@production").version == "1"
        registry.set_alias(b, "m", "production", "2")
        assert registry.get_model_version(b, "m@production").version == "2"
        assert registry.get_model_version(b, "m:1").aliases == []
        assert registry.list_models(b)[0].aliases == {"production": "2"}

        registry.delete_alias(b, "m", "production")
        with pytest.raises(NotFoundError, match="no alias 'production'"):
            registry.get_model_version(b, "m@production")
        with pytest.raises(NotFoundError, match="has no version '9'"):
            registry.set_alias(b, "m", "production", "9")
        with pytest.raises(ModelError, match="invalid alias"):
            registry.set_alias(b, "m", "1bad", "1")

    def test_moving_an_alias_never_leaves_readers_without_one(
            self, models: dict[str, Path], embedded: Embedded) -> None:
        b = embedded.backend
        registry.register_model(b, "m", models["onnx"])
        registry.register_model(b, "m", models["sklearn"])
        registry.set_alias(b, "m", "production", "1")
        seen: list[str] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def read() -> None:
            with open_backend(embedded.settings, reconcile=False) as other:  # its own connections
                while not done.is_set():
                    try:
                        seen.append(registry.get_model_version(other, "m@production").version)
                    except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                        errors.append(exc)
                        return

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(40):
                registry.set_alias(b, "m", "production", "2" if i % 2 == 0 else "1")
        finally:
            done.set()
            reader.join(30)
        assert not errors, errors
        assert seen and set(seen) <= {"1", "2"}

    def test_bad_folders_are_refused_and_nothing_is_stored(self, embedded: Embedded, tmp_path: Path,
                                                           models: dict[str, Path]) -> None:
        b = embedded.backend
        broken = tmp_path / "broken"
        shutil.copytree(models["pytorch_state_dict"], broken)
        (broken / "net.py").unlink()
        with pytest.raises(ModelError, match="has no net.py"):
            registry.register_model(b, "m", broken)
        with pytest.raises(ModelError, match="unknown model type 'Keras'"):
            registry.register_model(b, "m", models["onnx"], model_type="Keras")
        with pytest.raises(ModelError, match="does not exist"):
            registry.register_model(b, "m", tmp_path / "missing")
        with pytest.raises(ModelError, match="invalid model name"):
            registry.register_model(b, "a:b", models["onnx"])

        assert registry.list_models(b) == []
        assert not (Path(embedded.settings.resolved_artifact_root) / "models").exists()


@pytest.mark.slow
@BOTH_DATABASES
def test_concurrent_registrations_get_distinct_versions(models: dict[str, Path], cli: Cli) -> None:
    """Three ``mloop model register`` processes at once (two with the same files): versions 1-3."""
    cli.ok("model", "list")  # create the database first, so the processes race on versions only
    sources = [models["onnx"], models["onnx"], models["sklearn"]]
    procs = [subprocess.Popen([MLOOP, "model", "register", "m", "--from", str(s)], cwd=cli.cwd, env=cli.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in sources]
    results = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), results

    versions = cli.json("model", "versions", "m")

    assert sorted(v["version"] for v in versions) == ["1", "2", "3"]
    assert sorted(v["seq"] for v in versions) == [1, 2, 3]
    assert sorted(v["model_type"] for v in versions) == ["onnx", "onnx", "sklearn"]
    assert len({v["uri"] for v in versions}) == 2


class TestLocalCopies:
    def test_a_fresh_home_downloads_and_verifies_the_files(self, models: dict[str, Path], embedded: Embedded,
                                                           tmp_path: Path) -> None:
        rec = registry.register_model(embedded.backend, "m", models["onnx"])
        # Another machine: same database and artifact store, its own home (and cache).
        other = Settings(home=tmp_path / "elsewhere", database_url=embedded.settings.resolved_database_url,
                         artifact_root=embedded.settings.resolved_artifact_root)
        with open_backend(other, reconcile=False) as backend:
            path = registry.model_local_path(backend, rec)
            assert path.is_relative_to(tmp_path / "elsewhere")
            assert _tree(path) == _tree(models["onnx"])
            assert registry.model_local_path(backend, rec) == path  # cached

            (path / "model.onnx").write_bytes(b"truncated")  # a damaged cache is noticed and replaced
            assert _tree(registry.model_local_path(backend, rec)) == _tree(models["onnx"])

    def test_damaged_stored_files_are_refused(self, models: dict[str, Path], embedded: Embedded,
                                              tmp_path: Path) -> None:
        rec = registry.register_model(embedded.backend, "m", models["onnx"])
        stored = Path(rec.uri) / "model.onnx"
        stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
        other = Settings(home=tmp_path / "elsewhere", database_url=embedded.settings.resolved_database_url,
                         artifact_root=embedded.settings.resolved_artifact_root)
        with open_backend(other, reconcile=False) as backend:
            with pytest.raises(ArtifactError, match="do not match their content hash"):
                registry.model_local_path(backend, rec)
            assert not (tmp_path / "elsewhere" / "cache" / "models" / rec.content_hash).exists()

    def test_two_processes_materialising_at_once_both_get_the_complete_copy(
            self, models: dict[str, Path], embedded: Embedded, tmp_path: Path) -> None:
        rec = registry.register_model(embedded.backend, "m", models["torchscript"])
        home = tmp_path / "elsewhere"
        script = (
            "import sys\nfrom mloop.config import Settings\nfrom mloop.runs import open_backend\n"
            "from mloop.services.models import get_model_version, model_local_path\n"
            f"s = Settings(home={str(home)!r}, database_url={embedded.settings.resolved_database_url!r}, "
            f"artifact_root={embedded.settings.resolved_artifact_root!r})\n"
            "with open_backend(s, reconcile=False) as b:\n"
            "    print(model_local_path(b, get_model_version(b, 'm:1')))\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
        procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        paths = {o.strip() for o, _ in outs}
        assert paths == {str(home / "cache" / "models" / rec.content_hash)}
        assert _tree(Path(paths.pop())) == _tree(models["torchscript"])
        leftovers = [p.name for p in (home / "cache" / "models").iterdir() if p.name.startswith(".")]
        assert leftovers == []


def test_cli_register_show_alias_export(models: dict[str, Path], cli: Cli, tmp_path: Path) -> None:
    registered = cli.ok("model", "register", "digits", "--from", str(models["torchscript"]), "--metric", "f1=0.75")
    assert "registered digits:1 (torchscript, 2 files" in registered.out
    cli.ok("model", "register", "digits", "--from", str(models["pytorch_state_dict"]), "--type", "PyTorch")
    cli.ok("model", "alias", "digits", "production", "1")

    shown = cli.ok("model", "show", "digits@production").out
    assert "digits:1" in shown and "torchscript" in shown and "production" in shown
    assert "accuracy=0.5" in shown and "f1=0.75" in shown and "model.pt" in shown and "registered by hand" in shown
    data = cli.json("model", "show", "digits")
    assert data["version"] == "2" and data["model_type"] == "pytorch_state_dict"
    assert sorted(f["path"] for f in data["files"]) == ["config.json", "model_state.pt", "net.py"]
    listed = cli.ok("model", "list").out
    assert "digits" in listed and "production→1" in listed

    cli.ok("model", "export", "digits@production", str(tmp_path / "out"))
    assert _tree(tmp_path / "out") == _tree(models["torchscript"])

    refused = cli("model", "register", "digits", "--from", str(models["onnx"]), "--type", "TensorFlow")
    assert refused.code == 2 and "'TensorFlow' is not supported" in refused.err and "ONNX" in refused.err
    missing = cli("model", "show", "digits:9")
    assert missing.code == 3 and "has no version '9'" in missing.err
    cli.ok("model", "alias", "digits", "production", "--delete")
    assert cli("model", "show", "digits@production").code == 3
