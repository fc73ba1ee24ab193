"""Train the MNIST CNN (``net.py``) on a dataset release or IDX files; write the model, config and metrics.

A training job in the ModelArts style: inputs and outputs arrive as command-line
arguments named after the step's ``JobInput``/``JobOutput`` names, hyper-parameters as
``--name=value``, and unknown arguments are ignored.

Usage::

    python train.py --data_url=DIR --train_url=OUT [--epochs=8] [--lr=0.001]
                    [--batch_size=32] [--seed=0] [--num_threads=N]

``--data_url`` is one of two layouts:

* a released dataset, as mloop lays it out for a job (any ImageFolder-style folder works)::

      train/<label>/<file>.png    the training images
      eval/<label>/<file>.png     the held-out images: the test set
      manifest.json               (optional) dataset, version, classes, split of every sample

  Images are read with Pillow, converted to greyscale and resized to 28x28 if they are
  not (bilinear, as the inference server does). The classes are the manifest's, else the
  label folders sorted by name. A folder with no ``eval/`` is refused: the test accuracy
  must come from images the model never trained on (release the dataset with a split).
* the four MNIST IDX files (``train-images-idx3-ubyte`` ...; plain or ``.gz``), directly or
  under ``raw/`` or ``MNIST/raw/`` (torchvision's layout); ``t10k-*`` is the test set.
  ``prepare_data.py --format=idx`` makes such a folder; the real MNIST files work too.

``--train_url`` receives:

* ``model.pt``: TorchScript (``torch.jit.load`` runs it without ``net.py``);
* ``model_state.pt`` + ``net.py``: the state dict and the class that loads it;
* ``config.json``: model type, input shape and dtype, classes, for serving (and, from a
  release's ``manifest.json``, the dataset version it was trained on);
* ``metrics.json``: ModelArts metrics: ``accuracy`` and ``loss`` (float, test set),
  ``train_loss`` and ``test_accuracy`` per epoch (line charts), ``confusion_matrix``
  (table, rows = predictions, columns = labels).

The run is deterministic for a given ``--seed`` and number of threads.

Distributed (DDP): with ``WORLD_SIZE`` > 1 (and ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, the
torchrun contract that mloop's Ray executor gives every rank of a ``node_count=N`` job) each
rank joins a ``gloo`` process group, trains on its 1/N share of every epoch's shuffled order
(the same order on every rank; a few images are left out so that all shares have the same
number of batches) and DDP averages the gradients; only rank 0 tests the model and writes the
model and metrics. Without ``WORLD_SIZE`` (or with 1) the run is exactly the single-process one.
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
from idx import MNIST_FILES, load_mnist  # noqa: E402
from net import Net  # noqa: E402

CLASSES = [str(i) for i in range(10)]  # MNIST's, for IDX data
SIZE = (28, 28)  # the network's input, (width, height) as Pillow counts
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

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
    parser = argparse.ArgumentParser(description="Train the MNIST CNN on a dataset release or MNIST IDX files.")
    parser.add_argument("--data_url", required=True,
                        help="a released dataset (train/<label>/*.png, eval/<label>/*.png) or MNIST IDX files")
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


class DataError(ValueError):
    """``--data_url`` holds no data this script can train on; the message says what is wrong."""


class Data:
    """Training and test images (uint8, (n, 28, 28)), their class indices, and where they came from."""

    def __init__(self, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 classes: list[str], source: dict[str, Any]) -> None:
        self.train_x, self.train_y, self.test_x, self.test_y = train_x, train_y, test_x, test_y
        self.classes, self.source = classes, source


def is_image_folder(folder: Path) -> bool:
    """Whether ``folder`` is in the release layout (``train/<label>/...``) rather than IDX files."""
    return (folder / "train").is_dir() and not any((folder / name).exists() or (folder / f"{name}.gz").exists()
                                                   for name in MNIST_FILES.values())


def read_image(path: Path) -> np.ndarray:
    """One image file as a uint8 (28, 28) greyscale array (resized bilinearly if it is another size)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            grey = img.convert("L")
    except OSError as exc:  # UnidentifiedImageError is an OSError
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    if grey.size != SIZE:
        grey = grey.resize(SIZE, Image.BILINEAR)
    return np.asarray(grey, dtype=np.uint8)


