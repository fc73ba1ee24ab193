"""The evaluation report of ModelArts' model analysis: ``analyse(task_type=..., pred_list=...,
label_list=..., name_list=..., label_map_dict=..., save_path=...)``.

``from deep_moxing.model_analysis.api import analyse`` (the ModelArts import) and
``from mloop.metrics import analyse`` are this function. It writes
``<save_path>/model_analysis_results.json`` — accuracy, per-class precision / recall / F1 and
support, the confusion matrix and the misclassified samples (file names and confidences where
given) — in a compact form whose size does not grow with the number of samples: at most
:data:`MAX_MISCLASSIFIED` samples are listed (the most confident mistakes first) and the
report says how many were left out; above :data:`MAX_DENSE_CLASSES` classes the confusion
matrix is kept as its largest off-diagonal cells.

Inside an mloop job the headline figures (``accuracy``, ``macro_precision``, ``macro_recall``,
``macro_f1``, ``samples``; for up to :data:`MAX_TABLE_CLASSES` classes also ``f1_per_class``
and ``confusion_matrix``) become the step's metrics, so conditions can gate on them and
``mloop metrics RUN`` shows them: they go to the metrics file the job's ``MLOOP_STEP_METRICS``
names, which the JobStep reads when the job ends (the file format is :mod:`mloop.metrics`').

Layer: foundation (standard library; numpy arrays and torch tensors are read if given).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from typing import Any

from mloop.errors import MetricsError

__all__ = ["MAX_DENSE_CLASSES", "MAX_MISCLASSIFIED", "MAX_TABLE_CLASSES", "REPORT_NAME", "analyse",
           "record_step_metrics"]

#: The report's file name (as ModelArts writes it).
REPORT_NAME = "model_analysis_results.json"
#: At most this many misclassified samples are listed.
MAX_MISCLASSIFIED = 200
#: Up to this many classes the confusion matrix is written in full.
MAX_DENSE_CLASSES = 100
#: Above it, this many of its largest off-diagonal cells are kept.
MAX_SPARSE_CELLS = 1000
#: Up to this many classes, per-class F1 and the confusion matrix are also step metrics.
MAX_TABLE_CLASSES = 20

_TASKS = ("image_classification", "text_classification", "classification")


def _plain(values: Any, what: str) -> list[Any]:
    if values is None:
        return []
    if hasattr(values, "tolist"):  # numpy arrays, torch tensors
        values = values.tolist()
    try:
        return list(values)
    except TypeError:
        raise MetricsError(f"analyse: {what} must be a list, got {type(values).__name__}") from None


def _class_of(value: Any) -> Any:
    """A label or prediction as a hashable class (an int where it is one)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _scores(row: list[Any]) -> tuple[int, float]:
    """(argmax, confidence) of a score vector: probabilities as given, logits through softmax."""
    values = [float(v) for v in row]
    best = max(range(len(values)), key=values.__getitem__)
    if min(values) >= 0 and abs(sum(values) - 1.0) < 1e-3:
        return best, values[best]
    top = values[best]
    total = sum(math.exp(v - top) for v in values)
    return best, 1.0 / total


def _label_names(label_map: Any, classes: list[Any], samples: int) -> dict[Any, str]:
    """Class -> display name from ``label_map_dict`` (JSON text or a dict of class id -> name).

    A map of numbers with one entry per sample (what seed 003's script passes: sample index ->
    label) names no classes and is ignored."""
    names = {c: str(c) for c in classes}
    if not label_map:
        return names
    if isinstance(label_map, (str, bytes)):
        try:
            label_map = json.loads(label_map)
        except ValueError as exc:
            raise MetricsError(f"analyse: label_map_dict is not JSON: {exc}") from None
    if isinstance(label_map, list):
        label_map = dict(enumerate(label_map))
    if not isinstance(label_map, dict):
        raise MetricsError(f"analyse: label_map_dict must be a dict of class -> name, got {type(label_map).__name__}")
    if len(label_map) == samples and samples > len(classes) and all(
            isinstance(v, (int, float)) for v in label_map.values()):
        return names
    by_text = {str(k): v for k, v in label_map.items()}
    for c in classes:
        if str(c) in by_text:
            names[c] = str(by_text[str(c)])
    return names


