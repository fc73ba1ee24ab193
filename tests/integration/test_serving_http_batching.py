"""Dynamic batching over real HTTP: concurrent requests share forward passes and each caller
gets its own answer; with batching off every request is its own forward pass."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np

from serving_helpers import metric_value, serve_folder, torchscript_model


async def _fire(url: str, xs: np.ndarray) -> list[dict]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(xs)), timeout=30) as client:
        responses = await asyncio.gather(*(client.post(f"{url}/predict", json={"inputs": x.tolist()}) for x in xs))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200][:3]
    return [r.json() for r in responses]


def test_64_concurrent_callers_each_get_their_own_answer(tmp_path: Path) -> None:
    import torch

    net = torchscript_model(tmp_path / "ts")
    xs = np.random.default_rng(11).normal(size=(64, 1, 4)).astype(np.float32)  # one instance per request
    with torch.no_grad():
        expected = net(torch.from_numpy(xs[:, 0, :])).numpy()  # type: ignore[operator]
    with serve_folder(tmp_path / "ts", max_batch_size=16, max_wait_ms=20) as url:
        answers = asyncio.run(_fire(url, xs))
        metrics = httpx.get(f"{url}/metrics").text
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(answer["outputs"][0], expected[i], rtol=1e-5, atol=1e-6)
    passes = metric_value(metrics, "mloop_batch_size_count")
    instances = metric_value(metrics, "mloop_batch_size_sum")
    assert instances == 64
    assert passes < 64, "no two requests shared a forward pass"
    assert metric_value(metrics, "mloop_batch_size_bucket", le="16.0") == passes  # max_batch_size held
    assert metric_value(metrics, "mloop_requests_total", path="/predict", status="200") == 64


def test_batching_off_runs_one_forward_pass_per_request(tmp_path: Path) -> None:
    torchscript_model(tmp_path / "ts")
    xs = np.random.default_rng(12).normal(size=(32, 2, 4)).astype(np.float32)  # two instances per request
    with serve_folder(tmp_path / "ts", batching=False) as url:
        answers = asyncio.run(_fire(url, xs))
        metrics = httpx.get(f"{url}/metrics").text
    assert all(len(a["outputs"]) == 2 for a in answers)
    assert metric_value(metrics, "mloop_batch_requests_count") == 32
    assert metric_value(metrics, "mloop_batch_requests_bucket", le="1.0") == 32
