"""Decompression bombs in the dataset importer (issue 9, item 4).

An image is refused from the size its header declares (the ``max_image_pixels`` setting) before
any of its data is inflated, and PNG data is inflated step by step with a cap, so a stream that
inflates to far more than its header says costs no memory. Bombs are generated here: PNG chunks
written with struct + zlib.crc32 around a small zlib stream of zeros.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image

from mloop.datasets.formats import scan, verify_image, verify_image_bytes
from mloop.datasets.formats._common import DEFAULT_MAX_IMAGE_PIXELS, image_pixel_limit


def chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(ctype)))


def png(width: int, height: int, inflated: int | None = None, *, color: int = 0, interlace: int = 0) -> bytes:
    """A grayscale (``color`` 0) 8-bit PNG declaring ``width`` x ``height`` whose image data is
    ``inflated`` zero bytes (default: exactly what the header announces, a valid image)."""
    if inflated is None:
        inflated = height * (1 + width * {0: 1, 2: 3, 6: 4}[color])
    comp = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = []
    left = inflated
    while left:
        n = min(left, len(block))
        parts.append(comp.compress(block[:n]))
        left -= n
    parts.append(comp.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, interlace))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def bmp_declaring(width: int, height: int) -> bytes:
    """A real BMP whose header is patched to declare ``width`` x ``height`` (Pillow's reader)."""
    out = io.BytesIO()
    Image.new("L", (4, 4)).save(out, format="BMP")
    data = bytearray(out.getvalue())
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


# -- the class: images declaring too many pixels, in each way the importer reads them ------------------
BOMBS = {
    "png-60000x60000": lambda: png(60000, 60000, inflated=4 << 20),
    "png-wide": lambda: png(10_000_001, 11, inflated=1 << 20),
    "png-rgba-interlaced": lambda: png(20000, 20000, inflated=1 << 20, color=6, interlace=1),
    "bmp-120-megapixels": lambda: bmp_declaring(12000, 10000),  # our limit, below Pillow's own
    "bmp-3.6-gigapixels": lambda: bmp_declaring(60000, 60000),  # Pillow's DecompressionBombError
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(name: str, tmp_path: Path) -> None:
    data = BOMBS[name]()
    path = tmp_path / "bomb.img"
    path.write_bytes(data)
    for reason in (verify_image_bytes(data), verify_image(path)):
        assert reason is not None and reason.startswith("image too large"), reason
        if name != "bmp-3.6-gigapixels":  # Pillow's own error names its limit
            assert "max_image_pixels" in reason and f"{DEFAULT_MAX_IMAGE_PIXELS:,}" in reason, reason


def test_the_pixel_limit_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.config import Settings

    ok = png(200, 100)
    assert verify_image_bytes(ok) is None
    with image_pixel_limit(19_999):
        reason = verify_image_bytes(ok)
    assert reason is not None and "200x100 = 20,000 pixels" in reason and "19,999" in reason
    assert verify_image_bytes(ok) is None  # the limit is back to the default after the block
    assert Settings().max_image_pixels == DEFAULT_MAX_IMAGE_PIXELS
    monkeypatch.setenv("MLOOP_MAX_IMAGE_PIXELS", "5000")
    assert Settings().max_image_pixels == 5000


def test_png_data_is_inflated_with_a_cap(tmp_path: Path) -> None:
    """10x10 pixels declared, 64 MB of zeros in the stream: refused without inflating it all."""
    data = png(10, 10, inflated=64 << 20)
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        reason = verify_image_bytes(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason is not None and "more than the 110 bytes its header says" in reason, reason
    assert peak < 4 << 20, f"verifying a 64 MB stream used {peak} bytes"


@pytest.mark.parametrize("inflated, expected", [(110, None), (109, "holds 109 bytes"), (200, "more than")])
def test_valid_pngs_pass_and_short_or_long_data_fails(inflated: int, expected: str | None) -> None:
    reason = verify_image_bytes(png(10, 10, inflated=inflated))
    assert (reason is None) if expected is None else (reason is not None and expected in reason), reason


def test_pillow_written_pngs_pass(tmp_path: Path) -> None:
    for mode, size in (("L", (33, 17)), ("RGB", (5, 300)), ("RGBA", (64, 64)), ("1", (9, 9)), ("P", (7, 3))):
        out = io.BytesIO()
        Image.new(mode, size).save(out, format="PNG")
        assert verify_image_bytes(out.getvalue()) is None, mode


def test_the_import_scan_leaves_a_bomb_out_with_its_reason(tmp_path: Path) -> None:
    """The importer's path (``mloop dataset import`` scans through this): the bomb is a problem
    with a clear reason, left out with ``clean``, and the good image stays."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "ok.png").write_bytes(png(8, 8))
    (src / "a" / "bomb.png").write_bytes(BOMBS["png-60000x60000"]())
    result = scan(src, "folder", clean=True)
    assert [s.id for s in result.samples] == ["a/ok.png"]
    (problem,) = result.problems
    assert problem.path == "a/bomb.png" and problem.reason.startswith("image too large"), problem


def test_dataset_create_refuses_a_bomb_by_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end in process: ``mloop dataset create`` with ``MLOOP_MAX_IMAGE_PIXELS`` set."""
    from typer.testing import CliRunner

    from mloop.cli import app
    from mloop.errors import MloopError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    monkeypatch.setenv("MLOOP_MAX_IMAGE_PIXELS", "1000")
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "a" / "small.png").write_bytes(png(8, 8))
    (tmp_path / "src" / "a" / "big.png").write_bytes(png(40, 40))  # 1600 pixels, a valid image
    result = CliRunner().invoke(app, ["dataset", "create", "x", "--from", "src"])
    assert isinstance(result.exception, MloopError), result.output
    text = str(result.exception)
    assert "a/big.png" in text and "image too large" in text and "1,000" in text, text
    cleaned = CliRunner().invoke(app, ["dataset", "create", "x", "--from", "src", "--clean"])
    assert cleaned.exit_code == 0, cleaned.output
    assert "created x:v1: 1 samples" in cleaned.output and "a/big.png" in cleaned.output