def _ratio(a: int, b: int) -> float:
    return round(a / b, 6) if b else 0.0


def analyse(task_type: str = "image_classification", pred_list: Any = None, label_list: Any = None,
            name_list: Any = None, label_map_dict: Any = None, save_path: Any = None, **_: Any) -> dict[str, Any]:
    """Write the evaluation report to ``<save_path>/model_analysis_results.json`` and return it.

    Args:
        task_type: ``image_classification`` (also ``text_classification``, ``classification``).
        pred_list: per sample, the predicted class, or its scores (probabilities or logits: the
            class is the highest one and its probability the confidence).
        label_list: per sample, the true class.
        name_list: per sample, its file name (optional).
        label_map_dict: class id -> class name, as JSON text or a dict (optional).
        save_path: the folder (local, or any location ``mox.file`` takes) for the report; none:
            only the step's metrics are recorded.

    Raises:
        MetricsError: the task type is not a classification, the lists differ in length or are empty.
    """
    if task_type not in _TASKS:
        raise MetricsError(f"analyse: task_type {task_type!r} is not supported",
                           hint="mloop analyses classification: " + ", ".join(_TASKS))
    preds, labels = _plain(pred_list, "pred_list"), _plain(label_list, "label_list")
    names = _plain(name_list, "name_list")
    if not labels or len(preds) != len(labels):
        raise MetricsError(f"analyse: pred_list ({len(preds)}) and label_list ({len(labels)}) must be "
                           "non-empty and of the same length")
    if names and len(names) != len(labels):
        raise MetricsError(f"analyse: name_list has {len(names)} entries for {len(labels)} samples")
    predicted: list[Any] = []
    confidence: list[float] | None = None
    if preds and isinstance(preds[0], (list, tuple)):
        confidence = []
        for row in preds:
            best, conf = _scores(list(row))
            predicted.append(best)
            confidence.append(conf)
    else:
        predicted = [_class_of(p) for p in preds]
    truth = [_class_of(v) for v in labels]
    n = len(truth)
    classes = sorted(set(truth) | set(predicted), key=lambda c: (not isinstance(c, int), str(c) if not isinstance(c, int) else c))
    class_names = _label_names(label_map_dict, classes, n)
    pairs = Counter(zip(truth, predicted))
    support = Counter(truth)
    predicted_count = Counter(predicted)
    correct = sum(count for (t, p), count in pairs.items() if t == p)
    per_class = []
    for c in classes:
        tp = pairs.get((c, c), 0)
        precision = _ratio(tp, predicted_count[c])
        recall = _ratio(tp, support[c])
        f1 = round(2 * precision * recall / (precision + recall), 6) if precision + recall else 0.0
        per_class.append({"class": c, "name": class_names[c], "precision": precision, "recall": recall, "f1": f1,
                          "support": support[c], "predicted": predicted_count[c]})
    present = [row for row in per_class if row["support"]]

    def mean(key: str, weighted: bool) -> float:
        if not present:
            return 0.0
        if weighted:
            return round(float(sum(r[key] * r["support"] for r in present)) / n, 6)
        return round(float(sum(r[key] for r in present)) / len(present), 6)

    labels_shown = [class_names[c] for c in classes]
    if len(classes) <= MAX_DENSE_CLASSES:
        index = {c: i for i, c in enumerate(classes)}
        matrix = [[0] * len(classes) for _ in classes]
        for (t, p), count in pairs.items():
            matrix[index[t]][index[p]] = count
        confusion: dict[str, Any] = {"rows": "label", "columns": "prediction", "labels": labels_shown,
                                     "matrix": matrix}
    else:
        off = sorted(((count, t, p) for (t, p), count in pairs.items() if t != p), key=lambda x: -x[0])
        confusion = {"rows": "label", "columns": "prediction", "labels": labels_shown, "sparse": True,
                     "cells": [[class_names[t], class_names[p], count] for count, t, p in off[:MAX_SPARSE_CELLS]],
                     "cells_left_out": max(0, len(off) - MAX_SPARSE_CELLS),
                     "diagonal": [pairs.get((c, c), 0) for c in classes]}
    wrong = [i for i in range(n) if truth[i] != predicted[i]]
    if confidence is not None:
        wrong.sort(key=lambda i: -confidence[i])  # the most confident mistakes first
    shown = []
    for i in wrong[:MAX_MISCLASSIFIED]:
        sample: dict[str, Any] = {"index": i}
        if names:
            sample["name"] = str(names[i])
        sample["label"] = class_names[truth[i]]
        sample["prediction"] = class_names[predicted[i]]
        if confidence is not None:
            sample["confidence"] = round(confidence[i], 6)
        shown.append(sample)
    report = {
        "task_type": task_type, "generated_by": "mloop", "samples": n, "classes": len(classes),
        "accuracy": _ratio(correct, n),
        "macro": {"precision": mean("precision", False), "recall": mean("recall", False), "f1": mean("f1", False)},
        "weighted": {"precision": mean("precision", True), "recall": mean("recall", True), "f1": mean("f1", True)},
        "per_class": per_class,
        "confusion_matrix": confusion,
        "misclassified": {"count": len(wrong), "shown": len(shown), "left_out": len(wrong) - len(shown),
                          "order": "most confident first" if confidence is not None else "sample order",
                          "samples": shown},
    }
    if save_path:
        _write_report(os.fspath(save_path), report)
    record_step_metrics(report)
    return report


