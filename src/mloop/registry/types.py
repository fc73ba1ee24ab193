"""Model types: what a model folder holds, found from its files without loading the model.

mloop knows five canonical types; each names the files a loader needs in the version's
``layout`` (paths relative to the model folder)::

    torchscript         a TorchScript archive             layout: model_file
    pytorch_state_dict  a state dict + the model's class  layout: state_dict_file, model_class ("module:Class")
    sklearn             a joblib / pickle file            layout: model_file
    onnx                an ONNX graph                     layout: model_file
    custom              customize_service.py loads it     layout: customize_service (+ framework, model_file if known)

Every layout also names ``customize_service`` when the folder has a ``customize_service.py``
(the ModelArts contract: its class then serves the model, whatever the type) and
``config`` when it has a ``config.json``.

ModelArts ``model_type`` values map onto these: ``PyTorch`` becomes ``torchscript`` when the
folder holds a TorchScript archive, else ``pytorch_state_dict`` when ``config.json`` names the
model class, else ``custom`` when a ``customize_service.py`` does the loading (seed 003);
``Scikit_Learn`` is ``sklearn``; ``ONNX`` is ``onnx``; ``Custom`` is ``custom``. The other
ModelArts types (TensorFlow, MXNet, ...) are refused with a hint naming the type the files
look like.

Validation reads file names, ``config.json`` and, for Python files, their syntax tree (to
find the model class); it never imports user code or unpickles anything.
"""

from __future__ import annotations

import ast
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.errors import ModelError

__all__ = ["MODEL_TYPES", "UNSUPPORTED_TYPES", "ModelLayout", "canonical_type", "detect_model_type",
           "inspect_model_folder", "is_torchscript", "why_not_torchscript"]

TORCHSCRIPT = "torchscript"
STATE_DICT = "pytorch_state_dict"
SKLEARN = "sklearn"
ONNX = "onnx"
CUSTOM = "custom"

#: The canonical model types, in the order detection tries them.
MODEL_TYPES: tuple[str, ...] = (ONNX, TORCHSCRIPT, STATE_DICT, SKLEARN, CUSTOM)

#: Accepted spellings (lower-cased) -> canonical type; "pytorch" is the family decided by the files.
_ALIASES: dict[str, str] = {
    "torchscript": TORCHSCRIPT, "pytorch_state_dict": STATE_DICT, "state_dict": STATE_DICT,
    "sklearn": SKLEARN, "scikit_learn": SKLEARN, "scikit-learn": SKLEARN,
    "onnx": ONNX, "custom": CUSTOM,
    "pytorch": "pytorch", "torch": "pytorch",
}
#: ModelArts types mloop cannot serve (``model_type`` values of the reference, section 6.4).
UNSUPPORTED_TYPES: tuple[str, ...] = ("TensorFlow", "MXNet", "Caffe", "Spark_MLlib", "XGBoost", "Image", "Template")

CONFIG_FILE = "config.json"
CUSTOM_SERVICE = "customize_service.py"
_TORCH_SUFFIXES = (".pt", ".pth")
_SKLEARN_NAMES = ("model.joblib", "model.pkl", "model.pickle")
_SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")
_IGNORED = {"__pycache__", ".git", ".mloop"}
_TYPE_HINT = (f"use one of: {', '.join(MODEL_TYPES)} (or the ModelArts names PyTorch, Scikit_Learn, ONNX, Custom)")


@dataclass
class ModelLayout:
    """What :func:`inspect_model_folder` found: the canonical type and the files a loader needs."""

    model_type: str
    layout: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # config.json's content ({} when absent)


