"""Load a ``customize_service.py`` (the ModelArts contract; see :mod:`mloop.serving.service`).

The file is imported with the model folder on ``sys.path`` (so it can import its neighbours,
``net.py`` and the like, as on ModelArts); ``model_service`` is importable because mloop ships it,
and ModelArts' top-level ``log`` module is provided when nothing else by that name exists. The
service class is the subclass of :class:`~mloop.serving.service.BaseService` defined in the file
(the last one, when it defines several in a chain of subclasses).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from mloop.errors import ModelLoadError
from mloop.serving.service import (BaseService, OnnxServingBaseService, PTServingBaseService, XgSklServingBaseService)

_TORCH_SUFFIXES = (".pt", ".pth")


def model_path_for(cls: type, model_dir: Path, config: dict[str, Any]) -> str:
    """What ModelArts passes as ``model_path`` to a service class: the model *file* for the
    PyTorch, scikit-learn and ONNX bases, the *folder* otherwise.

    PyTorch: the only ``*.pt``/``*.pth`` file; with several, ``config.json``'s
    ``state_dict_file``, then ``model_file``, then the first by name (ModelArts code usually
    ``load_state_dict(torch.load(model_path))``). scikit-learn/XGBoost: ``model_file``, then a
    ``*.m`` file (ModelArts' naming), ``model.joblib``, ``model.pkl``, then any ``*.joblib``/``*.pkl``
    (or XGBoost's ``*.model``/``*.bst``/``*.ubj``). ONNX: ``model_file`` or the first ``*.onnx``.
    """
    root = Path(model_dir)
    files = sorted(p for p in root.iterdir() if p.is_file())

    def first(names: list[Any], suffixes: tuple[str, ...]) -> str:
        for name in names:
            if isinstance(name, str) and (root / name).is_file():
                return str(root / name)
        hit = next((p for p in files if p.suffix in suffixes), None)
        return str(hit) if hit is not None else str(root)

    if issubclass(cls, PTServingBaseService):
        torch_files = [p for p in files if p.suffix in _TORCH_SUFFIXES]
        if len(torch_files) == 1:
            return str(torch_files[0])
        return first([config.get("state_dict_file"), config.get("model_file")], _TORCH_SUFFIXES)
    if issubclass(cls, XgSklServingBaseService):
        # ModelArts' examples save both kinds as *.m (joblib.dump(model, "sklearn.m"),
        # booster.save_model("xgboost.m")).
        named = first([config.get("model_file")], (".m",))
        if named != str(root):
            return named
        return first(["model.joblib", "model.pkl"], (".joblib", ".pkl", ".pickle", ".model", ".bst", ".ubj"))
    if issubclass(cls, OnnxServingBaseService):
        return first([config.get("model_file")], (".onnx",))
    return str(root)


def _ensure_sklearn_externals_joblib(source: str) -> None:
    # ModelArts' scikit-learn examples do ``from sklearn.externals import joblib``, removed from
    # scikit-learn in 0.23; the standalone joblib is the same library.
    if "sklearn.externals" not in source or "sklearn.externals.joblib" in sys.modules:
        return
    try:
        importlib.import_module("sklearn.externals.joblib")
    except ImportError:
        try:
            import joblib
            import sklearn.externals  # noqa: F401
        except ImportError:
            return
        sys.modules["sklearn.externals.joblib"] = joblib


def _ensure_log_module() -> None:
    # ModelArts images have a top-level ``log`` module (``import log; log.getLogger(...)``).
    if "log" in sys.modules:
        return
    if importlib.util.find_spec("log") is None:
        from model_service import log

        sys.modules["log"] = log


def load_custom_service(model_dir: Path, model_name: str, config: dict[str, Any] | None = None) -> BaseService:
    """Import ``customize_service.py`` from ``model_dir`` and construct its service class.

    Raises:
        ModelLoadError: the file fails to import, defines no service class, or its constructor
            raises; the message carries the error (the traceback is chained).
    """
    root = Path(model_dir).resolve()
    path = root / "customize_service.py"
    if not path.is_file():
        raise ModelLoadError(f"{root}: no customize_service.py", hint="add one, or serve the model with a built-in handler")
    if config is None:
        text = (root / "config.json").read_text() if (root / "config.json").is_file() else "{}"
        config = json.loads(text)
    _ensure_log_module()
    _ensure_sklearn_externals_joblib(path.read_text(errors="replace"))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    unique = f"_mloop_customize_service_{abs(hash(str(root)))}"
    spec = importlib.util.spec_from_file_location(unique, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(unique, None)
        raise ModelLoadError(f"{path}: importing it failed: {type(exc).__name__}: {exc}",
                             hint="run `python customize_service.py` in the model folder to see the error") from exc
    classes = [c for c in vars(module).values()
               if inspect.isclass(c) and issubclass(c, BaseService) and c.__module__ == unique]
    if not classes:
        raise ModelLoadError(
            f"{path}: defines no service class (a subclass of BaseService)",
            hint="subclass PTServingBaseService (from model_service.pytorch_model_service import "
                 "PTServingBaseService), XgSklServingBaseService, OnnxServingBaseService or SingleNodeService")
    # The most derived class: one that no other class of the file subclasses.
    leaves = [c for c in classes if not any(o is not c and issubclass(o, c) for o in classes)]
    if len(leaves) > 1:
        raise ModelLoadError(f"{path}: defines several service classes ({', '.join(c.__name__ for c in leaves)})",
                             hint="keep one service class in customize_service.py")
    cls = leaves[0]
    model_path = model_path_for(cls, root, config)
    try:
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
        required = [p for p in params if p.default is p.empty]
        if len(params) == 1 or (len(required) == 1 and params[0].name == "model_path"):
            service = cls(model_path)  # ModelArts' machine-learning form: __init__(self, model_path)
        else:
            service = cls(model_name, model_path)
    except BaseException as exc:
        raise ModelLoadError(f"{path}: {cls.__name__}({model_name!r}, {model_path!r}) raised "
                             f"{type(exc).__name__}: {exc}",
                             hint="the service's __init__ must load the model from model_path") from exc
    if not getattr(service, "model_name", None):
        service.model_name = model_name
    return service
