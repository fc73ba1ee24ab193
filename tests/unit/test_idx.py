"""examples/mnist/code/idx.py: reading and writing MNIST's IDX files.

The files in "written by hand" tests are built here byte by byte from the format's
description (magic 0x0000, type code, number of dimensions, big-endian uint32 sizes,
then the data), never by idx.py, so a reader that only understands its own writer fails.
"""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

CODE = Path(__file__).resolve().parents[2] / "examples" / "mnist" / "code"


def _load_idx() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mnist_idx", CODE / "idx.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


idx = _load_idx()


def images_bytes(images: list[list[list[int]]]) -> bytes:
    """An idx3-ubyte file per the spec: 0x00000803, count, rows, columns, then the pixels."""
    n, rows, cols = len(images), len(images[0]), len(images[0][0])
    header = bytes([0x00, 0x00, 0x08, 0x03]) + n.to_bytes(4, "big") + rows.to_bytes(4, "big") + cols.to_bytes(4, "big")
    return header + bytes(p for image in images for row in image for p in row)


def labels_bytes(labels: list[int]) -> bytes:
    """An idx1-ubyte file per the spec: 0x00000801, count, then one byte per label."""
    return bytes([0x00, 0x00, 0x08, 0x01]) + len(labels).to_bytes(4, "big") + bytes(labels)


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


class TestRoundTrip:
    @pytest.mark.parametrize("suffix", ["", ".gz"])
    def test_images(self, tmp_path: Path, images: np.ndarray, suffix: str) -> None:
        path = tmp_path / f"train-images-idx3-ubyte{suffix}"
        idx.write_images(path, images)
        back = idx.read_images(path)
        assert back.dtype == np.uint8 and back.shape == (5, 28, 28)
        np.testing.assert_array_equal(back, images)

    @pytest.mark.parametrize("suffix", ["", ".gz"])
    def test_labels(self, tmp_path: Path, suffix: str) -> None:
        labels = np.array([7, 2, 1, 0, 4, 9], dtype=np.uint8)
        path = tmp_path / f"t10k-labels-idx1-ubyte{suffix}"
        idx.write_labels(path, labels)
        np.testing.assert_array_equal(idx.read_labels(path), labels)

    def test_gz_name_writes_real_gzip(self, tmp_path: Path, images: np.ndarray) -> None:
        path = tmp_path / "x-idx3-ubyte.gz"
        idx.write_images(path, images)
        raw = gzip.decompress(path.read_bytes())
        assert raw[:4] == b"\x00\x00\x08\x03"
        assert len(raw) == 16 + images.size

    def test_plain_writer_output_is_byte_exact(self, tmp_path: Path) -> None:
        pixels = [[[0, 1, 2], [3, 4, 5]], [[250, 251, 252], [253, 254, 255]]]
        path = tmp_path / "images"
        idx.write_images(path, np.array(pixels, dtype=np.uint8))
        assert path.read_bytes() == images_bytes(pixels)

    @pytest.mark.parametrize("dtype,code", [("int8", 0x09), ("int16", 0x0B), ("int32", 0x0C),
                                            ("float32", 0x0D), ("float64", 0x0E)])
    def test_other_types_are_big_endian(self, tmp_path: Path, dtype: str, code: int) -> None:
        array = np.array([[1, -2], [3, 300]], dtype=dtype) if dtype != "int8" else np.array([[1, -2]], dtype=dtype)
        raw = idx.encode_idx(array)
        assert raw[:4] == bytes([0, 0, code, 2])
        assert raw[8 + 4:] == array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
        path = tmp_path / "a.idx"
        idx.write_idx(path, array)
        np.testing.assert_array_equal(idx.read_idx(path), array)

    def test_refuses_what_mnist_files_cannot_hold(self, tmp_path: Path) -> None:
        with pytest.raises(idx.IdxError, match="uint8"):
            idx.write_images(tmp_path / "i", np.zeros((2, 28, 28), dtype=np.float32))
        with pytest.raises(idx.IdxError, match="shape"):
            idx.write_labels(tmp_path / "l", np.zeros((2, 1), dtype=np.uint8))
        with pytest.raises(idx.IdxError, match="int64"):
            idx.encode_idx(np.zeros(3, dtype=np.int64))


