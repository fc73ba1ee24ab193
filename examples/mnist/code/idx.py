"""Read and write IDX files, the format MNIST is distributed in.

IDX (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS FOR THE MNIST DATABASE"):

    offset  type             value
    0       2 bytes          0x0000
    2       1 byte           data type: 0x08 unsigned byte, 0x09 signed byte, 0x0B short (2 bytes),
                             0x0C int (4 bytes), 0x0D float (4 bytes), 0x0E double (8 bytes)
    3       1 byte           number of dimensions
    4       4 bytes each     size of each dimension, big-endian unsigned 32-bit
    ...                      the data, row-major (C order), big-endian

So an images file starts with the magic number 0x00000803 (unsigned bytes, 3 dimensions:
count, rows, columns) and a labels file with 0x00000801 (unsigned bytes, 1 dimension).
MNIST ships them as ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, often gzipped (``.gz``); both
forms are read (a gzip file is recognised by its content, not only by its name).

Only numpy is needed; this module is part of the job code, not of mloop.

Example::

    images = read_images("data/train-images-idx3-ubyte")     # uint8, shape (n, 28, 28)
    labels = read_labels("data/train-labels-idx1-ubyte")     # uint8, shape (n,)
    write_images("out/t10k-images-idx3-ubyte.gz", images)    # gzipped because of the name
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# IDX type code -> numpy dtype (big-endian, as the format stores it).
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {(dtype.kind, dtype.itemsize): code for code, dtype in DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"

# The names of the four MNIST files (torchvision's raw folder uses the same).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class IdxError(ValueError):
    """An IDX file that is not what it should be; the message names the file."""


def _read_bytes(path: PathLike) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IdxError(f"{os.fspath(path)}: broken gzip data ({exc})") from exc
    return raw


def parse_idx(raw: bytes, source: str = "<idx>") -> np.ndarray:
    """Decode the bytes of an IDX file into an array of its shape and type.

    Raises:
        IdxError: a bad magic number, a short header, or a data size that does not match
            the dimensions.
    """
    if len(raw) < 4:
        raise IdxError(f"{source}: too short for an IDX file ({len(raw)} bytes, the magic number alone takes 4)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    magic = int.from_bytes(raw[:4], "big")
    if zero != 0 or code not in DTYPES:
        raise IdxError(
            f"{source}: not an IDX file (magic number 0x{magic:08X}; IDX files start with 0x0000, "
            f"then a type code 0x08/0x09/0x0B/0x0C/0x0D/0x0E, then the number of dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{source}: truncated header: {ndim} dimensions need {header} bytes, the file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        shape = "x".join(str(d) for d in dims) or "a scalar"
        what = "truncated" if got < expected else "has extra bytes"
        raise IdxError(f"{source}: {what}: the header says {shape} ({expected} bytes of data), found {got} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: PathLike) -> np.ndarray:
    """Read any IDX file (plain or gzipped)."""
    return parse_idx(_read_bytes(path), os.fspath(path))


def _read_expecting(path: PathLike, magic: int, what: str) -> np.ndarray:
    raw = _read_bytes(path)
    source = os.fspath(path)
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found is not None and found != magic:
        known = {IMAGES_MAGIC: "an images file", LABELS_MAGIC: "a labels file"}.get(found, "not an MNIST file")
        raise IdxError(
            f"{source}: magic number 0x{found:08X} ({known}), but {what} should start with 0x{magic:08X}"
        )
    return parse_idx(raw, source)


def read_images(path: PathLike) -> np.ndarray:
    """Read an ``idx3-ubyte`` images file: uint8 array of shape (count, rows, columns).

    Raises:
        IdxError: the file is not an images file, or is truncated.
    """
    return _read_expecting(path, IMAGES_MAGIC, "an images file (idx3-ubyte)")


def read_labels(path: PathLike) -> np.ndarray:
    """Read an ``idx1-ubyte`` labels file: uint8 array of shape (count,).

    Raises:
        IdxError: the file is not a labels file, or is truncated.
    """
    return _read_expecting(path, LABELS_MAGIC, "a labels file (idx1-ubyte)")


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of ``array`` (its dtype must be one IDX can hold)."""
    array = np.asarray(array)
    code = _CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise IdxError(f"IDX cannot store dtype {array.dtype} (use uint8, int8, int16, int32, float32 or float64)")
    if array.ndim > 255 or any(d >= 2**32 for d in array.shape):
        raise IdxError(f"IDX cannot store shape {array.shape}")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzipped when ``path`` ends with ``.gz``."""
    data = encode_idx(array)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    # mtime=0 keeps gzipped output byte-identical from run to run.
    payload = gzip.compress(data, mtime=0) if target.suffix == ".gz" else data
    tmp.write_bytes(payload)
    os.replace(tmp, target)


def write_images(path: PathLike, images: np.ndarray) -> None:
    """Write uint8 images of shape (count, rows, columns) as an ``idx3-ubyte`` file."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxError(f"images must be uint8 of shape (count, rows, columns), got {images.dtype} {images.shape}")
    write_idx(path, images)


def write_labels(path: PathLike, labels: np.ndarray) -> None:
    """Write uint8 labels of shape (count,) as an ``idx1-ubyte`` file."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IdxError(f"labels must be uint8 of shape (count,), got {labels.dtype} {labels.shape}")
    write_idx(path, labels)


def find_mnist_files(folder: PathLike) -> dict[str, Path]:
    """Locate the four MNIST files under ``folder``.

    Looks in ``folder``, ``folder/raw`` and ``folder/MNIST/raw`` (torchvision's layout),
    for each name plain or ``.gz``, also with a ``.`` before ``idx`` as some copies have
    (``train-images.idx3-ubyte``).

    Returns:
        ``{"train_images": path, "train_labels": ..., "test_images": ..., "test_labels": ...}``

    Raises:
        FileNotFoundError: a file is missing; the message lists where it was looked for.
    """
    root = Path(folder)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, name in MNIST_FILES.items():
        names = [name, name.replace("-idx", ".idx")]
        candidates = [d / (n + ext) for d in (root, root / "raw", root / "MNIST" / "raw") for n in names
                      for ext in ("", ".gz")]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            missing.append(name)
        else:
            found[role] = hit
    if missing:
        raise FileNotFoundError(
            f"{root}: no MNIST file {', '.join(missing)} (looked in {root}, {root / 'raw'} and "
            f"{root / 'MNIST' / 'raw'}, plain and .gz); run prepare_data.py --output_url={root} --format=idx "
            "to make them"
        )
    return found


def load_mnist(folder: PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images, train_labels, test_images, test_labels)`` from an MNIST folder.

    Raises:
        FileNotFoundError: see :func:`find_mnist_files`.
        IdxError: a file is malformed, or images and labels counts differ.
    """
    files = find_mnist_files(folder)
    arrays = []
    for split in ("train", "test"):
        images = read_images(files[f"{split}_images"])
        labels = read_labels(files[f"{split}_labels"])
        if len(images) != len(labels):
            raise IdxError(
                f"{files[f'{split}_images']} holds {len(images)} images but "
                f"{files[f'{split}_labels']} holds {len(labels)} labels"
            )
        arrays += [images, labels]
    return arrays[0], arrays[1], arrays[2], arrays[3]
