"""Train a logistic-regression classifier on two Gaussian blobs (numpy only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1.0, 1.0, (n, 2)), rng.normal(1.5, 1.0, (n, 2))])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    return x, y


def train(epochs: int = 200, lr: float = 0.1, seed: int = 0) -> dict:
    x, y = make_data(500, seed)
    w, b = np.zeros(2), 0.0
    for _ in range(epochs):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        w -= lr * x.T @ (p - y) / len(y)
        b -= lr * float(np.mean(p - y))
    accuracy = float(np.mean(((x @ w + b) > 0) == y))
    return {"weights": w.tolist(), "bias": b, "accuracy": accuracy, "epochs": epochs}


def save(result: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(result, indent=1))
    (folder / "metrics.json").write_text(json.dumps(
        [{"key": "accuracy", "title": "accuracy", "type": "float", "data": {"value": result["accuracy"]}}]))
