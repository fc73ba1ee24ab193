"""The ModelArts custom-service contract: the base classes a ``customize_service.py`` subclasses.

A model folder with a ``customize_service.py`` is served through a class defined there, exactly
as ModelArts does it:

* the class subclasses one of the bases below, imported the ModelArts way
  (``from model_service.pytorch_model_service import PTServingBaseService``; the top-level
  :mod:`model_service` package re-exports these classes under ModelArts' module names);
* it is constructed as ``cls(model_name, model_path)`` (a one-argument ``__init__(self,
  model_path)``, as ModelArts' machine-learning bases have, is called with the path alone);
* each request goes through ``_preprocess(data)`` → ``_inference(data)`` → ``_postprocess(data)``
  and whatever ``_postprocess`` returns is the JSON response.

``model_path`` is what ModelArts passes for each base: the model *file* for the PyTorch,
scikit-learn and ONNX bases (``dirname(model_path)`` is the model folder, where ModelArts code
looks for ``label.json`` and the like), the model *folder* for :class:`BaseService` and
:class:`SingleNodeService`. See :func:`mloop.serving.custom.model_path_for`.

``data`` given to ``_preprocess``: the parsed JSON body for ``application/json`` (for
:class:`XgSklServingBaseService`, the raw body as text, as ModelArts hands it); for
``multipart/form-data`` a dict ``{field: {filename: file-like}}`` for file fields (ModelArts'
shape, so ``Image.open(file_content)`` works) and ``{field: text}`` for plain fields.

Batching: a class that defines ``_inference_batch(self, items: list) -> list`` opts in to
dynamic batching: ``_preprocess`` and ``_postprocess`` still run once per request, and the
preprocessed values of concurrent requests are handed to ``_inference_batch`` together (it
returns one result per item, in order). Without it, each request runs ``inference`` on its own.
All methods run on the server's single model thread, so user code never runs concurrently.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("mloop.serving.service")


class BaseService:
    """The root of the ModelArts service classes.

    Attributes:
        model_name: the served model's name.
        model_path: the model file or folder (see the module docstring).
    """

    def __init__(self, model_name: str, model_path: str) -> None:
        self.model_name = model_name
        self.model_path = model_path

    def _preprocess(self, data: Any) -> Any:
        """Turn the request (parsed JSON or the multipart dict) into the model's input."""
        return data

    def _inference(self, data: Any) -> Any:
        """Run the model on the preprocessed data."""
        return data

    def _postprocess(self, data: Any) -> Any:
        """Turn the model's output into the JSON-able response."""
        return data

    def inference(self, data: Any) -> Any:
        """One request: ``_preprocess`` → ``_inference`` → ``_postprocess``."""
        return self._postprocess(self._inference(self._preprocess(data)))

    def ping(self) -> None:
        return None

    def signature(self) -> None:
        return None


class SingleNodeService(BaseService):
    """ModelArts' generic single-process service (``model_service.model_service``)."""


class PTServingBaseService(SingleNodeService):
    """PyTorch services. The subclass loads ``self.model`` in ``__init__``; the default
    ``_inference`` calls ``self.model(value)`` for each key of the preprocessed dict (as
    ModelArts' does), under ``torch.no_grad()``."""

    def __init__(self, model_name: str, model_path: str) -> None:
        super().__init__(model_name, model_path)
        self.model: Any = None

    def _inference(self, data: Any) -> Any:
        import torch

        if self.model is None:
            raise RuntimeError("self.model is None: load the model in your service's __init__ "
                               "(e.g. self.model = torch.jit.load(model_path))")
        with torch.no_grad():
            if isinstance(data, dict):
                return {k: self.model(v) for k, v in data.items()}
            return self.model(data)


class XgSklServingBaseService(BaseService):
    """scikit-learn and XGBoost services (``model_service.python_model_service``), with
    ModelArts' contract for them:

    * ``model_path`` is the model *file* (``*.m`` as ModelArts' examples save it,
      ``joblib.dump(model, "sklearn.m")`` / ``booster.save_model("xgboost.m")``, else
      ``*.joblib``/``*.pkl``; see :func:`mloop.serving.custom.model_path_for`);
    * ``_preprocess`` receives the *raw request body* of a JSON request (a ``str``; the
      documented examples do ``json.loads(data)`` themselves); a multipart upload is the
      ``{field: {filename: file}}`` dict as for the other bases;
    * the default ``_preprocess`` reads ModelArts' ``{"data": {"req_data": [{feature: value,
      ...}, ...]}}`` into rows of values (in the order given), and also takes mloop's
      ``{"inputs": [[...], ...]}`` or a bare list of rows;
    * the default ``_inference`` is ``self.model.predict(data)`` as a list, ``self.model`` being
      loaded from ``model_path`` with joblib (pickle) or, failing that, as an
      ``xgboost.Booster`` (then fed an ``xgboost.DMatrix``) when first needed;
    * the default ``_postprocess`` answers ``[{"predictresult": value}, ...]``.
    """

    #: The handler hands ``_preprocess`` the request body as text instead of the parsed JSON.
    raw_request_body = True

    def __init__(self, model_name: str, model_path: str | None = None) -> None:
        if model_path is None:  # ModelArts' ML bases are also built as cls(model_path)
            model_name, model_path = "", model_name
        super().__init__(model_name, model_path)
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from mloop.serving.loaders import load_pickled

            try:
                self._model = load_pickled(self.model_path)
            except Exception as exc:  # not a pickle: XGBoost's own format, as ModelArts falls back to
                try:
                    import xgboost
                except ImportError:
                    raise exc from None
                self._model = xgboost.Booster(model_file=self.model_path)
        return self._model

    @model.setter
    def model(self, value: Any) -> None:
        self._model = value

    def _preprocess(self, data: Any) -> Any:
        import collections
        import json

        if isinstance(data, (str, bytes, bytearray)):
            data = json.loads(data, object_pairs_hook=collections.OrderedDict)
        if isinstance(data, dict):
            inner = data.get("data")
            if isinstance(inner, dict) and "req_data" in inner:
                return [list(row.values()) if isinstance(row, dict) else row for row in inner["req_data"]]
            if "inputs" in data:
                return data["inputs"]
        return data

    def _inference(self, data: Any) -> Any:
        model = self.model
        if type(model).__name__ == "Booster" and type(model).__module__.startswith("xgboost"):
            import xgboost

            data = xgboost.DMatrix(data)
        result = model.predict(data)
        return result.tolist() if hasattr(result, "tolist") else result

    def _postprocess(self, data: Any) -> Any:
        return [{"predictresult": value} for value in data] if isinstance(data, list) else data


class OnnxServingBaseService(SingleNodeService):
    """ONNX services (mloop's addition; ModelArts has no ONNX base). ``self.session`` is an
    ``onnxruntime.InferenceSession`` on ``model_path``; the default ``_inference`` feeds a dict
    ``{input name: array}`` (or one array for a single-input model) and returns
    ``{output name: array}``."""

    def __init__(self, model_name: str, model_path: str) -> None:
        super().__init__(model_name, model_path)
        import onnxruntime

        self.session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])

    def _inference(self, data: Any) -> Any:
        inputs = data if isinstance(data, dict) else {self.session.get_inputs()[0].name: data}
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(None, inputs)))


__all__ = ["BaseService", "SingleNodeService", "PTServingBaseService", "XgSklServingBaseService",
           "OnnxServingBaseService"]
