"""ModelArts' non-PyTorch service bases, served by the real inference server: each
``customize_service.py`` below is written the way ModelArts' documentation writes it (only what a
user would change is changed), and gets what ModelArts hands it — the raw JSON body for the
XGBoost/scikit-learn base, the parsed JSON for the others, ``{field: {filename: file}}`` for
uploads — with ``model_path`` pointing where ModelArts points it."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest

from mloop.errors import ModelLoadError
from serving_helpers import onnx_model, serve_folder

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

# ModelArts' "Scikit Learn" custom-script example, as documented (including the pre-0.23
# `from sklearn.externals import joblib`, which mloop maps to joblib).
SKLEARN_SERVICE = textwrap.dedent('''\
    # coding:utf-8
    import collections
    import json
    from sklearn.externals import joblib
    from model_service.python_model_service import XgSklServingBaseService

    class user_Service(XgSklServingBaseService):

        # request data preprocess
        def _preprocess(self, data):
            list_data = []
            json_data = json.loads(data, object_pairs_hook=collections.OrderedDict)
            for element in json_data["data"]["req_data"]:
                array = []
                for each in element:
                    array.append(element[each])
                list_data.append(array)
            return list_data

        # predict
        def _inference(self, data):
            sk_model = joblib.load(self.model_path)
            pre_result = sk_model.predict(data)
            pre_result = pre_result.tolist()
            return pre_result

        # predict result process
        def _postprocess(self,data):
            resp_data = []
            for element in data:
                resp_data.append({"predictresult": element})
            return resp_data
''')

# ModelArts' XGBoost example shape, relying on the base's defaults for _inference/_postprocess
# (ModelArts' own: load model_path with joblib, else as an xgboost.Booster; [{"predictresult": ...}]).
XGB_SERVICE = textwrap.dedent('''\
    # coding:utf-8
    import collections
    import json
    from model_service.python_model_service import XgSklServingBaseService


    class user_Service(XgSklServingBaseService):

        # request data preprocess
        def _preprocess(self, data):
            list_data = []
            json_data = json.loads(data, object_pairs_hook=collections.OrderedDict)
            for element in json_data["data"]["req_data"]:
                array = []
                for each in element:
                    array.append(element[each])
                list_data.append(array)
            return list_data
''')

# The machine-learning constructor form ModelArts documents: __init__(self, model_path).
XGB_SERVICE_INIT = XGB_SERVICE + textwrap.indent(textwrap.dedent('''
    def __init__(self, model_path):
        super(user_Service, self).__init__(model_path)
        self.seen_model_path = model_path
'''), "    ")

# A service that takes a CSV upload (multipart) and relies on the base for the rest.
CSV_SERVICE = textwrap.dedent('''\
    import io
    from model_service.python_model_service import XgSklServingBaseService


    class CsvService(XgSklServingBaseService):
        def _preprocess(self, data):
            rows = []
            for field, files in data.items():
                for file_name, file_content in files.items():
                    text = io.TextIOWrapper(file_content, encoding="utf-8").read()
                    rows += [[float(v) for v in line.split(",")] for line in text.splitlines() if line]
            return rows
''')


def _iris_like(folder: Path, filename: str) -> object:
    """A LogisticRegression on 4 iris-like features, saved with joblib as ModelArts' examples do."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4))
    y = np.array(["setosa", "versicolor", "virginica"])[(x[:, 2] > 0).astype(int) + (x[:, 3] > 0.5).astype(int)]
    model = LogisticRegression(max_iter=500).fit(x, y)
    joblib.dump(model, folder / filename)
    (folder / "config.json").write_text(json.dumps({"model_type": "Scikit_Learn", "model_algorithm": "classify"}))
    return model


def _rows(n: int = 3) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(n, 4)).round(3)


def _req_body(rows: np.ndarray) -> dict[str, object]:
    # ModelArts' documented request: {"data": {"req_data": [{feature: value, ...}, ...]}}
    return {"data": {"req_data": [dict(zip(FEATURES, map(float, row))) for row in rows]}}


