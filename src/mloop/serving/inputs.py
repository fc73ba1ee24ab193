"""Turn request payloads into model inputs, refusing what the model cannot take.

JSON: ``{"inputs": [...]}`` (``"instances"`` is accepted too) holds one instance or a batch of
them. With a known instance shape ``S`` (``config.json``'s ``input_shape``, the ONNX model's,
a scikit-learn model's ``n_features_in_``), an array of shape ``S`` is one instance and
``(N, *S)`` a batch; size-1 dimensions may be left out (MNIST takes ``(28, 28)`` rows as well as
``(1, 28, 28)``). Anything else is a :class:`~mloop.errors.BadInputError` (422) naming the
expected shape and dtype.

Images (multipart upload or a raw ``image/*`` body) are decoded with Pillow and converted as
``config.json``'s ``image`` entry says::

    "image": {"mode": "L", "size": [28, 28], "scale": 0.00392156862745098, "layout": "CHW",
              "mean": null, "std": null, "invert": false}

``mode`` is a Pillow mode (``L`` grayscale, ``RGB``), ``size`` is ``[width, height]`` (the
image is resized when it differs), pixels are multiplied by ``scale``, then ``(x - mean) / std``
when given; ``layout`` ``CHW`` puts channels first (PyTorch), ``HWC`` last. Without an ``image``
entry it is derived from the instance shape: ``(1, H, W)`` → ``L``, ``(3, H, W)`` → ``RGB``,
``scale`` 1/255.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from mloop.errors import BadInputError


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _matches(shape: tuple[int, ...], spec: tuple[int | None, ...]) -> bool:
    return len(shape) == len(spec) and all(s is None or s == d for d, s in zip(shape, spec))


def _squeezed(spec: tuple[int | None, ...]) -> tuple[int | None, ...]:
    return tuple(d for d in spec if d != 1)


def to_batch(inputs: Any, shape: tuple[int | None, ...] | None, dtype: str) -> Any:
    """A numpy batch (first dimension the batch) from the ``inputs`` of a JSON request.

    Raises:
        BadInputError: not a rectangular array of numbers, or not of the model's shape.
    """
    import numpy as np

    try:
        arr = np.asarray(inputs, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"'inputs' must be a rectangular array of numbers ({exc}); "
                            f"expected {_expected(shape, dtype)}",
                            hint="send {\"inputs\": [[...], ...]} with one row per instance") from exc
    if arr.dtype == object or arr.ndim == 0:
        raise BadInputError(f"'inputs' must be an array of numbers; expected {_expected(shape, dtype)}")
    if shape is None:
        return arr if arr.ndim >= 1 else arr.reshape(1)
    if _matches(arr.shape, shape):
        return arr.reshape((1,) + arr.shape)
    if _matches(arr.shape[1:], shape):
        return arr
    full = tuple(arr.shape)
    sq = _squeezed(shape)
    # Size-1 dimensions left out: (28, 28) for (1, 28, 28).
    if sq != shape and None not in shape:
        if _matches(full, sq):
            return arr.reshape((1,) + tuple(d or 0 for d in shape))
        if _matches(full[1:], sq):
            return arr.reshape((full[0],) + tuple(d or 0 for d in shape))
    raise BadInputError(f"'inputs' has shape {_shape_text(full)}, but the model expects {_expected(shape, dtype)}",
                        hint="send one instance or a list of them, each of the model's input shape",
                        got_shape=list(full), expected_shape=[d for d in shape])


def _expected(shape: tuple[int | None, ...] | None, dtype: str) -> str:
    if shape is None:
        return f"a batch of {dtype} arrays (first dimension the batch)"
    return f"one instance of shape {_shape_text(shape)} or a batch (N, {_shape_text(shape)[1:]} of {dtype}"


@dataclass(frozen=True)
class ImageSpec:
    """How an uploaded image becomes one model input (see the module docstring)."""

    mode: str
    size: tuple[int, int] | None
    scale: float = 1 / 255
    layout: str = "CHW"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    invert: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any], shape: tuple[int | None, ...] | None) -> ImageSpec | None:
        """The spec from ``config["image"]``, or derived from the instance shape; ``None`` when
        the model does not take images."""
        raw = config.get("image")
        if isinstance(raw, dict):
            size = raw.get("size")
            mean, std = raw.get("mean"), raw.get("std")
            return cls(mode=str(raw.get("mode", "RGB")),
                       size=(int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None,
                       scale=float(raw.get("scale", 1 / 255)), layout=str(raw.get("layout", "CHW")).upper(),
                       mean=tuple(float(m) for m in (mean if isinstance(mean, list) else [mean])) if mean is not None
                       else None,
                       std=tuple(float(s) for s in (std if isinstance(std, list) else [std])) if std is not None
                       else None,
                       invert=bool(raw.get("invert", False)))
        if shape is None or len(shape) not in (2, 3) or None in shape:
            return None
        dims = [int(d) for d in shape if d is not None]
        if len(dims) == 2:
            return cls(mode="L", size=(dims[1], dims[0]), layout="HW")
        if dims[0] in (1, 3):
            return cls(mode="L" if dims[0] == 1 else "RGB", size=(dims[2], dims[1]), layout="CHW")
        if dims[2] in (1, 3):
            return cls(mode="L" if dims[2] == 1 else "RGB", size=(dims[1], dims[0]), layout="HWC")
        return None


def decode_image(data: bytes, spec: ImageSpec, dtype: str, filename: str = "image") -> Any:
    """One model input from the bytes of an image file.

    Raises:
        BadInputError: (400) the bytes are not an image Pillow can read.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            converted = img.convert(spec.mode)
    except UnidentifiedImageError as exc:
        raise BadInputError(f"{filename}: not an image (Pillow recognises no image format in its {len(data)} bytes)",
                            hint="upload a PNG, JPEG, BMP or other common image file", status=400) from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInputError(f"{filename}: the image cannot be read ({type(exc).__name__}: {exc})",
                            hint="upload a PNG, JPEG, BMP or other common image file", status=400) from exc
    if spec.size is not None and converted.size != spec.size:
        converted = converted.resize(spec.size, Image.BILINEAR)
    x = np.asarray(converted, dtype=np.float32)
    if spec.invert:
        x = 255.0 - x
    x = x * spec.scale
    if spec.mean is not None:
        x = x - np.asarray(spec.mean, dtype=np.float32)
    if spec.std is not None:
        x = x / np.asarray(spec.std, dtype=np.float32)
    if x.ndim == 2 and spec.layout == "CHW":
        x = x[None, :, :]
    elif x.ndim == 2 and spec.layout == "HWC":
        x = x[:, :, None]
    elif x.ndim == 3 and spec.layout == "CHW":
        x = np.transpose(x, (2, 0, 1))
    return np.ascontiguousarray(x, dtype=dtype)


def check_instance_count(n: int, limit: int) -> None:
    """Refuse a request with more instances than ``limit``."""
    if limit and n > limit:
        raise BadInputError(f"{n} instances in one request; this server takes at most {limit}",
                            hint="split the request", status=413)


__all__ = ["to_batch", "ImageSpec", "decode_image", "check_instance_count"]
