"""Request handlers: what the server does with a decoded request.

:class:`BuiltinHandler` serves a :class:`~mloop.serving.loaders.LoadedModel` (JSON tensors and
uploaded images, batched across requests). :class:`CustomHandler` serves a
``customize_service.py`` class with the ModelArts contract. :func:`load_handler` picks one for a
model folder. Both run all model and user code on the batcher's single model thread.
"""

from __future__ import annotations

import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from mloop.errors import BadInputError, ServiceCodeError
from mloop.serving.batching import Batcher
from mloop.serving.inputs import (ImageLimits, ImageSpec, check_finite, check_images, check_instance_count,
                                  decode_images, to_batch)
from mloop.serving.loaders import LoadedModel, detect_model_type, load_model, normalize_model_type, read_model_config

logger = logging.getLogger("mloop.serving")


@dataclass
class UploadedFile:
    field: str
    filename: str
    content: bytes
    content_type: str = ""


class Handler(Protocol):
    model_type: str
    batcher: Batcher
    batching: bool

    def info(self) -> dict[str, Any]: ...

    async def handle_json(self, body: Any) -> Any: ...

    async def handle_files(self, files: list[UploadedFile], fields: dict[str, str]) -> Any: ...


# -- built-in ----------------------------------------------------------------------------------------
class BuiltinHandler:
    """JSON ``{"inputs": ...}`` and image uploads for a model of a known type.

    Args:
        model: the loaded model.
        batching: gather concurrent requests into one forward pass.
        max_batch_size, max_wait_ms: batching limits (see :class:`~mloop.serving.batching.Batcher`).
        max_instances: most instances one request may carry (413 beyond).
    """

    def __init__(self, model: LoadedModel, *, batching: bool = True, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, max_instances: int = 1024) -> None:
        self.model = model
        self.model_type = model.model_type
        self.batching = batching
        self.max_instances = max_instances
        self.image = ImageSpec.from_config(model.config, model.input_shape)
        #: What one request may ask to decode (set by the app from its settings).
        self.image_limits = ImageLimits()
        #: Whether NaN and infinity reach the model: config.json's ``allow_nan``, else what the model
        #: says (scikit-learn's tag), else yes (torch and ONNX compute with them).
        allow = model.config.get("allow_nan", model.allow_nan)
        self.allow_nan = True if allow is None else bool(allow)
        self.batcher = Batcher(self._run_batch, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                               size_of=len)
        self.warmup()

    def warmup(self) -> None:
        """Run every batch size once (zeros of the model's input shape), so first requests don't
        pay for kernel selection and TorchScript's shape specialisation (a few ms per new size)."""
        import numpy as np

        shape = self.model.input_shape
        if shape is None or None in shape:
            return
        limit = self.batcher.max_batch_size if self.batching else 1
        try:
            for n in range(1, limit + 1):
                self.model.forward(np.zeros((n, *[int(d) for d in shape if d is not None]),
                                            dtype=self.model.input_dtype))
        except Exception as exc:  # noqa: BLE001 - the model may refuse zeros; requests will tell
            logger.warning("warm-up skipped: %s: %s", type(exc).__name__, exc)

    def info(self) -> dict[str, Any]:
        shape = self.model.input_shape
        return {"model_type": self.model_type, "description": self.model.description,
                "input_shape": list(shape) if shape is not None else None, "input_dtype": self.model.input_dtype,
                "classes": self.model.classes, "accepts_images": self.image is not None,
                "batching": self.batching, "max_batch_size": self.batcher.max_batch_size}

    # Runs on the model thread: one forward pass per (shape, dtype) group of the batch, so a
    # request of an unexpected shape (when the model declares none) fails alone.
    def _run_batch(self, items: list[Any]) -> list[Any]:
        import numpy as np

        results: list[Any] = [None] * len(items)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.shape[1:], item.dtype.str), []).append(i)
        for indices in groups.values():
            batch = items[indices[0]] if len(indices) == 1 else np.concatenate([items[i] for i in indices])
            try:
                out = self.model.forward(batch)
            except Exception as exc:  # noqa: BLE001 - becomes each caller's error
                for i in indices:
                    results[i] = self._forward_error(exc, items[i])
                continue
            start = 0
            for i in indices:
                n = len(items[i])
                results[i] = {k: v[start:start + n] for k, v in out.items()}
                start += n
        return results

    def _forward_error(self, exc: Exception, item: Any) -> Exception:
        import numpy as np

        if item.dtype.kind in "fc" and not np.isfinite(item).all():
            # The model refused NaN or infinity it was let through (allow_nan): the client's inputs.
            err: Exception = BadInputError(
                f"the model refused inputs holding NaN or infinity: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}", hint="send finite numbers", status=422)
        elif self.model.input_shape is None:
            # The model declares no input shape, so its own refusal is the best message we have.
            err = BadInputError(
                f"the model refused inputs of shape {tuple(item.shape)} ({self.model.input_dtype}): "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                hint="send inputs of the shape the model was trained on; add input_shape to config.json "
                     "so the server can check it", status=422)
        else:
            err = ServiceCodeError(f"the model failed: {type(exc).__name__}: {exc}")
            logger.error("forward pass failed", exc_info=exc)
        err.__cause__ = exc
        return err

    async def _predict(self, batch: Any) -> dict[str, Any]:
        check_instance_count(len(batch), self.max_instances)
        if self.batching:
            out = await self.batcher.submit(batch)
        else:
            out = await self.batcher.run_one(batch)
        return {k: v.tolist() for k, v in out.items()}

    async def handle_json(self, body: Any) -> Any:
        if not isinstance(body, dict) or not ({"inputs", "instances"} & body.keys()):
            raise BadInputError(
                "expected a JSON object with an 'inputs' field (one instance or a list of them)"
                + (f"; got an object with {', '.join(sorted(map(str, body)))}" if isinstance(body, dict) else
                   f"; got {type(body).__name__}"),
                hint='send {"inputs": [[...], ...]}, or upload an image as multipart field "file"',
                status=422)
        inputs = body["inputs"] if "inputs" in body else body["instances"]
        batch = to_batch(inputs, self.model.input_shape, self.model.input_dtype)
        if not self.allow_nan:
            check_finite(batch)
        return await self._predict(batch)

    async def handle_files(self, files: list[UploadedFile], fields: dict[str, str]) -> Any:
        import numpy as np

        if self.image is None:
            raise BadInputError("this model does not take images (its config.json has no 'image' entry and its input "
                                "shape is not an image's)", hint='send JSON {"inputs": ...}', status=415)
        if not files:
            raise BadInputError("the multipart request holds no file", hint="curl -F file=@digit.png URL", status=422)
        check_instance_count(len(files), self.max_instances)
        named = [(f.filename, f.content) for f in files]
        check_images(named, self.image_limits)  # from the headers, before decoding anything
        # Decoded on the decoding threads: the event loop keeps answering (/health) meanwhile.
        arrays = await decode_images(named, self.image, self.model.input_dtype, self.image_limits.max_pixels)
        batch = np.stack(arrays)
        if self.model.input_shape is not None:
            batch = to_batch(batch, self.model.input_shape, self.model.input_dtype)
        return await self._predict(batch)


