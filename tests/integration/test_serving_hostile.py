"""Hostile requests to the inference server, by class (issue 9, items 4, 5 and 7).

Against real uvicorn on loopback: deep JSON nesting, non-finite numbers in every accepted input
shape, decompression-bomb images, too many images, a body that trickles in, and one request
decoding many large images while ``/health`` must keep answering. Every hostile request gets a
4xx JSON answer with a message, and the server stays healthy after.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from PIL import Image

from serving_helpers import serve_app, sklearn_model

SIDE = 8  # the image model takes (1, 8, 8) instances (a batch dimension first)


# -- models and servers ------------------------------------------------------------------------------
def image_model(folder: Path) -> Path:
    """A TorchScript classifier of (1, 8, 8) grayscale images that, like many, takes finite inputs only."""
    import torch
    from torch import nn

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 3), nn.LogSoftmax(dim=1)).eval()
    torch.jit.script(net).save(str(folder / "model.pt"))
    (folder / "config.json").write_text(json.dumps({"model_type": "PyTorch", "input_shape": [1, 1, SIDE, SIDE],
                                                    "classes": ["a", "b", "c"], "allow_nan": False}))
    return folder


MAX_IMAGES = 20
MAX_REQUEST_PIXELS = 700_000_000
BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def images_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from mloop.serving.app import create_app

    folder = image_model(tmp_path_factory.mktemp("img"))
    app = create_app(folder, model_name="img", model_version="1", max_images=MAX_IMAGES,
                     max_request_pixels=MAX_REQUEST_PIXELS, body_timeout=BODY_TIMEOUT)
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="module")
def sklearn_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from mloop.serving.app import create_app

    folder = tmp_path_factory.mktemp("skl")
    sklearn_model(folder)  # LogisticRegression: raises on NaN itself (a 500 before)
    with serve_app(create_app(folder, model_name="skl", model_version="1")) as url:
        yield url


def assert_client_error(response: httpx.Response, *statuses: int, says: str = "") -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert says in body["error"], body
    return body


# -- deep nesting ------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [100, 10_000, 1_000_000])
@pytest.mark.parametrize("kind", ["arrays", "objects"])
def test_deeply_nested_json_is_a_client_error(images_url: str, depth: int, kind: str) -> None:
    nested = ("[" * depth + "0" + "]" * depth) if kind == "arrays" else ('{"a":' * depth + "0" + "}" * depth)
    for body in (nested, '{"inputs": ' + nested + "}", '{"inputs": [' + nested + ', NaN]}'):
        answer = httpx.post(f"{images_url}/predict", content=body.encode(),
                            headers={"content-type": "application/json"}, timeout=30)
        assert_client_error(answer, 400, 422)
    assert httpx.get(f"{images_url}/health").status_code == 200


# -- non-finite numbers, in every shape the server accepts ------------------------------------------
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


def _json_array(shape: tuple[int, ...], bad: str, at: int) -> str:
    """A JSON array of ``shape`` of 0.5, its ``at``-th number (flat order) replaced by ``bad``."""
    count = [0]

    def build(dims: tuple[int, ...]) -> str:
        if not dims:
            count[0] += 1
            return bad if count[0] - 1 == at else "0.5"
        return "[" + ",".join(build(dims[1:]) for _ in range(dims[0])) + "]"

    return build(shape)


IMAGE_SHAPES = [(SIDE, SIDE), (1, SIDE, SIDE), (2, SIDE, SIDE), (2, 1, SIDE, SIDE)]
TABLE_SHAPES = [(4,), (3, 4)]


@pytest.mark.parametrize("literal", NON_FINITE)
def test_non_finite_numbers_are_refused_before_the_model(images_url: str, sklearn_url: str, literal: str) -> None:
    for url, shapes in ((images_url, IMAGE_SHAPES), (sklearn_url, TABLE_SHAPES)):
        for shape in shapes:
            size = 1
            for d in shape:
                size *= d
            for key, at in (("inputs", size - 1), ("instances", size // 2)):
                body = '{"%s": %s}' % (key, _json_array(shape, literal, at))
                answer = httpx.post(f"{url}/predict", content=body.encode(),
                                    headers={"content-type": "application/json"}, timeout=10)
                assert_client_error(answer, 422, says="non-finite")
        # the same shapes with finite numbers are answered
        assert httpx.post(f"{url}/predict", content=('{"inputs": %s}' % _json_array(shapes[-1], "0.25", 0)).encode(),
                          headers={"content-type": "application/json"}).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200


# -- decompression bombs -----------------------------------------------------------------------------
def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(ctype)))


def bomb_png(width: int, height: int, zeros: int = 4 << 20) -> bytes:
    """A PNG declaring ``width`` x ``height`` (8-bit grayscale) over a small zlib stream of zeros."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(bytes(zeros), 9)) + _chunk(b"IEND", b""))


def bmp_declaring(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (4, 4)).save(out, format="BMP")
    data = bytearray(out.getvalue())
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def png_of(width: int, height: int, value: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), value).save(out, format="PNG")
    return out.getvalue()