def canonical_type(model_type: str) -> str:
    """The canonical spelling of ``model_type``; ``"pytorch"`` stands for the PyTorch family.

    Raises:
        ModelError: the type is unknown or not supported (the hint lists the supported ones).
    """
    key = model_type.strip().lower().replace(" ", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    if key in {t.lower() for t in UNSUPPORTED_TYPES}:
        raise ModelError(f"model type {model_type!r} is not supported by mloop", hint=_TYPE_HINT,
                         model_type=model_type)
    raise ModelError(f"unknown model type {model_type!r}", hint=_TYPE_HINT, model_type=model_type)


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``), read from the zip's names.

    ``torch.save`` also writes zip archives, but only TorchScript ones hold ``code/`` and
    ``constants.pkl``; nothing is unpickled.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def why_not_torchscript(path: str | os.PathLike[str]) -> str:
    """Why ``path`` is not TorchScript, as :func:`is_torchscript` checked it (for messages)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    how = "checked: a TorchScript file is a zip archive holding code/ and constants.pkl"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return f"is not TorchScript: a damaged zip archive ({how})"
        if any(n.endswith("/data.pkl") for n in names):
            return (f"is not TorchScript: a torch.save() archive (data.pkl, no code/ or constants.pkl; {how})")
        return f"is not TorchScript: a zip archive without code/ or constants.pkl ({how})"
    if head[:1] == b"\x80":
        return f"is not TorchScript: a pickle (legacy torch.save() format), not a zip archive ({how})"
    if not head:
        return f"is not TorchScript: the file is empty ({how})"
    return f"is not TorchScript: not a zip archive ({how})"


def detect_model_type(folder: str | os.PathLike[str]) -> str:
    """The canonical type of the model in ``folder``, from ``config.json``'s ``model_type`` and its files.

    Raises:
        ModelError: the folder is missing or holds nothing mloop recognises.
    """
    return inspect_model_folder(folder).model_type


def inspect_model_folder(folder: str | os.PathLike[str], model_type: str | None = None) -> ModelLayout:
    """Check that ``folder`` holds a model of ``model_type`` (detected when None) and find its files.

    Args:
        folder: the model folder.
        model_type: a canonical type or a ModelArts name; None takes ``config.json``'s
            ``model_type``, else detects from the files.

    Returns:
        The canonical type and the layout a loader needs.

    Raises:
        ModelError: the folder does not exist or is empty, ``config.json`` is not a JSON
            object, the type is unknown or unsupported, or a file the type needs is missing
            (the message names it).
    """
    root = Path(folder)
    if root.is_file():
        raise ModelError(f"{root} is a file; a model is registered from the folder that holds it",
                         hint=f"pass its folder: --from {root.parent}" + (
                             " (with --type torchscript it must be a torch.jit.save archive)"
                             if root.name.endswith(_TORCH_SUFFIXES) else ""), folder=str(root))
    if not root.is_dir():
        raise ModelError(f"model folder {root} does not exist",
                         hint="pass the folder the training job wrote its model into", folder=str(root))
    files = _files(root)
    if not files:
        raise ModelError(f"model folder {root} is empty", hint="did the training job write its model there?",
                         folder=str(root))
    config = _read_config(root, files)
    declared = model_type if model_type is not None else config.get("model_type")
    if declared is not None and not isinstance(declared, str):
        raise ModelError(f"{root / CONFIG_FILE}: model_type must be a string, not {declared!r}", hint=_TYPE_HINT)
    if declared is None:
        found = _detect(root, files, config)
    else:
        try:
            kind = canonical_type(declared)
        except ModelError as exc:
            raise _with_guess(exc, root, files, config) from None
        found = _resolve(kind, root, files, config)
    base: dict[str, Any] = {}
    if CONFIG_FILE in files:
        base["config"] = CONFIG_FILE
    if CUSTOM_SERVICE in files:
        base["customize_service"] = CUSTOM_SERVICE
    found.layout = {**base, **found.layout}
    found.config = config
    return found


# -- detection and resolution --------------------------------------------------------------------

def _detect(root: Path, files: set[str], config: dict[str, Any]) -> ModelLayout:
    """No declared type: the first type whose files are there (onnx, torchscript, state dict, sklearn, custom)."""
    if _find_onnx(files, config):
        return _resolve(ONNX, root, files, config)
    if _find_torchscript(root, files, config):
        return _resolve(TORCHSCRIPT, root, files, config)
    if config.get("model_class"):
        return _resolve(STATE_DICT, root, files, config)
    if _find_sklearn(files, config):
        return _resolve(SKLEARN, root, files, config)
    if CUSTOM_SERVICE in files:
        return _resolve(CUSTOM, root, files, config)
    raise ModelError(
        f"cannot tell what kind of model {root} holds: no model.onnx, no TorchScript model.pt, no model class in "
        f"{CONFIG_FILE}, no model.joblib/model.pkl and no {CUSTOM_SERVICE}",
        hint="give the type (--type / ModelConfig(model_type=...)) or write one of those files", folder=str(root))


def _resolve(kind: str, root: Path, files: set[str], config: dict[str, Any]) -> ModelLayout:
    if kind == "pytorch":
        if _find_torchscript(root, files, config):
            kind = TORCHSCRIPT
        elif config.get("model_class"):
            kind = STATE_DICT
        elif CUSTOM_SERVICE in files:
            layout = _custom(root, files)
            layout.layout["framework"] = "pytorch"
            weights = _single(files, _TORCH_SUFFIXES)
            if weights:
                layout.layout["model_file"] = weights
            return layout
        else:
            raise ModelError(
                f"PyTorch model folder {root} has no TorchScript file (model.pt), no model class and no "
                f"{CUSTOM_SERVICE}",
                hint="save it with torch.jit.script(model).save('model.pt'), or write the state dict with the "
                     f"class file and a {CONFIG_FILE} such as {{\"model_class\": \"net:Net\", "
                     f"\"state_dict_file\": \"model_state.pt\"}}", folder=str(root))
    if kind == TORCHSCRIPT:
        name = _find_torchscript(root, files, config)
        if name is None:
            wanted = config.get("model_file") or "model.pt"
            present = [wanted] if wanted in files else sorted(f for f in files if f.endswith(_TORCH_SUFFIXES))
            if present:  # there, but not TorchScript: say what it is, not that it is missing
                reasons = "; ".join(f"{f} {why_not_torchscript(root / f)}" for f in present[:3])
                raise ModelError(f"TorchScript model folder {root}: {reasons}",
                                 hint="save the model with torch.jit.script(model).save('model.pt') (or "
                                      "torch.jit.trace); a state dict saved with torch.save() registers as "
                                      "--type pytorch_state_dict", folder=str(root),
                                 not_torchscript=present[0])
            raise ModelError(f"TorchScript model folder {root} has no TorchScript file {wanted} (no .pt/.pth "
                             "file at all)", hint="save it with torch.jit.script(model).save('model.pt')",
                             folder=str(root), missing=wanted)
        return ModelLayout(TORCHSCRIPT, {"model_file": name})
    if kind == STATE_DICT:
        return _state_dict(root, files, config)
    if kind == SKLEARN:
        name = _find_sklearn(files, config)
        if name is None:
            raise ModelError(f"scikit-learn model folder {root} has no model file (model.joblib or model.pkl)",
                             hint="save it with joblib.dump(model, 'model.joblib')", folder=str(root),
                             missing="model.joblib")
        return ModelLayout(SKLEARN, {"model_file": name})
    if kind == ONNX:
        name = _find_onnx(files, config)
        if name is None:
            raise ModelError(f"ONNX model folder {root} has no model.onnx",
                             hint="export it with torch.onnx.export(..., 'model.onnx') or onnx.save(model, "
                                  "'model.onnx')", folder=str(root), missing="model.onnx")
        return ModelLayout(ONNX, {"model_file": name})
    return _custom(root, files)


def _custom(root: Path, files: set[str]) -> ModelLayout:
    if CUSTOM_SERVICE not in files:
        raise ModelError(f"custom model folder {root} has no {CUSTOM_SERVICE}",
                         hint=f"a custom model is served by the class in {CUSTOM_SERVICE} (with _preprocess, "
                              "_inference, _postprocess); add it or give the model's real type",
                         folder=str(root), missing=CUSTOM_SERVICE)
    tree = _parse(root, CUSTOM_SERVICE)
    if not any(isinstance(node, ast.ClassDef) for node in tree.body):
        raise ModelError(f"{root / CUSTOM_SERVICE} defines no class",
                         hint="define the service class there, e.g. class Service(PTServingBaseService) with "
                              "_preprocess, _inference and _postprocess", folder=str(root))
    return ModelLayout(CUSTOM, {"customize_service": CUSTOM_SERVICE})


def _state_dict(root: Path, files: set[str], config: dict[str, Any]) -> ModelLayout:
    spec = config.get("model_class")
    example = '{"model_class": "net:Net", "state_dict_file": "model_state.pt"}'
    if not isinstance(spec, str) or ":" not in spec:
        raise ModelError(f"PyTorch state-dict model folder {root} needs {CONFIG_FILE} naming the model class "
                         f"as \"module:Class\" (model_class), found {spec!r}",
                         hint=f"write {CONFIG_FILE} such as {example}", folder=str(root))
    module, _, cls = spec.partition(":")
    module_file = module.replace(".", "/") + ".py"
    package_file = module.replace(".", "/") + "/__init__.py"
    source = module_file if module_file in files else package_file if package_file in files else None
    if source is None:
        raise ModelError(f"{CONFIG_FILE} names model class {spec!r}, but {root} has no {module_file}",
                         hint="copy the file that defines the model class into the model folder",
                         folder=str(root), missing=module_file)
    if not _defines(_parse(root, source), cls):
        raise ModelError(f"{root / source} defines no {cls!r} (named by model_class in {CONFIG_FILE})",
                         hint="fix model_class, or define the class in that file", folder=str(root))
    state = config.get("state_dict_file")
    if state is not None:
        state = _inside(root, state, "state_dict_file")
    else:
        candidates = sorted(f for f in files if f.endswith(_TORCH_SUFFIXES) and not is_torchscript(root / f))
        state = "model_state.pt" if "model_state.pt" in candidates else candidates[0] if len(candidates) == 1 else None
        if state is None:
            raise ModelError(f"PyTorch state-dict model folder {root}: cannot tell which file holds the state dict "
                             f"(found {', '.join(candidates) or 'no .pt/.pth file'})",
                             hint=f"name it in {CONFIG_FILE} as \"state_dict_file\"", folder=str(root))
    if state not in files:
        raise ModelError(f"PyTorch state-dict model folder {root} has no state dict file {state}",
                         hint="save it with torch.save(model.state_dict(), 'model_state.pt')", folder=str(root),
                         missing=state)
    layout: dict[str, Any] = {"state_dict_file": state, "model_class": spec}
    if isinstance(config.get("model_kwargs"), dict):
        layout["model_kwargs"] = config["model_kwargs"]
    return ModelLayout(STATE_DICT, layout)


# -- finding files ---------------------------------------------------------------------------------

def _find_onnx(files: set[str], config: dict[str, Any]) -> str | None:
    named = config.get("model_file")
    if isinstance(named, str) and named.endswith(".onnx"):
        return named if named in files else None
    if "model.onnx" in files:
        return "model.onnx"
    return _single(files, (".onnx",))


def _find_torchscript(root: Path, files: set[str], config: dict[str, Any]) -> str | None:
    named = config.get("model_file")
    if isinstance(named, str) and named.endswith(_TORCH_SUFFIXES) and named in files and is_torchscript(root / named):
        return named
    ordered = sorted(files, key=lambda f: (f != "model.pt", f.count("/"), f))
    return next((f for f in ordered if f.endswith(_TORCH_SUFFIXES) and is_torchscript(root / f)), None)


def _find_sklearn(files: set[str], config: dict[str, Any]) -> str | None:
    named = config.get("model_file")
    if isinstance(named, str) and named.endswith(_SKLEARN_SUFFIXES):
        return named if named in files else None
    for name in _SKLEARN_NAMES:
        if name in files:
            return name
    return _single(files, _SKLEARN_SUFFIXES)


def _single(files: set[str], suffixes: tuple[str, ...]) -> str | None:
    found = [f for f in files if f.endswith(suffixes)]
    return found[0] if len(found) == 1 else None


def _files(root: Path) -> set[str]:
    out: set[str] = set()
    for current, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED]
        rel = os.path.relpath(current, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        out.update(prefix + name for name in filenames if not name.endswith(".pyc"))
    return out


def _read_config(root: Path, files: set[str]) -> dict[str, Any]:
    if CONFIG_FILE not in files:
        return {}
    path = root / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}", hint="fix or remove config.json",
                         folder=str(root)) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} must hold a JSON object, not {type(data).__name__}",
                         hint='e.g. {"model_type": "PyTorch"}', folder=str(root))
    for key in ("model_file", "state_dict_file"):
        if key in data and data[key] is not None:
            data[key] = _inside(root, data[key], key)
    return data


def _inside(root: Path, value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"{root / CONFIG_FILE}: {key} must be a file name, not {value!r}",
                         hint="give a path relative to the model folder", folder=str(root))
    rel = value.replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    if os.path.isabs(value) or ".." in rel.split("/"):
        raise ModelError(f"{root / CONFIG_FILE}: {key} {value!r} points outside the model folder",
                         hint="give a path relative to the model folder", folder=str(root))
    return rel


def _parse(root: Path, rel: str) -> ast.Module:
    path = root / rel
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise ModelError(f"{path} is not valid Python: {exc.msg} (line {exc.lineno})",
                         hint="fix the file; it is imported when the model is served", folder=str(root)) from exc
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}", folder=str(root)) from exc


def _defines(tree: ast.Module, name: str) -> bool:
    """Whether the module binds ``name`` at top level (a class, an import, an assignment)."""
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


def _with_guess(exc: ModelError, root: Path, files: set[str], config: dict[str, Any]) -> ModelError:
    """An unsupported declared type, with a hint naming the type the files look like."""
    try:
        guess = _detect(root, files, {k: v for k, v in config.items() if k != "model_type"}).model_type
    except ModelError:
        return exc
    family = {TORCHSCRIPT: "PyTorch", STATE_DICT: "PyTorch", SKLEARN: "Scikit_Learn", ONNX: "ONNX",
              CUSTOM: "Custom"}[guess]
    return ModelError(f"{exc.message}; the folder looks like a {guess} model",
                      hint=f"declare model_type={family!r} (or leave it out to detect it from the files)",
                      model_type=exc.fields.get("model_type"), folder=str(root))
