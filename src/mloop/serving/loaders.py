"""Load a model folder for serving: one loader per model type, one :class:`LoadedModel` out.

Model types (``model_type`` values, the registry's names; ModelArts' spellings such as
``PyTorch`` and ``Scikit_Learn`` are accepted, ``pytorch`` meaning "whichever the files are"):

* ``torchscript``: ``model.pt`` / ``*.pt`` / ``*.pth`` saved by ``torch.jit.save``;
* ``pytorch_state_dict``: a state dict plus the class that loads it; ``config.json`` names the
  class (``"model_class": "net:Net"``, a module in the folder, ``"model_kwargs"`` for its
  constructor) and the state file (``"state_dict_file": "model_state.pt"``);
* ``sklearn``: ``model.joblib`` or ``model.pkl`` (joblib or pickle);
* ``onnx``: ``model.onnx`` (run with onnxruntime);
* ``custom``: ``customize_service.py`` (the ModelArts contract, see :mod:`.custom`).

``config.json`` keys the server reads (all optional): ``model_type``, ``model_file``,
``state_dict_file``, ``model_class``, ``input_shape`` (the shape of a batch of one, first
dimension the batch: MNIST writes ``[1, 1, 28, 28]``), ``input_dtype``, ``classes``,
``output`` (``log_probabilities`` | ``logits`` | ``probabilities`` | ``raw``) and ``image``
(how uploaded images become inputs: ``{"mode": "L", "size": [28, 28], "scale": 1/255}``,
see :mod:`.inputs`). Heavy libraries are imported by the loader that needs them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mloop.errors import ModelLoadError

MODEL_TYPES = ("torchscript", "pytorch_state_dict", "sklearn", "onnx", "custom")

# Spellings found in config.json files (ModelArts' model_type values, registry names).
_ALIASES = {
    "torchscript": "torchscript", "torch_script": "torchscript", "jit": "torchscript",
    # "pytorch" is the family (ModelArts' "PyTorch"): the files tell TorchScript from a state dict.
    "pytorch": "pytorch", "torch": "pytorch",
    "pytorch_state_dict": "pytorch_state_dict", "state_dict": "pytorch_state_dict",
    "sklearn": "sklearn", "scikit_learn": "sklearn", "scikit-learn": "sklearn", "scikitlearn": "sklearn",
    "xgboost": "sklearn", "onnx": "onnx", "custom": "custom",
}

_TORCH_SUFFIXES = (".pt", ".pth")


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """``config.json`` of a model folder, or ``{}`` when there is none.

    Raises:
        ModelLoadError: the file is not a JSON object.
    """
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc})", hint="fix or remove config.json") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: must hold a JSON object, found {type(data).__name__}",
                             hint="write config.json as {\"model_type\": ..., ...}")
    return data


def normalize_model_type(value: str) -> str:
    """The canonical name of a model type (``"Scikit_Learn"`` → ``"sklearn"``; ``"PyTorch"`` →
    ``"pytorch"``, the family, resolved from the files by :func:`detect_model_type`).

    Raises:
        ModelLoadError: an unknown type.
    """
    key = value.strip().lower().replace(" ", "_")
    if key not in _ALIASES:
        raise ModelLoadError(f"unknown model type {value!r}",
                             hint=f"use one of {', '.join(MODEL_TYPES)}")
    return _ALIASES[key]


def detect_model_type(model_dir: Path, config: dict[str, Any] | None = None) -> str:
    """What kind of model a folder holds, from its files (and ``config.json`` where they are
    ambiguous). A folder with ``customize_service.py`` is ``custom``; TorchScript wins over a
    state dict when a folder has both (MNIST's does), as it needs no class import.

    Raises:
        ModelLoadError: no model file is recognised.
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelLoadError(f"model folder {root} does not exist", hint="pass the folder the training job wrote")
    config = read_model_config(root) if config is None else config
    if (root / "customize_service.py").is_file():
        return "custom"
    files = sorted(p.name for p in root.iterdir() if p.is_file())
    if any(f.endswith(".onnx") for f in files):
        return "onnx"
    if any(f.endswith((".joblib", ".pkl")) for f in files):
        return "sklearn"
    torch_files = [f for f in files if f.endswith(_TORCH_SUFFIXES)]
    for name in ([config["model_file"]] if isinstance(config.get("model_file"), str) else []) + torch_files:
        if (root / name).is_file() and _is_torchscript(root / name):
            return "torchscript"
    if torch_files and config.get("model_class"):
        return "pytorch_state_dict"
    if torch_files:
        raise ModelLoadError(
            f"{root}: {', '.join(torch_files)} is not TorchScript and config.json names no model class",
            hint='save with torch.jit.save, or add "model_class": "module:Class" and "state_dict_file" to config.json')
    raise ModelLoadError(
        f"{root}: no model file found (looked for customize_service.py, *.onnx, *.joblib, *.pkl, *.pt, *.pth; "
        f"the folder has {', '.join(files) or 'no files'})",
        hint="write the model into the folder, or add a customize_service.py")


def _is_torchscript(path: Path) -> bool:
    # A TorchScript archive is a zip holding a "code/" folder; torch.save state dicts are zips
    # without it (or legacy pickles).
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in n or n.startswith("code/") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


@dataclass
class LoadedModel:
    """A model ready to run: ``forward`` takes a batch (numpy, first dimension the batch) and
    returns a dict of arrays, each with one row per input row (``outputs``, and for classifiers
    ``predictions`` and ``probabilities``).

    Attributes:
        model_type: one of :data:`MODEL_TYPES` (not ``custom``).
        input_shape: the shape of one instance (no batch dimension), ``None`` entries free;
            ``None`` when unknown.
        input_dtype: numpy dtype name the inputs are converted to.
        classes: class names, when the model is a classifier that names them.
        config: the folder's ``config.json``.
    """

    model_type: str
    predict: Callable[[Any], dict[str, Any]]
    input_shape: tuple[int | None, ...] | None = None
    input_dtype: str = "float32"
    classes: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    #: Whether the model takes NaN and infinity (None: unknown; config.json's ``allow_nan`` wins).
    allow_nan: bool | None = None

    def forward(self, batch: Any) -> dict[str, Any]:
        return self.predict(batch)


def load_model(model_dir: Path, model_type: str | None = None, *, threads: int | None = None) -> LoadedModel:
    """Load the model in ``model_dir`` with the loader for its type.

    Args:
        model_dir: the model folder.
        model_type: force a type (default: ``config.json``'s ``model_type`` if it names one of
            ours, else detected from the files).
        threads: torch intra-op threads (PyTorch models); ``None`` leaves torch's default.

    Raises:
        ModelLoadError: the folder cannot be loaded; the message carries the loader's error.
    """
    root = Path(model_dir).resolve()
    config = read_model_config(root)
    kind = normalize_model_type(model_type) if model_type else detect_model_type(root, config)
    if kind == "pytorch":
        kind = detect_model_type(root, config)
    loaders: dict[str, Callable[[Path, dict[str, Any], int | None], LoadedModel]] = {
        "torchscript": _load_torchscript, "pytorch_state_dict": _load_state_dict, "sklearn": _load_sklearn, "onnx": _load_onnx,
    }
    if kind not in loaders:
        raise ModelLoadError(f"{root}: model type {kind!r} has no built-in loader",
                             hint="custom services are loaded by mloop.serving.custom.load_custom_service")
    try:
        return loaders[kind](root, config, threads)
    except ModelLoadError:
        raise
    except ImportError as exc:
        raise ModelLoadError(f"{root}: loading the {kind} model needs {exc.name or exc}, which is not installed",
                             hint="pip install 'mloop[serve,onnx]' (and torch / scikit-learn for those models)") from exc
    except Exception as exc:
        raise ModelLoadError(f"{root}: the {kind} loader failed: {type(exc).__name__}: {exc}",
                             hint="check that the folder holds what the training job wrote") from exc


# -- shared helpers --------------------------------------------------------------------------------
def instance_shape(config: dict[str, Any]) -> tuple[int | None, ...] | None:
    """The per-instance shape from ``config.json``'s ``input_shape`` (a batch of one)."""
    shape = config.get("input_shape")
    if not isinstance(shape, list) or len(shape) < 2:
        return None
    return tuple(None if (d is None or (isinstance(d, int) and d < 0)) else int(d) for d in shape[1:])


def _classes(config: dict[str, Any]) -> list[str] | None:
    classes = config.get("classes") or config.get("labels")
    return [str(c) for c in classes] if isinstance(classes, list) and classes else None


def _is_classifier(config: dict[str, Any]) -> bool:
    return bool(_classes(config)) or "classif" in str(config.get("model_algorithm", "")).lower()


def classify(scores: Any, config: dict[str, Any]) -> dict[str, Any]:
    """``outputs`` plus ``probabilities`` and ``predictions`` for a (N, C) score array.

    The scores are read as ``config["output"]`` says, else guessed: rows of non-positive
    numbers whose exponentials sum to 1 are log-probabilities (MNIST's ``log_softmax``), rows
    in 0..1 summing to 1 are probabilities, anything else is logits (softmax).
    """
    import numpy as np

    out: dict[str, Any] = {"outputs": scores}
    if not _is_classifier(config) or scores.ndim != 2:
        return out
    s = scores.astype(np.float64, copy=False)
    kind = str(config.get("output", "")).lower()
    if not kind:
        if (s <= 1e-6).all() and np.allclose(np.exp(s).sum(axis=1), 1.0, atol=1e-3):
            kind = "log_probabilities"
        elif (s >= 0).all() and (s <= 1).all() and np.allclose(s.sum(axis=1), 1.0, atol=1e-3):
            kind = "probabilities"
        else:
            kind = "logits"
    if kind in ("log_probabilities", "log_softmax", "logprobs"):
        probs = np.exp(s)
    elif kind in ("probabilities", "softmax", "probs"):
        probs = s
    elif kind == "raw":
        return out
    else:
        e = np.exp(s - s.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    index = probs.argmax(axis=1)
    classes = _classes(config)
    out["probabilities"] = probs
    out["predictions"] = np.array([classes[i] if classes and i < len(classes) else int(i) for i in index],
                                  dtype=object)
    return out


# -- PyTorch ---------------------------------------------------------------------------------------
_torch_lock = threading.Lock()


def _torch(threads: int | None) -> Any:
    import torch

    if threads:
        with _torch_lock:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
    return torch


def _torch_predict(model: Any, config: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    import numpy as np
    import torch

    model.eval()

    def predict(batch: Any) -> dict[str, Any]:
        with torch.inference_mode():
            y = model(torch.from_numpy(np.ascontiguousarray(batch)))
        if isinstance(y, (tuple, list)):
            y = y[0]
        elif isinstance(y, dict):
            y = next(iter(y.values()))
        return classify(y.detach().cpu().numpy(), config)

    return predict


def _torch_file(root: Path, config: dict[str, Any], key: str) -> Path:
    name = config.get(key)
    if isinstance(name, str):
        path = root / name
        if not path.is_file():
            raise ModelLoadError(f"{root}: config.json names {key}={name!r}, which is not in the folder",
                                 hint="fix config.json or copy the file in")
        return path
    candidates = sorted(p for p in root.iterdir() if p.suffix in _TORCH_SUFFIXES)
    if not candidates:
        raise ModelLoadError(f"{root}: no *.pt or *.pth file", hint="write the model with torch.jit.save or torch.save")
    return candidates[0]


def _load_torchscript(root: Path, config: dict[str, Any], threads: int | None) -> LoadedModel:
    torch = _torch(threads)
    path = next((p for p in ([root / config["model_file"]] if isinstance(config.get("model_file"), str) else [])
                 + sorted(q for q in root.iterdir() if q.suffix in _TORCH_SUFFIXES)
                 if p.is_file() and _is_torchscript(p)), None)
    if path is None:
        raise ModelLoadError(f"{root}: no TorchScript file (*.pt, *.pth saved by torch.jit.save)",
                             hint="save with torch.jit.save(torch.jit.script(model), 'model.pt')")
    import warnings

    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated; it is still the format that loads without the class.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated")
        model = torch.jit.load(str(path), map_location="cpu")
        model = optimize_torchscript(model, config)
    return LoadedModel("torchscript", _torch_predict(model, config), instance_shape(config),
                       str(config.get("input_dtype", "float32")), _classes(config), config,
                       description=f"TorchScript {path.name}")


def optimize_torchscript(model: Any, config: dict[str, Any]) -> Any:
    """Freeze a TorchScript module and apply ``torch.jit.optimize_for_inference`` (conv/ReLU
    fusion, oneDNN kernels): on the MNIST CNN this makes a batch of 32 three times cheaper per
    image than single images, which is what dynamic batching needs on a CPU. ``"optimize":
    false`` in ``config.json`` turns it off; a module that cannot be frozen is served as is."""
    import torch

    if config.get("optimize", True) is False:
        return model
    try:
        model.eval()
        return torch.jit.optimize_for_inference(torch.jit.freeze(model))
    except Exception:  # noqa: BLE001 - an optimisation, never a reason not to serve
        return model


def import_from_folder(root: Path, module_name: str, unique: str) -> Any:
    """Import ``root/<module_name>.py`` under a private name, with ``root`` on ``sys.path``
    (so its own ``import helper`` of sibling files works, as on ModelArts)."""
    path = root / f"{module_name.replace('.', '/')}.py"
    if not path.is_file():
        raise ModelLoadError(f"{root}: no module {module_name!r} ({path.name} is not in the folder)",
                             hint="copy the file that defines the model class into the model folder")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location(unique, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    return module


def _load_state_dict(root: Path, config: dict[str, Any], threads: int | None) -> LoadedModel:
    torch = _torch(threads)
    ref = config.get("model_class")
    if not isinstance(ref, str) or ":" not in ref:
        raise ModelLoadError(f"{root}: a state-dict model needs \"model_class\": \"module:Class\" in config.json",
                             hint='e.g. "model_class": "net:Net" for a Net class in net.py')
    module_name, class_name = ref.split(":", 1)
    module = import_from_folder(root, module_name, f"_mloop_model_{abs(hash(str(root)))}_{module_name}")
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ModelLoadError(f"{root}: {module_name}.py defines no {class_name}", hint="fix model_class in config.json")
    kwargs = config.get("model_kwargs") or {}
    model = cls(**kwargs)
    state = torch.load(str(_torch_file(root, config, "state_dict_file")), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return LoadedModel("pytorch_state_dict", _torch_predict(model, config), instance_shape(config),
                       str(config.get("input_dtype", "float32")), _classes(config), config,
                       description=f"{class_name} state dict")


# -- scikit-learn ----------------------------------------------------------------------------------
def load_pickled(path: str | os.PathLike[str]) -> Any:
    """A joblib or pickle file (joblib reads both; plain pickle when joblib is missing)."""
    try:
        import joblib
    except ImportError:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    return joblib.load(path)


def _load_sklearn(root: Path, config: dict[str, Any], threads: int | None) -> LoadedModel:
    import numpy as np

    name = config.get("model_file")
    candidates = ([root / name] if isinstance(name, str) else []) + [root / "model.joblib", root / "model.pkl"] \
        + sorted(p for p in root.iterdir() if p.suffix in (".joblib", ".pkl"))
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ModelLoadError(f"{root}: no model.joblib or model.pkl", hint="joblib.dump(model, 'model.joblib')")
    model = load_pickled(path)
    if not hasattr(model, "predict"):
        raise ModelLoadError(f"{path}: holds a {type(model).__name__}, which has no predict()",
                             hint="dump the fitted estimator itself")
    classes = _classes(config)
    if classes is None and hasattr(model, "classes_"):
        classes = [str(c) for c in model.classes_]
    n_features = getattr(model, "n_features_in_", None)
    shape = instance_shape(config) or ((int(n_features),) if n_features is not None else None)
    has_proba = hasattr(model, "predict_proba")

    def predict(batch: Any) -> dict[str, Any]:
        pred = np.asarray(model.predict(batch))
        out: dict[str, Any] = {"outputs": pred}
        if has_proba and classes is not None:
            out["probabilities"] = np.asarray(model.predict_proba(batch))
            if pred.ndim == 1:
                out["predictions"] = pred
        return out

    return LoadedModel("sklearn", predict, shape, str(config.get("input_dtype", "float64")), classes, config,
                       description=f"{type(model).__name__} from {path.name}", allow_nan=_sklearn_allows_nan(model))


def _sklearn_allows_nan(model: Any) -> bool | None:
    """The estimator's own ``allow_nan`` tag (HistGradientBoosting: yes; LogisticRegression: no)."""
    try:
        if hasattr(model, "__sklearn_tags__"):
            return bool(model.__sklearn_tags__().input_tags.allow_nan)
        return bool(model._get_tags()["allow_nan"])
    except Exception:  # noqa: BLE001 - not a scikit-learn estimator, or tags it can't give
        return None


# -- ONNX ------------------------------------------------------------------------------------------
_ONNX_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
                "tensor(int32)": "int32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
                "tensor(int8)": "int8", "tensor(bool)": "bool"}


def _load_onnx(root: Path, config: dict[str, Any], threads: int | None) -> LoadedModel:
    import onnxruntime

    name = config.get("model_file")
    path = root / name if isinstance(name, str) and name.endswith(".onnx") else \
        next(iter(sorted(root.glob("*.onnx"))), None)
    if path is None or not path.is_file():
        raise ModelLoadError(f"{root}: no *.onnx file", hint="export with torch.onnx.export or skl2onnx")
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelLoadError(f"{path}: the built-in ONNX handler serves one-input models; this one has "
                             f"{len(inputs)} ({', '.join(i.name for i in inputs)})",
                             hint="add a customize_service.py subclassing OnnxServingBaseService")
    first = inputs[0]
    shape = instance_shape(config)
    if shape is None and first.shape and len(first.shape) >= 1:
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in first.shape[1:])
    dtype = str(config.get("input_dtype") or _ONNX_DTYPES.get(first.type, "float32"))
    input_name = first.name

    def predict(batch: Any) -> dict[str, Any]:
        results = session.run(None, {input_name: batch})
        return classify(results[0], config)

    return LoadedModel("onnx", predict, shape, dtype, _classes(config), config, description=f"ONNX {path.name}")