def _write_report(folder: str, report: dict[str, Any]) -> None:
    text = json.dumps(report, ensure_ascii=False, separators=(",", ":"))
    if "://" in folder:  # obs://, s3://, ...: through the moxing layer
        from mloop.compat import moxing_file

        moxing_file.write(folder.rstrip("/") + "/" + REPORT_NAME, text)
        return
    from mloop.metrics.logger import _atomic_write

    os.makedirs(folder, exist_ok=True)
    _atomic_write(os.path.join(folder, REPORT_NAME), text.encode("utf-8"))


def record_step_metrics(report: dict[str, Any], path: str | None = None) -> str | None:
    """Add the report's headline figures to the step's metrics file (``MLOOP_STEP_METRICS``, or
    ``path``), replacing entries of the same keys; the file's path, None outside a job."""
    from mloop.metrics.logger import FloatMetric, Metric, OneDimensionalTableMetric, TableMetric, _atomic_write

    path = path or os.environ.get("MLOOP_STEP_METRICS")
    if not path:
        return None
    metrics: list[Metric] = [FloatMetric("accuracy", report["accuracy"]),
               FloatMetric("macro_precision", report["macro"]["precision"]),
               FloatMetric("macro_recall", report["macro"]["recall"]),
               FloatMetric("macro_f1", report["macro"]["f1"]),
               FloatMetric("samples", report["samples"])]
    if report["classes"] <= MAX_TABLE_CLASSES:
        rows = report["per_class"]
        metrics.append(OneDimensionalTableMetric("f1_per_class", [r["name"] for r in rows], [r["f1"] for r in rows]))
        cm = report["confusion_matrix"]
        metrics.append(TableMetric("confusion_matrix", cm["matrix"], cm["labels"], cm["labels"],
                                   row_title="labels", col_title="predictions"))
    entries: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            entries = [e for e in json.load(fh) if isinstance(e, dict)]
    except (OSError, ValueError, TypeError):
        entries = []
    keys = {m.key for m in metrics}
    entries = [e for e in entries if e.get("key") not in keys] + [m.to_json() for m in metrics]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    _atomic_write(path, json.dumps(entries, separators=(",", ":")).encode("utf-8"))
    return path