class TestReadsFilesWrittenByHand:
    def test_images_file(self, tmp_path: Path) -> None:
        pixels = [[[0, 255, 7], [8, 9, 10]], [[1, 2, 3], [4, 5, 6]]]
        path = tmp_path / "train-images-idx3-ubyte"
        path.write_bytes(images_bytes(pixels))
        back = idx.read_images(path)
        assert back.shape == (2, 2, 3)
        assert back.tolist() == pixels

    def test_labels_file(self, tmp_path: Path) -> None:
        path = tmp_path / "train-labels-idx1-ubyte"
        path.write_bytes(labels_bytes([5, 0, 4, 1, 9]))
        assert idx.read_labels(path).tolist() == [5, 0, 4, 1, 9]

    def test_mnist_sized_header(self, tmp_path: Path) -> None:
        # The header of MNIST's train-images file: 00 00 08 03, 60000, 28, 28.
        header = bytes.fromhex("00000803 0000ea60 0000001c 0000001c")
        assert struct.unpack(">IIII", header) == (0x803, 60000, 28, 28)
        path = tmp_path / "train-images-idx3-ubyte"
        path.write_bytes(header[:4] + (2).to_bytes(4, "big") + header[8:] + bytes(range(256)) * 6 + bytes(32))
        assert idx.read_images(path).shape == (2, 28, 28)

    def test_gzipped_file_whatever_its_name(self, tmp_path: Path) -> None:
        data = labels_bytes([3, 1, 4])
        named = tmp_path / "t10k-labels-idx1-ubyte.gz"
        named.write_bytes(gzip.compress(data))
        unnamed = tmp_path / "t10k-labels-idx1-ubyte"
        unnamed.write_bytes(gzip.compress(data))
        assert idx.read_labels(named).tolist() == [3, 1, 4]
        assert idx.read_labels(unnamed).tolist() == [3, 1, 4]

    def test_big_endian_float_file(self, tmp_path: Path) -> None:
        path = tmp_path / "floats.idx"
        path.write_bytes(bytes([0, 0, 0x0D, 1]) + (2).to_bytes(4, "big") + struct.pack(">ff", 1.5, -2.25))
        assert idx.read_idx(path).tolist() == [1.5, -2.25]


class TestClearErrors:
    def test_labels_file_read_as_images(self, tmp_path: Path) -> None:
        path = tmp_path / "train-labels-idx1-ubyte"
        path.write_bytes(labels_bytes([1, 2]))
        with pytest.raises(idx.IdxError) as info:
            idx.read_images(path)
        message = str(info.value)
        assert str(path) in message and "0x00000801" in message and "labels file" in message
        assert "0x00000803" in message

    def test_images_file_read_as_labels(self, tmp_path: Path) -> None:
        path = tmp_path / "imgs"
        path.write_bytes(images_bytes([[[1]]]))
        with pytest.raises(idx.IdxError, match="0x00000803 \\(an images file\\)"):
            idx.read_labels(path)

    def test_not_an_idx_file(self, tmp_path: Path) -> None:
        path = tmp_path / "readme.txt"
        path.write_bytes(b"hello, world")
        with pytest.raises(idx.IdxError, match="magic number 0x68656C6C"):
            idx.read_images(path)
        with pytest.raises(idx.IdxError, match="not an IDX file"):
            idx.read_idx(path)

    def test_truncated_data(self, tmp_path: Path) -> None:
        path = tmp_path / "imgs"
        path.write_bytes(images_bytes([[[1, 2, 3], [4, 5, 6]]] * 4)[:-4])
        with pytest.raises(idx.IdxError) as info:
            idx.read_images(path)
        message = str(info.value)
        assert str(path) in message and "truncated" in message
        assert "4x2x3 (24 bytes of data), found 20 bytes" in message

    def test_truncated_header(self, tmp_path: Path) -> None:
        path = tmp_path / "imgs"
        path.write_bytes(images_bytes([[[1]]])[:10])
        with pytest.raises(idx.IdxError, match="truncated header: 3 dimensions need 16 bytes, the file has 10"):
            idx.read_images(path)

    def test_shorter_than_the_magic_number(self, tmp_path: Path) -> None:
        path = tmp_path / "empty"
        path.write_bytes(b"\x00\x00")
        with pytest.raises(idx.IdxError, match="too short"):
            idx.read_labels(path)

    def test_extra_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "labels"
        path.write_bytes(labels_bytes([1, 2]) + b"\x00")
        with pytest.raises(idx.IdxError, match="extra bytes"):
            idx.read_labels(path)

    def test_broken_gzip(self, tmp_path: Path) -> None:
        path = tmp_path / "labels.gz"
        path.write_bytes(gzip.compress(labels_bytes([1, 2, 3]))[:-6])
        with pytest.raises(idx.IdxError, match="gzip"):
            idx.read_labels(path)


class TestMnistFolder:
    def write_set(self, folder: Path, suffix: str = "", counts: tuple[int, int] = (3, 2)) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for prefix, n in (("train", counts[0]), ("t10k", counts[1])):
            (folder / f"{prefix}-images-idx3-ubyte{suffix}").write_bytes(images_bytes([[[0] * 28] * 28] * n))
            (folder / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(labels_bytes(list(range(n))))

    @pytest.mark.parametrize("layout", ["", "raw", "MNIST/raw"])
    def test_finds_files_in_torchvision_layouts(self, tmp_path: Path, layout: str) -> None:
        self.write_set(tmp_path / layout)
        train_x, train_y, test_x, test_y = idx.load_mnist(tmp_path)
        assert train_x.shape == (3, 28, 28) and test_y.tolist() == [0, 1]

    def test_gzipped_set(self, tmp_path: Path) -> None:
        self.write_set(tmp_path / "raw", ".gz")
        assert idx.find_mnist_files(tmp_path)["test_labels"].name == "t10k-labels-idx1-ubyte.gz"

    def test_missing_files_are_listed(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError) as info:
            idx.find_mnist_files(tmp_path)
        message = str(info.value)
        assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
        assert "MNIST/raw" in message and "prepare_data.py" in message

    def test_image_and_label_counts_must_agree(self, tmp_path: Path) -> None:
        self.write_set(tmp_path)
        (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels_bytes([1, 2, 3]))
        with pytest.raises(idx.IdxError, match="2 images but .* 3 labels"):
            idx.load_mnist(tmp_path)