def test_documented_sklearn_service_reads_the_raw_body(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    model = _iris_like(folder, "sklearn.m")
    (folder / "customize_service.py").write_text(SKLEARN_SERVICE)
    rows = _rows()
    with serve_folder(folder, model_name="iris") as url:
        r = httpx.post(f"{url}/", json=_req_body(rows))
        info = httpx.get(f"{url}/info").json()
    assert r.status_code == 200, r.text
    assert r.json() == [{"predictresult": p} for p in model.predict(rows).tolist()]  # type: ignore[attr-defined]
    assert info["service_class"] == "user_Service" and info["model_path"].endswith("sklearn.m")


@pytest.mark.parametrize("service", [XGB_SERVICE, XGB_SERVICE_INIT], ids=["model_name+model_path", "model_path"])
def test_xgboost_style_m_file_with_the_base_defaults(tmp_path: Path, service: str) -> None:
    # xgboost is not a test dependency: the .m file holds a joblib-dumped estimator, which
    # ModelArts' default _inference (and mloop's) loads first.
    folder = tmp_path / "model"
    model = _iris_like(folder, "xgboost.m")
    (folder / "customize_service.py").write_text(service)
    rows = _rows(2)
    with serve_folder(folder) as url:
        r = httpx.post(f"{url}/", json=_req_body(rows))
        info = httpx.get(f"{url}/info").json()
    assert r.status_code == 200, r.text
    assert r.json() == [{"predictresult": p} for p in model.predict(rows).tolist()]  # type: ignore[attr-defined]
    assert info["model_path"].endswith("xgboost.m")


@pytest.mark.skipif(importlib.util.find_spec("xgboost") is None, reason="xgboost is not installed")
def test_real_xgboost_booster_saved_as_m(tmp_path: Path) -> None:
    import xgboost as xgb

    folder = tmp_path / "model"
    folder.mkdir()
    x = np.random.default_rng(0).normal(size=(50, 4))
    booster = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(x, label=x[:, 0]), 5)
    booster.save_model(str(folder / "xgboost.m"))
    (folder / "config.json").write_text('{"model_type": "XGBoost"}')
    (folder / "customize_service.py").write_text(XGB_SERVICE)
    rows = _rows(2)
    with serve_folder(folder) as url:
        r = httpx.post(f"{url}/", json=_req_body(rows))
    assert r.status_code == 200, r.text
    expected = booster.predict(xgb.DMatrix(rows)).tolist()
    assert [d["predictresult"] for d in r.json()] == pytest.approx(expected, rel=1e-5)


