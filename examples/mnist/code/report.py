"""The last step of the MNIST pipeline: say whether the trained model is good enough.

The workflow's ``accuracy_gate`` runs one of two jobs, both this script:

* ``--decision=accept``: prints "model accepted" and copies the model's metrics summary
  (its float metrics, and the config the model was trained with) into ``--output_url``
  as ``summary.json``; exits 0;
* ``--decision=reject``: prints the accuracy against ``--min_accuracy`` and exits 1, so
  the run fails when the model is not good enough.

Usage::

    python report.py --decision=accept --model_url=TRAIN_OUT --output_url=OUT [--min_accuracy=0.95]
    python report.py --decision=reject --model_url=TRAIN_OUT [--min_accuracy=0.95]

Needs only the standard library (mloop's reader is used when installed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def float_metrics(path: Path) -> dict[str, float]:
    """``{key: value}`` of the float entries of a metrics file (array or flat object)."""
    try:
        from mloop.metrics import float_values, load_metrics_file
    except ImportError:
        doc = json.loads(path.read_text())
        if isinstance(doc, dict):
            return {k: float(v) for k, v in doc.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return {e["key"]: float(e["data"]["value"]) for e in doc if e.get("type") == "float"}
    return float_values(load_metrics_file(path))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Accept or reject a trained MNIST model.")
    parser.add_argument("--decision", choices=["accept", "reject"], required=True)
    parser.add_argument("--model_url", required=True, help="the training job's output folder (has metrics.json)")
    parser.add_argument("--output_url", default=None, help="where 'accept' writes summary.json")
    parser.add_argument("--min_accuracy", type=float, default=None, help="the gate's threshold, for the message")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"report: ignoring unknown arguments {unknown}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = Path(args.model_url)
    metrics = float_metrics(model_dir / "metrics.json")
    accuracy = metrics.get("accuracy")
    threshold = f" (min_accuracy {args.min_accuracy})" if args.min_accuracy is not None else ""

    if args.decision == "reject":
        print(f"model rejected: test accuracy {accuracy}{threshold} is too low", file=sys.stderr)
        return 1

    print(f"model accepted: test accuracy {accuracy}{threshold}")
    if args.output_url:
        out = Path(args.output_url)
        out.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {"decision": "accepted", "metrics": metrics, "min_accuracy": args.min_accuracy,
                                   "model_url": os.fspath(model_dir)}
        config = model_dir / "config.json"
        if config.is_file():
            summary["model_config"] = json.loads(config.read_text())
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"summary written to {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
