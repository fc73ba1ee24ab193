"""Train the MNIST CNN (``net.py``) on IDX files; write the model, its config and metrics.

A training job in the ModelArts style: inputs and outputs arrive as command-line
arguments named after the step's ``JobInput``/``JobOutput`` names, hyper-parameters as
``--name=value``, and unknown arguments are ignored.

Usage::

    python train.py --data_url=DIR --train_url=OUT [--epochs=8] [--lr=0.001]
                    [--batch_size=32] [--seed=0] [--num_threads=N]

``--data_url`` holds the four MNIST IDX files (``train-images-idx3-ubyte`` ...; plain or
``.gz``), directly or under ``raw/`` or ``MNIST/raw/`` (torchvision's layout).
``prepare_data.py`` makes such a folder; the real MNIST files work too.

``--train_url`` receives:

* ``model.pt``: TorchScript (``torch.jit.load`` runs it without ``net.py``);
* ``model_state.pt`` + ``net.py``: the state dict and the class that loads it;
* ``config.json``: model type, input shape and dtype, classes, for serving;
* ``metrics.json``: ModelArts metrics: ``accuracy`` and ``loss`` (float, test set),
  ``train_loss`` and ``test_accuracy`` per epoch (line charts), ``confusion_matrix``
  (table, rows = predictions, columns = labels).

The run is deterministic for a given ``--seed`` and number of threads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

# Idle OpenMP threads sleep instead of spinning. On a busy machine (other jobs of the
# same workflow, CI neighbours) spinning threads fight for the cores and an epoch took
# 5-10x longer in our measurements; on an idle one the difference is noise. Must be set
# before torch starts its thread pool; a value from the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from idx import load_mnist  # noqa: E402
from net import Net  # noqa: E402

CLASSES = [str(i) for i in range(10)]

try:  # mloop's writer when mloop is installed; the job does not need it
    from mloop.metrics import MetricLogger
except ImportError:
    MetricLogger = None  # type: ignore[assignment,misc]


class LocalMetricLogger:
    """The few :class:`mloop.metrics.MetricLogger` calls this script makes, same file format."""

    def __init__(self, output_url: str, file_name: str = "metrics.json") -> None:
        self.path = os.path.join(output_url, file_name)
        self.entries: dict[str, dict[str, Any]] = {}

    def log_metric(self, key: str, value: float, title: str | None = None, step: int = 0) -> None:
        entry = self.entries.setdefault(key, {
            "key": key, "title": title or key, "type": "line chart",
            "data": {"x_axis": [{"title": "step", "value": []}, {"title": "timestamp", "value": []}],
                     "y_axis": [{"title": "value", "value": []}]},
        })
        entry["data"]["x_axis"][0]["value"].append(step)
        entry["data"]["x_axis"][1]["value"].append(int(time.time() * 1000))
        entry["data"]["y_axis"][0]["value"].append(float(value))
        self.output_metrics()

    def log_float(self, key: str, value: float, title: str | None = None) -> None:
        self.entries[key] = {"key": key, "title": title or key, "type": "float", "data": {"value": float(value)}}
        self.output_metrics()

    def log_confusion_matrix(self, key: str, matrix: Any, labels: list[str], title: str | None = None,
                             row_title: str = "predictions", col_title: str = "labels") -> None:
        self.entries[key] = {
            "key": key, "title": title or key, "type": "table",
            "data": {"cell_value": [[int(v) for v in row] for row in matrix],
                     "col_labels": {"title": col_title, "value": list(labels)},
                     "row_labels": {"title": row_title, "value": list(labels)}},
        }
        self.output_metrics()

    def output_metrics(self) -> None:
        """Rewrite the file atomically: a temp file beside it, renamed over it."""
        directory = os.path.dirname(self.path) or "."
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".metrics.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(list(self.entries.values()), fh, indent=4)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the MNIST CNN on IDX files.")
    parser.add_argument("--data_url", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--train_url", required=True, help="folder to write the model and metrics into")
    parser.add_argument("--epochs", type=int, default=8, help="passes over the training set")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--gamma", type=float, default=0.8, help="learning-rate decay per epoch (StepLR)")
    parser.add_argument("--batch_size", type=int, default=32, help="training batch size")
    parser.add_argument("--seed", type=int, default=0, help="random seed (weights, shuffling, dropout)")
    parser.add_argument("--num_threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"train: ignoring unknown arguments {unknown}", flush=True)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.lr <= 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    return args


def to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 28, 28) and labels -> float (n, 1, 28, 28) in 0..1 and int64 labels."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def evaluate(model: Net, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and confusion matrix ``cm[prediction][label]`` on (x, y)."""
    model.eval()
    total_loss = 0.0
    predictions = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size])
            total_loss += F.nll_loss(out, y[i:i + batch_size], reduction="sum").item()
            predictions.append(out.argmax(dim=1))
    pred = torch.cat(predictions).numpy()
    true = y.numpy()
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (pred, true), 1)
    return total_loss / len(x), float((pred == true).mean()), matrix


