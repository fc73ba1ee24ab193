"""``analyse`` (deep_moxing.model_analysis.api / mloop.metrics): the report, its size bound, the step metrics."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from mloop.metrics import analyse, load_metrics_file


def test_report_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_STEP_METRICS", str(tmp_path / "step-metrics.json"))
    from deep_moxing.model_analysis.api import analyse as ma_analyse

    report = ma_analyse(task_type="image_classification", pred_list=[0, 0, 1, 1, 1], label_list=[0, 1, 1, 1, 0],
                        name_list=["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"],
                        label_map_dict=json.dumps({"0": "cat", "1": "dog"}), save_path=str(tmp_path / "eval"))
    written = json.loads((tmp_path / "eval" / "model_analysis_results.json").read_text())
    assert written == report
    assert report["accuracy"] == 0.6
    cat, dog = report["per_class"]
    assert (cat["name"], cat["precision"], cat["recall"], cat["support"]) == ("cat", 0.5, 0.5, 2)
    assert (dog["precision"], dog["recall"], dog["support"]) == (round(2 / 3, 6), round(2 / 3, 6), 3)
    assert report["confusion_matrix"]["matrix"] == [[1, 1], [1, 2]]
    assert {s["name"] for s in report["misclassified"]["samples"]} == {"b.jpg", "e.jpg"}
    entries = {e.key: e for e in load_metrics_file(tmp_path / "step-metrics.json")}
    assert entries["accuracy"].value == 0.6 and entries["confusion_matrix"].type == "table"
    assert entries["f1_per_class"].data["labels"] == ["cat", "dog"]


def test_scores_give_confidences_and_a_per_sample_map_is_ignored(tmp_path: Path) -> None:
    preds = [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]
    report = analyse(pred_list=preds, label_list=[1, 1, 0], label_map_dict=json.dumps({0: 1, 1: 1, 2: 0}),
                     save_path=str(tmp_path))
    assert report["accuracy"] == round(2 / 3, 6)
    (wrong,) = report["misclassified"]["samples"]
    assert wrong == {"index": 0, "label": "1", "prediction": "0", "confidence": 0.9}


def test_100k_samples_stay_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_STEP_METRICS", str(tmp_path / "step-metrics.json"))
    rng = random.Random(3)
    n, k = 100_000, 10
    labels = [rng.randrange(k) for _ in range(n)]
    preds = [[rng.random() for _ in range(k)] for _ in range(n)]
    names = [f"/data/train/class{c}/img_{i:06d}.jpg" for i, c in enumerate(labels)]
    start = time.perf_counter()
    report = analyse(pred_list=preds, label_list=labels, name_list=names,
                     label_map_dict={str(c): f"class{c}" for c in range(k)}, save_path=str(tmp_path))
    took = time.perf_counter() - start
    size = (tmp_path / "model_analysis_results.json").stat().st_size
    assert report["samples"] == n
    assert report["misclassified"]["shown"] == 200
    assert report["misclassified"]["left_out"] == report["misclassified"]["count"] - 200 > 80_000
    confs = [s["confidence"] for s in report["misclassified"]["samples"]]
    assert confs == sorted(confs, reverse=True)
    assert size < 64 * 1024, size
    assert took < 20, took
    assert (tmp_path / "step-metrics.json").stat().st_size < 8 * 1024


def test_many_classes_keep_a_sparse_matrix(tmp_path: Path) -> None:
    labels = list(range(500)) * 4
    preds = [(c + 1) % 500 if i % 2 else c for i, c in enumerate(labels)]
    report = analyse(pred_list=preds, label_list=labels, save_path=str(tmp_path))
    cm = report["confusion_matrix"]
    assert cm["sparse"] and len(cm["cells"]) == 250 and "matrix" not in cm
    assert (tmp_path / "model_analysis_results.json").stat().st_size < 256 * 1024


def test_bad_input_is_refused() -> None:
    from mloop.errors import MetricsError

    with pytest.raises(MetricsError):
        analyse(pred_list=[1, 2], label_list=[1])
    with pytest.raises(MetricsError):
        analyse(task_type="object_detection", pred_list=[1], label_list=[1])