def _split_files(folder: Path, split: str) -> list[tuple[str, Path]]:
    """``(label, path)`` of every image under ``folder/split/<label>/``, sorted by path."""
    root = folder / split
    if not root.is_dir():
        return []
    return [(label.name, path)
            for label in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            for path in sorted(label.rglob("*"))
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")]


def load_image_folder(folder: Path) -> Data:
    """The release layout: ``train/<label>/*`` to train on, ``eval/<label>/*`` to test on.

    Raises:
        DataError: no training images, no ``eval`` images, an eval label the training data
            lacks, or an unreadable image.
    """
    manifest: dict[str, Any] = {}
    if (folder / "manifest.json").is_file():
        manifest = json.loads((folder / "manifest.json").read_text())
    train_files, eval_files = _split_files(folder, "train"), _split_files(folder, "eval")
    if not train_files:
        raise DataError(f"{folder / 'train'}: no images in train/<label>/ (expected e.g. train/7/0001.png)")
    if not eval_files:
        raise DataError(
            f"{folder}: no eval/<label>/ images, so there is no held-out test set (testing on the training "
            "images would overstate the accuracy); release the dataset with a split, e.g. "
            "`mloop dataset release NAME --split 0.8`, or a ReleaseDatasetStep with train_evaluate_sample_ratio")
    classes = [str(c) for c in manifest.get("classes") or []]
    if not classes:
        classes = sorted({label for label, _ in train_files + eval_files})
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({label for label, _ in train_files + eval_files} - set(index))
    if unknown:
        raise DataError(f"{folder}: label folder(s) {', '.join(unknown)} are not among the dataset's classes "
                        f"{', '.join(classes)} (manifest.json)")
    untrained = sorted({label for label, _ in eval_files} - {label for label, _ in train_files})
    if untrained:
        raise DataError(f"{folder}: eval holds label(s) {', '.join(untrained)} that train has no image of")

    def arrays(files: list[tuple[str, Path]]) -> tuple[np.ndarray, np.ndarray]:
        images = np.stack([read_image(path) for _, path in files])
        return images, np.array([index[label] for label, _ in files], dtype=np.int64)

    train_x, train_y = arrays(train_files)
    test_x, test_y = arrays(eval_files)
    source = {"layout": "release", "train": len(train_files), "eval": len(eval_files)}
    if manifest.get("dataset"):
        source.update(dataset=manifest["dataset"], version=manifest.get("version"),
                      release=manifest.get("release"))
    unlabeled = folder / "unlabeled"
    if unlabeled.is_dir() and any(unlabeled.iterdir()):
        print(f"train: leaving out the images under {unlabeled} (no label)", flush=True)
    return Data(train_x, train_y, test_x, test_y, classes, source)


def load_data(data_url: str) -> Data:
    """The release layout or MNIST IDX files, whichever ``data_url`` holds."""
    folder = Path(data_url)
    if is_image_folder(folder):
        return load_image_folder(folder)
    try:
        train_x, train_y, test_x, test_y = load_mnist(folder)
    except FileNotFoundError as exc:
        raise DataError(f"{folder} is neither a dataset release (train/<label>/*.png and eval/<label>/*.png) nor "
                        f"an MNIST folder: {exc}") from exc
    return Data(train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64), CLASSES, {"layout": "idx"})


def to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 28, 28) and labels -> float (n, 1, 28, 28) in 0..1 and int64 labels."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def evaluate(model: Net, x: torch.Tensor, y: torch.Tensor, num_classes: int = 10,
             batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
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
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (pred, true), 1)
    return total_loss / len(x), float((pred == true).mean()), matrix