BOMBS = {
    "png-60000x60000": lambda: bomb_png(60000, 60000),
    "png-1x200000000": lambda: bomb_png(200_000_000, 1),
    "bmp-12000x10000": lambda: bmp_declaring(12000, 10000),  # over our limit, under Pillow's
    "bmp-60000x60000": lambda: bmp_declaring(60000, 60000),  # Pillow's own DecompressionBombError
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bomb_images_are_refused_from_their_header(images_url: str, name: str) -> None:
    data = BOMBS[name]()
    raw = httpx.post(f"{images_url}/predict", content=data, headers={"content-type": "image/png"}, timeout=30)
    assert_client_error(raw, 413, says="image too large")
    # among good images in one multipart upload
    files = [("file", ("ok1.png", png_of(SIDE, SIDE))), ("file", (f"{name}.img", data)),
             ("file", ("ok2.png", png_of(SIDE, SIDE)))]
    multi = httpx.post(f"{images_url}/predict", files=files, timeout=30)
    body = assert_client_error(multi, 413, says="image too large")
    if name != "bmp-60000x60000":
        assert f"{name}.img" in body["error"] and "100,000,000" in body["error"], body
    assert httpx.get(f"{images_url}/health").status_code == 200


def test_too_many_images_or_pixels_in_one_request(images_url: str) -> None:
    small = png_of(SIDE, SIDE)
    over = httpx.post(f"{images_url}/predict", files=[("file", (f"{i}.png", small)) for i in range(MAX_IMAGES + 1)])
    assert_client_error(over, 413, says=f"at most {MAX_IMAGES}")
    at_limit = httpx.post(f"{images_url}/predict", files=[("file", (f"{i}.png", small)) for i in range(MAX_IMAGES)])
    assert at_limit.status_code == 200 and len(at_limit.json()["predictions"]) == MAX_IMAGES
    # each under the per-image limit (100 M by default), together over the request's
    big = png_of(10_000, 9_000)  # 90 M pixels, a few hundred KB
    many = httpx.post(f"{images_url}/predict", files=[("file", (f"{i}.png", big)) for i in range(8)], timeout=30)
    assert_client_error(many, 413, says="pixels together")


# -- decoding off the event loop ---------------------------------------------------------------------
def test_health_answers_while_a_request_decodes_many_large_images(images_url: str) -> None:
    large = png_of(6000, 5000, value=7)  # 30 M pixels each, compressed to ~30 KB
    files = [("file", (f"{i}.png", large)) for i in range(MAX_IMAGES)]
    done: dict[str, Any] = {}

    def decode_request() -> None:
        started = time.perf_counter()
        done["response"] = httpx.post(f"{images_url}/predict", files=files, timeout=120)
        done["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=decode_request)
    thread.start()
    time.sleep(0.1)  # the upload (~300 KB) is in; decoding has begun
    health: list[float] = []
    with httpx.Client(timeout=120) as client:
        while thread.is_alive():
            started = time.perf_counter()
            assert client.get(f"{images_url}/health").status_code == 200
            health.append(time.perf_counter() - started)
            time.sleep(0.02)
    thread.join()
    assert done["response"].status_code == 200, done["response"].text[:300]
    assert len(done["response"].json()["predictions"]) == MAX_IMAGES
    assert health, "the decode request ended before /health was asked"
    worst, typical = max(health), sorted(health)[len(health) // 2]
    what = (f"/health took {typical:.3f} s (median), up to {worst:.3f} s, while a request decoded {MAX_IMAGES} "
            f"images in {done['seconds']:.3f} s ({len(health)} calls)")
    # Before decoding moved off the event loop, the first call waited for the whole decode.
    assert typical < 0.1 * done["seconds"] and worst < 0.5 * done["seconds"], what


# -- a body that trickles in -------------------------------------------------------------------------
def test_a_trickling_body_is_answered_408(images_url: str) -> None:
    host, port = images_url.removeprefix("http://").split(":")
    body = b'{"inputs": ' + b"0" * 200 + b"}"
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:5])
        sock.settimeout(0.1)
        answer = b""
        for i in range(5, len(body)):  # one byte every 0.1 s: 20 s in all, unless the server stops it
            try:
                sock.sendall(body[i:i + 1])
            except OSError:
                break
            try:
                got = sock.recv(65536)
            except socket.timeout:
                continue
            if not got:
                break
            answer += got
            if b"\r\n\r\n" in answer:
                break
        sock.settimeout(5)
        try:
            while True:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
        except OSError:
            pass
    elapsed = time.perf_counter() - started
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert "did not arrive within" in json.loads(payload)["error"]
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 4, elapsed
    assert httpx.get(f"{images_url}/health").status_code == 200


def test_the_servers_are_healthy_after_all_of_it(images_url: str, sklearn_url: str) -> None:
    ok = httpx.post(f"{images_url}/predict", files=[("file", ("ok.png", png_of(SIDE, SIDE)))])
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
    assert httpx.post(f"{sklearn_url}/predict", json={"inputs": [[0.1, 0.2, 0.3, 0.4]]}).status_code == 200
    for url in (images_url, sklearn_url):
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
