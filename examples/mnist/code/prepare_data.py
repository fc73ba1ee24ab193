"""Make an MNIST-like dataset without downloading anything: class folders of PNGs, or MNIST's IDX files.

MNIST itself cannot be fetched here (no network), so this job builds a stand-in from the
handwritten digits that ship inside scikit-learn (``sklearn.datasets.load_digits``: 1,797
images, 8x8 pixels, values 0-16). Each image is processed the way MNIST's were: scaled
up bilinearly into a 20x20 box, stretched to 0-255 and centred in a 28x28 frame.

``--format=png`` (the default, what the workflow uses) writes every image as a greyscale
PNG in one sub-folder per class, the "ModelArts imageNet 1.0" layout a dataset is made from;
the train/test split is left to the dataset's release::

    <output_url>/0/0000.png  <output_url>/0/0010.png ...  <output_url>/9/1796.png

(``<n>`` is the image's index in ``load_digits``, so the same digits give the same files,
byte for byte, on every run). ``--format=idx`` writes MNIST's own four IDX files instead,
after a stratified train/test split (``--test_fraction``, ``--seed``)::

    <output_url>/train-images-idx3-ubyte   train-labels-idx1-ubyte
                 t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

``train.py`` reads either folder (a PNG folder once released as a dataset: ``train/<digit>/``
and ``eval/<digit>/``), or a folder holding the real MNIST files.

Usage::

    python prepare_data.py --output_url=DIR [--format=png]
    python prepare_data.py --output_url=DIR --format=idx [--seed=0] [--test_fraction=0.2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idx import MNIST_FILES, write_images, write_labels  # noqa: E402

SIZE = 28  # MNIST frame
BOX = 20  # MNIST digits fill a 20x20 box centred in the frame
FORMATS = ("png", "idx")


def _bilinear_weights(src: int, dst: int) -> np.ndarray:
    """A (dst, src) matrix that resamples a line of ``src`` pixels to ``dst`` bilinearly.

    Pixel centres are aligned (``x_src = (x_dst + 0.5) * src / dst - 0.5``), clamped at the
    edges, like image libraries resize.
    """
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    left = np.floor(pos).astype(int)
    right = np.minimum(left + 1, src - 1)
    frac = pos - left
    weights = np.zeros((dst, src))
    weights[np.arange(dst), left] += 1 - frac
    weights[np.arange(dst), right] += frac
    return weights


def to_mnist_frames(images: np.ndarray, max_value: float = 16.0) -> np.ndarray:
    """Scale (n, h, w) images with values 0..max_value into (n, 28, 28) uint8 MNIST frames."""
    n, h, w = images.shape
    rows, cols = _bilinear_weights(h, BOX), _bilinear_weights(w, BOX)
    boxes = np.einsum("ij,njk,lk->nil", rows, images.astype(np.float64), cols)
    boxes = np.clip(np.rint(boxes * (255.0 / max_value)), 0, 255).astype(np.uint8)
    frames = np.zeros((n, SIZE, SIZE), dtype=np.uint8)
    pad = (SIZE - BOX) // 2
    frames[:, pad:pad + BOX, pad:pad + BOX] = boxes
    return frames


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_url", required=True, help="folder to write the images into")
    parser.add_argument("--format", choices=FORMATS, default="png",
                        help="png: <output_url>/<digit>/<n>.png, every image (default); "
                             "idx: MNIST's four IDX files, split into train and test")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split (idx only)")
    parser.add_argument("--test_fraction", type=float, default=0.2,
                        help="share of the digits held out for testing (idx only)")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"prepare_data: ignoring unknown arguments {unknown}")
    if not 0 < args.test_fraction < 1:
        parser.error(f"--test_fraction must be between 0 and 1, got {args.test_fraction}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    frames = to_mnist_frames(digits.images)
    labels = digits.target.astype(np.uint8)
    out = Path(args.output_url)
    out.mkdir(parents=True, exist_ok=True)
    print(f"source: scikit-learn digits, {len(frames)} images 8x8 -> {SIZE}x{SIZE} uint8 (digit in a {BOX}x{BOX} box)")
    if args.format == "png":
        write_class_folders(out, frames, labels)
        print("per class: " + " ".join(f"{c}:{n}" for c, n in enumerate(np.bincount(labels, minlength=10))))
        print(f"wrote {len(frames)} PNG images into {os.fspath(out)}/<digit>/<n>.png")
        return 0

    train_x, test_x, train_y, test_y = train_test_split(
        frames, labels, test_size=args.test_fraction, random_state=args.seed, stratify=labels
    )
    write_images(out / MNIST_FILES["train_images"], train_x)
    write_labels(out / MNIST_FILES["train_labels"], train_y)
    write_images(out / MNIST_FILES["test_images"], test_x)
    write_labels(out / MNIST_FILES["test_labels"], test_y)
    print(f"train: {len(train_x)} images, test: {len(test_x)} images (test_fraction={args.test_fraction}, "
          f"seed={args.seed})")
    print("per class (train): " + " ".join(f"{c}:{n}" for c, n in enumerate(np.bincount(train_y, minlength=10))))
    print(f"wrote {', '.join(sorted(MNIST_FILES.values()))} to {os.fspath(out)}")
    return 0


def write_class_folders(out: Path, frames: np.ndarray, labels: np.ndarray) -> None:
    """Write ``frames[i]`` as the greyscale PNG ``out/<labels[i]>/<i:04d>.png``.

    Pillow writes no timestamp into a PNG, so the same frames give the same bytes (and an
    unchanged dataset version) on every run. Each file is written beside its name and renamed
    over it, so a reader never sees half a PNG.
    """
    from PIL import Image

    for label in np.unique(labels):
        (out / str(int(label))).mkdir(exist_ok=True)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        target = out / str(int(label)) / f"{i:04d}.png"
        tmp = target.with_name(f".{target.name}.tmp")
        Image.fromarray(frame).save(tmp, format="PNG")
        os.replace(tmp, target)


if __name__ == "__main__":
    sys.exit(main())
