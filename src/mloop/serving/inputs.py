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
import os
import threading
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
    except (ValueError, TypeError, OverflowError) as exc:
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


def check_finite(batch: Any) -> None:
    """Refuse NaN and infinity (JSON ``NaN``, ``Infinity``, ``1e999``) in a float batch, before the model.

    Raises:
        BadInputError: (422) where the first one is and how many there are.
    """
    import numpy as np

    if batch.dtype.kind not in "fc":
        return
    finite = np.isfinite(batch)
    if finite.all():
        return
    bad = np.argwhere(~finite)
    first = tuple(int(i) for i in bad[0])
    raise BadInputError(f"'inputs' holds {len(bad)} non-finite number(s) (NaN or infinity), the first at index "
                        f"{list(first)} (batch first): {batch[first]!r}; this model takes finite numbers only",
                        hint='send finite numbers (JSON has no NaN or Infinity; 1e999 overflows); a model that '
                             'handles missing values can say so with "allow_nan": true in its config.json',
                        non_finite=len(bad), first_index=list(first))


def check_json_depth(raw: bytes, body: Any, limit: int) -> None:
    """Refuse a JSON body nested deeper than ``limit`` (arrays and objects), before any code walks it
    (numpy, a model's service code: recursion, stack use). Cheap: the brackets are only counted
    unless there are more of them than ``limit``, and only then is the parsed body walked.

    Raises:
        BadInputError: (400) nested too deeply.
    """
    if limit <= 0 or raw.count(b"[") + raw.count(b"{") <= limit:
        return
    depth = 0
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, list):
            items: Any = value
        elif isinstance(value, dict):
            items = value.values()
        else:
            continue
        depth = max(depth, level)
        if depth > limit:
            raise json_too_deep(limit)
        stack.extend((v, level + 1) for v in items if isinstance(v, (list, dict)))


def json_too_deep(limit: int) -> BadInputError:
    return BadInputError(f"the JSON body is nested more than {limit} levels deep",
                         hint="send inputs as arrays of numbers, one level per dimension",
                         status=400, max_depth=limit)


# -- images ----------------------------------------------------------------------------------------------
#: Most pixels one image may declare (a PNG of a few KB can declare 60000 x 60000: 3.6 GB decoded).
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
#: Most images one request may carry, and most pixels all of them together.
DEFAULT_MAX_IMAGES = 64
DEFAULT_MAX_REQUEST_PIXELS = 400_000_000


@dataclass(frozen=True)
class ImageLimits:
    """What one request may ask the server to decode, checked from the headers before any decoding.

    ``max_pixels``: per image (width x height as declared); ``max_images``: images per request;
    ``max_request_pixels``: all images of a request together. Beyond any: 413.
    """

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_images: int = DEFAULT_MAX_IMAGES
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header, without decoding it; None when no format is
    recognised (the decoder then says what is wrong).

    Raises:
        BadInputError: (413) the header declares more than Pillow's own bomb limit.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"image too large: {exc}", hint="send smaller images", status=413) from exc
    except Exception:  # noqa: BLE001 - not an image, or a broken one: decoding reports it
        return None


def check_images(files: list[tuple[str, bytes]], limits: ImageLimits) -> None:
    """Refuse a request whose images, by their headers, are too many or too large (``files``:
    (name, bytes) pairs; what is no image is left to the decoder).

    Raises:
        BadInputError: (413) naming the image and the limit.
    """
    if limits.max_images and len(files) > limits.max_images:
        raise BadInputError(f"{len(files)} images in one request; this server takes at most {limits.max_images}",
                            hint="split the request", status=413, max_images=limits.max_images)
    total = 0
    for name, data in files:
        size = declared_size(data)
        if size is None:
            continue
        pixels = size[0] * size[1]
        if limits.max_pixels and pixels > limits.max_pixels:
            raise BadInputError(f"{name}: image too large: it declares {size[0]}x{size[1]} = {pixels:,} pixels, "
                                f"more than this server's limit of {limits.max_pixels:,} per image",
                                hint="send smaller images (resize them before upload)", status=413,
                                max_image_pixels=limits.max_pixels)
        total += pixels
        if limits.max_request_pixels and total > limits.max_request_pixels:
            raise BadInputError(f"the images of this request declare more than {limits.max_request_pixels:,} "
                                f"pixels together", hint="send fewer or smaller images per request",
                                status=413, max_request_pixels=limits.max_request_pixels)


_decode_pool: Any = None
_decode_pool_lock = threading.Lock()


def decode_pool() -> Any:
    """The process's image-decoding threads (one per CPU): decoding never runs on the event loop,
    and no more images are decoded at once than there are CPUs (Pillow's decoders release the GIL)."""
    global _decode_pool
    if _decode_pool is None:
        with _decode_pool_lock:
            if _decode_pool is None:
                from concurrent.futures import ThreadPoolExecutor

                workers = max(1, min(32, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                     else (os.cpu_count() or 1)))
                _decode_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mloop-decode")
    return _decode_pool


async def decode_images(files: list[tuple[str, bytes]], spec: ImageSpec, dtype: str,
                        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> list[Any]:
    """:func:`decode_image` of each (name, bytes), on :func:`decode_pool`'s threads."""
    import asyncio

    loop = asyncio.get_running_loop()
    pool = decode_pool()
    return list(await asyncio.gather(*(loop.run_in_executor(pool, _decode_capped, data, spec, dtype, name, max_pixels)
                                       for name, data in files)))


def _decode_capped(data: bytes, spec: ImageSpec, dtype: str, filename: str, max_pixels: int) -> Any:
    return decode_image(data, spec, dtype, filename, max_pixels=max_pixels)


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


def decode_image(data: bytes, spec: ImageSpec, dtype: str, filename: str = "image",
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Any:
    """One model input from the bytes of an image file. Its declared size is checked against
    ``max_pixels`` before its data is decoded (Pillow then decodes into a buffer of that size:
    however much a compressed stream would inflate to, no more is kept).

    Raises:
        BadInputError: (400) the bytes are not an image Pillow can read; (413) too many pixels.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if max_pixels and img.width * img.height > max_pixels:
                raise BadInputError(f"{filename}: image too large: it declares {img.width}x{img.height} = "
                                    f"{img.width * img.height:,} pixels, more than this server's limit of "
                                    f"{max_pixels:,} per image", hint="send smaller images", status=413,
                                    max_image_pixels=max_pixels)
            img.load()
            converted = img.convert(spec.mode)
    except BadInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"{filename}: image too large: {exc}", hint="send smaller images", status=413) from exc
    except UnidentifiedImageError as exc:
        raise BadInputError(f"{filename}: not an image (Pillow recognises no image format in its {len(data)} bytes)",
                            hint="upload a PNG, JPEG, BMP or other common image file", status=400) from exc
    except (OSError, ValueError) as exc:
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


__all__ = ["to_batch", "ImageSpec", "ImageLimits", "decode_image", "decode_images", "check_images",
           "check_finite", "check_json_depth", "check_instance_count"]