def init_distributed() -> tuple[int, int]:
    """``(rank, world_size)``: joins the ``gloo`` group from the environment when ``WORLD_SIZE`` > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    rank = dist.get_rank()
    node = os.environ.get("MLOOP_NODE_IP")  # set by mloop's Ray executor
    print(f"ddp: rank {rank} of {world}" + (f" on node {node}" if node else ""), flush=True)
    return rank, world


def train(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    rank, world = init_distributed()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)

    data = load_data(args.data_url)
    x, y = to_tensors(data.train_x, data.train_y)
    tx, ty = to_tensors(data.test_x, data.test_y)
    n_classes = len(data.classes)
    what = (f"{data.source['dataset']}:{data.source['version']}" if data.source.get("dataset")
            else f"{data.source['layout']} data")
    print(f"data: {len(x)} train, {len(tx)} test images ({what}) from {args.data_url}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    out = Path(args.train_url)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        logger = MetricLogger(str(out)) if MetricLogger is not None else LocalMetricLogger(str(out))

    model = Net(num_classes=n_classes)  # the same weights on every rank (same seed)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.gamma)
    shuffle = torch.Generator().manual_seed(args.seed)

    for epoch in range(1, args.epochs + 1):
        epoch_start = time.monotonic()
        net.train()
        order = torch.randperm(len(x), generator=shuffle)
        order = order[:len(order) - len(order) % world][rank::world]  # this rank's share (all of it if 1)
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            batch = order[i:i + args.batch_size]
            optimizer.zero_grad()
            loss = F.nll_loss(net(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        scheduler.step()
        train_loss = total / len(order)
        if world > 1:  # the mean over all ranks' shares
            train_loss = all_mean(train_loss)
        if rank != 0:
            continue
        test_loss, accuracy, _ = evaluate(model, tx, ty, n_classes)
        logger.log_metric("train_loss", train_loss, title="training loss per epoch", step=epoch)
        logger.log_metric("test_accuracy", accuracy, title="test accuracy per epoch", step=epoch)
        print(f"epoch {epoch}/{args.epochs}  train_loss {train_loss:.4f}  test_loss {test_loss:.4f}  "
              f"accuracy {accuracy:.4f}  ({time.monotonic() - epoch_start:.1f}s)", flush=True)

    if rank != 0:
        torch.distributed.destroy_process_group()
        print(f"done: rank {rank} trained on {len(order)} images an epoch in "
              f"{time.monotonic() - started:.1f}s; rank 0 writes the model", flush=True)
        return {"rank": rank, "seconds": time.monotonic() - started}
    test_loss, accuracy, matrix = evaluate(model, tx, ty, n_classes)
    logger.log_float("accuracy", accuracy, title="test accuracy")
    logger.log_float("loss", test_loss, title="test loss")
    logger.log_confusion_matrix("confusion_matrix", matrix, labels=data.classes, title="confusion matrix (test set)")
    save_model(model, out, accuracy=accuracy, loss=test_loss, args=args, test_size=len(tx), classes=data.classes,
               source=data.source)
    if world > 1:
        torch.distributed.destroy_process_group()
    elapsed = time.monotonic() - started
    print(f"done: accuracy {accuracy:.4f}, loss {test_loss:.4f} on {len(tx)} test images in {elapsed:.1f}s; "
          f"model in {out}", flush=True)
    return {"accuracy": accuracy, "loss": test_loss, "seconds": elapsed}


def all_mean(value: float) -> float:
    """The mean of ``value`` over the ranks of the process group."""
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def save_model(model: Net, out: Path, *, accuracy: float, loss: float, args: argparse.Namespace,
               test_size: int, classes: list[str] = CLASSES, source: dict[str, Any] | None = None) -> None:
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
        "classes": list(classes),
        "metrics": {"accuracy": accuracy, "loss": loss, "test_size": test_size},
        "training": {"epochs": args.epochs, "lr": args.lr, "gamma": args.gamma,
                     "batch_size": args.batch_size, "seed": args.seed, "torch": torch.__version__},
    }
    if source and source.get("dataset"):
        config["dataset"] = {"name": source["dataset"], "version": source.get("version"),
                             "train": source["train"], "eval": source["eval"]}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except (FileNotFoundError, DataError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
