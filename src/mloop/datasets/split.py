"""The train/eval split of a release: deterministic, stratified by label, stable as data grows.

Samples are grouped by their label set (unlabeled samples form a group of their own). Within
a group they are ordered by ``sha256(f"{seed}:{sample id}")`` and the first
``round(n * ratio)`` go to ``train`` (at least one sample on each side when the group has two
or more). The order depends only on the seed and each sample's own id, so the same seed gives
the same split, and adding samples moves few of the existing ones across the boundary.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

from mloop.datasets.manifest import SampleEntry
from mloop.errors import DatasetError

__all__ = ["EVAL", "TRAIN", "check_ratio", "split_samples"]

TRAIN = "train"
EVAL = "eval"


def check_ratio(ratio: float | str) -> float:
    """The ratio as a float in (0, 1).

    Raises:
        DatasetError: it isn't a number strictly between 0 and 1.
    """
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise DatasetError(f"split ratio {ratio!r} is not between 0 and 1 (exclusive)",
                           hint="give the share of samples that goes to training, e.g. --split 0.8")
    return value


def split_samples(samples: Sequence[SampleEntry], ratio: float, seed: int) -> dict[str, str]:
    """``{sample id: "train" | "eval"}`` for every sample (see the module docstring)."""
    ratio = check_ratio(ratio)
    groups: dict[tuple[str, ...], list[tuple[bytes, str]]] = defaultdict(list)
    for sample in samples:
        key = hashlib.sha256(f"{seed}:{sample.id}".encode()).digest()
        groups[tuple(sorted(sample.labels))].append((key, sample.id))
    out: dict[str, str] = {}
    for members in groups.values():
        members.sort()
        n = len(members)
        n_train = round(n * ratio)
        if n >= 2:
            n_train = min(max(n_train, 1), n - 1)
        for i, (_, sid) in enumerate(members):
            out[sid] = TRAIN if i < n_train else EVAL
    return out