def test_xgskl_base_with_no_overrides_takes_modelarts_and_mloop_bodies(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    model = _iris_like(folder, "model.joblib")
    (folder / "customize_service.py").write_text(
        "from model_service.python_model_service import XgSklServingBaseService\n\n\n"
        "class Plain(XgSklServingBaseService):\n    pass\n")
    rows = _rows(2)
    expected = [{"predictresult": p} for p in model.predict(rows).tolist()]  # type: ignore[attr-defined]
    with serve_folder(folder) as url:
        documented = httpx.post(f"{url}/", json=_req_body(rows))
        inputs = httpx.post(f"{url}/predict", json={"inputs": rows.tolist()})
    assert documented.status_code == 200 and documented.json() == expected, documented.text
    assert inputs.status_code == 200 and inputs.json() == expected, inputs.text


def test_xgskl_service_takes_a_multipart_upload_as_field_filename_file(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    model = _iris_like(folder, "sklearn.m")
    (folder / "customize_service.py").write_text(CSV_SERVICE)
    rows = _rows(3)
    csv = "\n".join(",".join(str(v) for v in row) for row in rows).encode()
    with serve_folder(folder) as url:
        r = httpx.post(f"{url}/", files={"file": ("rows.csv", csv, "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json() == [{"predictresult": p} for p in model.predict(rows).tolist()]  # type: ignore[attr-defined]


@pytest.mark.parametrize("base", ["model_service.model_service import SingleNodeService",
                                  "model_service.model_service import BaseService"])
def test_generic_bases_get_parsed_json_and_the_model_folder(tmp_path: Path, base: str) -> None:
    # ModelArts' MindSpore-style bases: _preprocess gets the parsed body (a dict), model_path is
    # the model folder.
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.txt").write_text("2.5")
    name = base.rsplit(" ", 1)[1]
    (folder / "customize_service.py").write_text(textwrap.dedent(f'''\
        import os
        from {base}


        class Scale({name}):
            def __init__(self, model_name, model_path):
                super(Scale, self).__init__(model_name, model_path)
                with open(os.path.join(self.model_path, "weights.txt")) as f:
                    self.factor = float(f.read())

            def _preprocess(self, data):
                assert isinstance(data, dict), type(data)
                return data["values"]

            def _inference(self, data):
                return [v * self.factor for v in data]

            def _postprocess(self, data):
                return {{"scaled": data, "model_path_is_dir": os.path.isdir(self.model_path)}}
    '''))
    with serve_folder(folder) as url:
        r = httpx.post(f"{url}/", json={"values": [1, 2]})
    assert r.status_code == 200, r.text
    assert r.json() == {"scaled": [2.5, 5.0], "model_path_is_dir": True}


def test_onnx_base_gets_parsed_json_and_the_onnx_file(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    w, b = onnx_model(folder)
    (folder / "customize_service.py").write_text(textwrap.dedent('''\
        import numpy as np
        from model_service.onnx_model_service import OnnxServingBaseService


        class Linear(OnnxServingBaseService):
            def _preprocess(self, data):
                return {"x": np.asarray(data["rows"], dtype=np.float32)}

            def _postprocess(self, data):
                return {"y": data["y"].tolist(), "file": self.model_path.rsplit("/", 1)[-1]}
    '''))
    rows = _rows(2).astype(np.float32)
    with serve_folder(folder) as url:
        r = httpx.post(f"{url}/", json={"rows": rows.tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["file"] == "model.onnx"
    assert np.allclose(r.json()["y"], rows @ w + b, atol=1e-5)


# -- config.json "dependencies" -------------------------------------------------------------------------
def _with_dependencies(folder: Path, packages: list[dict[str, str]]) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["dependencies"] = [{"installer": "pip", "packages": packages}]
    (folder / "config.json").write_text(json.dumps(config))


def test_satisfied_dependencies_load_and_serve(tmp_path: Path) -> None:
    import importlib.metadata

    folder = tmp_path / "model"
    _iris_like(folder, "sklearn.m")
    (folder / "customize_service.py").write_text(SKLEARN_SERVICE)
    _with_dependencies(folder, [
        {"package_name": "numpy", "package_version": importlib.metadata.version("numpy"), "restraint": "EXACT"},
        {"package_name": "Scikit_Learn", "package_version": "0.20", "restraint": "ATLEAST"},
        {"package_name": "joblib", "package_version": "999.0", "restraint": "ATMOST"},
        {"package_name": "httpx"},
    ])
    with serve_folder(folder) as url:
        r = httpx.post(f"{url}/", json=_req_body(_rows(1)))
    assert r.status_code == 200, r.text


def test_unmet_dependencies_refuse_to_load_naming_each_package(tmp_path: Path) -> None:
    from mloop.serving.app import create_app

    folder = tmp_path / "model"
    _iris_like(folder, "sklearn.m")
    (folder / "customize_service.py").write_text(SKLEARN_SERVICE)
    _with_dependencies(folder, [
        {"package_name": "mloop-no-such-package", "package_version": "1.2.0", "restraint": "EXACT"},
        {"package_name": "numpy", "package_version": "0.0.1", "restraint": "EXACT"},
        {"package_name": "scikit-learn", "package_version": "0.19", "restraint": "ATMOST"},
        {"package_name": "joblib", "package_version": "999.0", "restraint": "ATLEAST"},
        {"package_name": "numpy", "package_version": "1.0", "restraint": "ATLEAST"},  # met: not named
    ])
    with pytest.raises(ModelLoadError) as err:
        create_app(folder, model_name="m", model_version="1")
    message = str(err.value)
    assert "'dependencies' not satisfied" in message
    assert "mloop-no-such-package==1.2.0: not installed (fix: pip install mloop-no-such-package==1.2.0)" in message
    assert "numpy==0.0.1: " in message and "pip install numpy==0.0.1" in message
    assert "pip install 'scikit-learn<=0.19'" in message
    assert "pip install 'joblib>=999.0'" in message
    assert "numpy>=1.0" not in message
    assert len(err.value.unmet) == 4  # type: ignore[attr-defined]


def test_dependencies_are_checked_for_builtin_model_folders_too(tmp_path: Path) -> None:
    from serving_helpers import sklearn_model

    from mloop.serving.handlers import load_handler

    folder = tmp_path / "model"
    sklearn_model(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "Scikit_Learn", "dependencies": [
        {"installer": "pip", "packages": [{"package_name": "mloop-no-such-package"}]}]}))
    with pytest.raises(ModelLoadError, match=r"mloop-no-such-package: not installed \(fix: pip install "
                                             r"mloop-no-such-package\)"):
        load_handler(folder, model_name="m")


@pytest.mark.parametrize("deps, expected", [
    ([{"installer": "conda", "packages": [{"package_name": "numpy"}]}], "installer 'conda' is not supported (numpy)"),
    ([{"installer": "pip", "packages": [{"package_name": "numpy", "package_version": "1",
                                         "restraint": "ABOUT"}]}], "numpy: restraint 'ABOUT' is not one of"),
    ([{"installer": "pip", "packages": [{"package_version": "1"}]}], "has no package_name"),
    ({"installer": "pip"}, "'dependencies' must be a list"),
])
def test_malformed_dependencies_are_refused_not_ignored(deps: object, expected: str) -> None:
    from mloop.serving.dependencies import check_dependencies

    with pytest.raises(ModelLoadError) as err:
        check_dependencies({"dependencies": deps})
    assert expected in str(err.value)
