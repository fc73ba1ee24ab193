"""Metrics files: the ModelArts ``metrics.json`` formats, a validating reader, and a writer.

A job reports metrics by writing a JSON file at the path its ``MetricsConfig`` names. The
file is a JSON **array of entries**, each ``{"key", "title", "type", "data"}``, at most
1 MB. Five types exist (reference section 9)::

    float                   {"value": 0.93}
    line chart, histogram   {"x_axis": [{"title": "step", "value": [1, 2]}],
                             "y_axis": [{"title": "value", "value": [0.5, 0.4]}]}
    table                   {"cell_value": [[1, 2], [2, 3]],
                             "col_labels": {"title": "labels", "value": ["a", "b"]},
                             "row_labels": {"title": "predictions", "value": ["a", "b"]}}
    one-dimensional-table   {"cell_value": [[10, 2, 0.5]], "labels": ["n", "max", "p99"]}

For compatibility with ModelArts Workflow 1.0.0, a flat object ``{"accuracy": 0.93}`` is
also read; its numeric values become ``float`` entries.

Reading::

    from mloop.metrics import load_metrics_file, read_metric_value

    entries = load_metrics_file("out/metrics.json")      # raises MetricsError listing every problem
    accuracy = read_metric_value(["out/metrics.json"], "accuracy")

Writing, from a training script (same API as the ModelArts toolkit's ``MetricLogger``)::

    from mloop.metrics import MetricLogger

    logger = MetricLogger(args.train_url)                 # writes <train_url>/metrics.json
    for step, loss in enumerate(losses):
        logger.log_metric("train_loss", loss, step=step)  # a line chart, rewritten at once
    logger.log_float("accuracy", 0.97)
    logger.log_confusion_matrix("confusion_matrix", matrix, labels=["0", "1"])

Layer: foundation (file formats; imports only errors).
"""

from mloop.metrics.logger import (
    FloatMetric, HistogramMetric, ListMetric, Metric, MetricLogger, OneDimensionalTableMetric, TableMetric,
    get_timestamp,
)
from mloop.metrics.analysis import analyse
from mloop.metrics.reading import (
    MAX_METRICS_BYTES, METRIC_TYPES, MetricEntry, MetricKeyNotFoundError, float_values, load_metrics_file,
    parse_metrics, read_metric_value,
)

__all__ = [
    "MAX_METRICS_BYTES",
    "METRIC_TYPES",
    "MetricEntry",
    "MetricKeyNotFoundError",
    "load_metrics_file",
    "parse_metrics",
    "read_metric_value",
    "float_values",
    "get_timestamp",
    "Metric",
    "ListMetric",
    "FloatMetric",
    "HistogramMetric",
    "TableMetric",
    "OneDimensionalTableMetric",
    "MetricLogger",
    "analyse",
]