def train(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)

    train_x, train_y, test_x, test_y = load_mnist(args.data_url)
    x, y = to_tensors(train_x, train_y)
    tx, ty = to_tensors(test_x, test_y)
    print(f"data: {len(x)} train, {len(tx)} test images from {args.data_url}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    out = Path(args.train_url)
    out.mkdir(parents=True, exist_ok=True)
    logger = MetricLogger(str(out)) if MetricLogger is not None else LocalMetricLogger(str(out))

    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.gamma)
    shuffle = torch.Generator().manual_seed(args.seed)

    for epoch in range(1, args.epochs + 1):
        epoch_start = time.monotonic()
        model.train()
        order = torch.randperm(len(x), generator=shuffle)
        total = 0.0
        for i in range(0, len(x), args.batch_size):
            batch = order[i:i + args.batch_size]
            optimizer.zero_grad()
            loss = F.nll_loss(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        scheduler.step()
        train_loss = total / len(x)
        test_loss, accuracy, _ = evaluate(model, tx, ty)
        logger.log_metric("train_loss", train_loss, title="training loss per epoch", step=epoch)
        logger.log_metric("test_accuracy", accuracy, title="test accuracy per epoch", step=epoch)
        print(f"epoch {epoch}/{args.epochs}  train_loss {train_loss:.4f}  test_loss {test_loss:.4f}  "
              f"accuracy {accuracy:.4f}  ({time.monotonic() - epoch_start:.1f}s)", flush=True)

    test_loss, accuracy, matrix = evaluate(model, tx, ty)
    logger.log_float("accuracy", accuracy, title="test accuracy")
    logger.log_float("loss", test_loss, title="test loss")
    logger.log_confusion_matrix("confusion_matrix", matrix, labels=CLASSES, title="confusion matrix (test set)")
    save_model(model, out, accuracy=accuracy, loss=test_loss, args=args, test_size=len(tx))
    elapsed = time.monotonic() - started
    print(f"done: accuracy {accuracy:.4f}, loss {test_loss:.4f} on {len(tx)} test images in {elapsed:.1f}s; "
          f"model in {out}", flush=True)
    return {"accuracy": accuracy, "loss": test_loss, "seconds": elapsed}


def save_model(model: Net, out: Path, *, accuracy: float, loss: float, args: argparse.Namespace,
               test_size: int) -> None:
    """Write model.pt (TorchScript), model_state.pt, net.py and config.json into ``out``."""
    model.eval()
    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated; it is still the one file format that
        # serving can load without the Python class, which is what we want here.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated")
        torch.jit.script(model).save(str(out / "model.pt"))
    torch.save(model.state_dict(), out / "model_state.pt")
    shutil.copyfile(HERE / "net.py", out / "net.py")
    config = {
        "model_type": "PyTorch",
        "model_algorithm": "image_classification",
        "model_file": "model.pt",
        "state_dict_file": "model_state.pt",
        "model_class": "net:Net",
        "input_shape": [1, 1, 28, 28],
        "input_dtype": "float32",
        "input_description": "grayscale 28x28 images, pixel values / 255 (0..1); the model normalizes itself",
        # How the inference server turns an uploaded image into an input (mloop.serving.inputs).
        "image": {"mode": "L", "size": [28, 28], "scale": 1 / 255, "layout": "CHW"},
        "output_description": "log-probabilities over classes; argmax is the prediction",
        "classes": CLASSES,
        "metrics": {"accuracy": accuracy, "loss": loss, "test_size": test_size},
        "training": {"epochs": args.epochs, "lr": args.lr, "gamma": args.gamma,
                     "batch_size": args.batch_size, "seed": args.seed, "torch": torch.__version__},
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except FileNotFoundError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