# -- customize_service.py ------------------------------------------------------------------------------
class CustomHandler:
    """A ``customize_service.py`` service: ``_preprocess`` → ``_inference`` → ``_postprocess``.

    With batching on and a class that defines ``_inference_batch(items) -> list``, the
    preprocessed data of concurrent requests go through ``_inference_batch`` together;
    otherwise each request runs the whole ``inference(data)`` on its own.
    """

    model_type = "custom"

    def __init__(self, service: Any, *, batching: bool = True, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0) -> None:
        self.service = service
        #: ModelArts' XGBoost/scikit-learn bases take the JSON request body as text (see handle_raw_json).
        self.raw_json = bool(getattr(service, "raw_request_body", False))
        self.batched = batching and callable(getattr(service, "_inference_batch", None))
        self.batching = self.batched
        run = self._run_batch if self.batched else self._run_each
        self.batcher = Batcher(run, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
        #: Uploaded images are checked against these from their headers before the service sees them.
        self.image_limits = ImageLimits()

    def info(self) -> dict[str, Any]:
        return {"model_type": "custom", "service_class": type(self.service).__name__,
                "model_path": getattr(self.service, "model_path", None), "batching": self.batched,
                "max_batch_size": self.batcher.max_batch_size}

    def _user_error(self, exc: BaseException, where: str) -> ServiceCodeError:
        name = type(self.service).__name__
        logger.error("%s.%s raised", name, where, exc_info=exc)
        err = ServiceCodeError(f"{name}.{where} raised {type(exc).__name__}: {exc}",
                               hint="see the server log for the traceback")
        err.__cause__ = exc
        return err

    def _run_each(self, items: list[Any]) -> list[Any]:
        results: list[Any] = []
        for data in items:
            try:
                results.append(self.service.inference(data))
            except Exception as exc:  # noqa: BLE001 - the user's code
                results.append(self._user_error(exc, "inference"))
        return results

    def _run_batch(self, items: list[Any]) -> Sequence[Any]:
        try:
            out = list(self.service._inference_batch(items))
        except Exception as exc:  # noqa: BLE001
            return [self._user_error(exc, "_inference_batch")] * len(items)
        if len(out) != len(items):
            err = ServiceCodeError(f"{type(self.service).__name__}._inference_batch returned {len(out)} results "
                                   f"for {len(items)} inputs", hint="return one result per input, in order")
            return [err] * len(items)
        return out

    async def _call(self, fn: Any, data: Any, where: str) -> Any:
        try:
            return await self.batcher.call(fn, data)
        except Exception as exc:  # noqa: BLE001
            raise self._user_error(exc, where) from exc

    async def _handle(self, data: Any) -> Any:
        if not self.batched:
            return await self.batcher.run_one(data)
        pre = await self._call(self.service._preprocess, data, "_preprocess")
        out = await self.batcher.submit(pre)
        return await self._call(self.service._postprocess, out, "_postprocess")

    async def handle_json(self, body: Any) -> Any:
        return await self._handle(body)

    async def handle_raw_json(self, raw: bytes) -> Any:
        """A JSON request to a service that reads the body itself (``raw_json``): ``_preprocess``
        gets the body as text (bytes when it is not UTF-8), as ModelArts' ML bases get it."""
        try:
            text: Any = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw
        return await self._handle(text)

    async def handle_files(self, files: list[UploadedFile], fields: dict[str, str]) -> Any:
        # ModelArts' shape: {field: {filename: file-like}} for files, {field: text} for the rest.
        check_images([(f.filename, f.content) for f in files], self.image_limits)
        data: dict[str, Any] = dict(fields)
        for f in files:
            data.setdefault(f.field, {})[f.filename] = io.BytesIO(f.content)
        return await self._handle(data)


def load_handler(model_dir: Path, *, model_name: str, model_type: str | None = None, batching: bool = True,
                 max_batch_size: int = 32, max_wait_ms: float = 5.0, threads: int | None = None) -> Handler:
    """Load the model folder and return the handler that serves it.

    Raises:
        ModelLoadError: the folder cannot be loaded (the loader's or the service's error), or
            ``config.json``'s ``dependencies`` are not installed (:mod:`mloop.serving.dependencies`).
    """
    from mloop.serving.custom import load_custom_service
    from mloop.serving.dependencies import check_dependencies

    root = Path(model_dir).resolve()
    config = read_model_config(root)
    check_dependencies(config, where=str(root / "config.json"))
    kind = normalize_model_type(model_type) if model_type else detect_model_type(root, config)
    if kind == "pytorch":  # the family: TorchScript or a state dict, as the files say
        kind = detect_model_type(root, config)
    if kind == "custom":
        service = load_custom_service(root, model_name, config)
        if threads and "torch" in sys.modules:  # the service's code brought torch in
            sys.modules["torch"].set_num_threads(threads)
        return CustomHandler(service, batching=batching, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
    model = load_model(root, kind, threads=threads)
    return BuiltinHandler(model, batching=batching, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
