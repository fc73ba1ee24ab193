"""Writing metrics files from a job: MetricLogger and the metric series it keeps."""

from __future__ import annotations

import atexit
import json
import math
import os
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from numbers import Integral
from typing import Any

from mloop.errors import MetricsError

from mloop.metrics.live import live_poster
from mloop.metrics.reading import _PRETTY_BYTES, MAX_METRICS_BYTES, PathLike

# --------------------------------------------------------------------------- writing


def get_timestamp() -> int:
    """The current time in milliseconds since the epoch."""
    return int(round(time.time() * 1000))


def _finite(value: Any, what: str) -> float:
    """``value`` as a finite float; numpy and torch scalars are welcome, booleans are not."""
    if isinstance(value, (bool, str)) or type(value).__name__ == "bool_":
        raise MetricsError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise MetricsError(f"{what} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(number):
        raise MetricsError(f"{what} must be a finite number, got {number}", hint="JSON has no NaN or Infinity")
    return number


def _axis_value(value: Any) -> float | int | str:
    """A point on a chart: a number, or a string for what JSON cannot hold (NaN, inf)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Integral):  # int, numpy integers (and bool, as 0/1)
        return int(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def _encode(value: float | int | str) -> str:
    """JSON text of one axis value (faster than ``json.dumps`` for the common cases)."""
    if type(value) is int or type(value) is float:
        return repr(value)
    return json.dumps(value)


_COMPACT = (",", ":")


class Metric:
    """Base of the metrics a :class:`MetricLogger` holds (as in the ModelArts toolkit).

    Args:
        key: the metric key.
        title: display title; the key when empty.
    """

    type: str = ""

    def __init__(self, key: str, title: str | None = "") -> None:
        self.key = key
        self.title = title or key

    def to_json(self) -> dict[str, Any]:
        """``{"key", "title"}``; subclasses add ``type`` and ``data``."""
        return {"key": self.key, "title": self.title}

    def encode(self) -> str:
        """The entry as compact JSON text."""
        return json.dumps(self.to_json(), separators=_COMPACT, allow_nan=False)


class ListMetric(Metric):
    """A ``line chart``: one point per :meth:`add_value`, x series ``step`` and ``timestamp``.

    ``steps``, ``timestamps`` and ``values`` are the points so far (read them, don't edit
    them: the JSON text of each point is kept beside them so that rewriting the file on
    every call stays cheap). ``thin()`` halves the points while keeping them evenly
    spaced: it keeps every other recorded point and from then on records only every
    other new one. The newest point is always kept, so the chart ends at the latest value.
    """

    type = "line chart"

    def __init__(self, key: str, title: str | None = "") -> None:
        super().__init__(key, title)
        self.steps: list[Any] = []
        self.timestamps: list[int] = []
        self.values: list[Any] = []
        self._text: tuple[list[str], list[str], list[str]] = ([], [], [])
        self._stride = 1  # the n-th call is recorded for good when n % stride == 0
        self._calls = 0
        self._tail_extra = False  # the last point is kept only because it is the newest

    def __len__(self) -> int:
        return len(self.values)

    def add_value(self, value: Any, step: Any = 0) -> None:
        """Append one point ``(step, now, value)``."""
        if self._tail_extra:
            self._pop()
        self._push((_axis_value(step), get_timestamp(), _axis_value(value)))
        self._tail_extra = self._calls % self._stride != 0
        self._calls += 1

    def thin(self) -> bool:
        """Drop every other point; False when there is nothing left to drop."""
        if len(self.values) <= 2:
            return False
        tail = self._pop() if self._tail_extra else None
        last = (self.steps[-1], self.timestamps[-1], self.values[-1])
        dropped_last = (len(self.values) - 1) % 2 == 1
        for column in self._columns():
            del column[1::2]
        self._stride *= 2
        self._tail_extra = False
        keep = tail or (last if dropped_last else None)
        if keep is not None:
            self._push(keep)
            self._tail_extra = True
        return True

    def _columns(self) -> tuple[list[Any], ...]:
        return (self.steps, self.timestamps, self.values, *self._text)

    def _push(self, point: tuple[Any, int, Any]) -> None:
        for column, item in zip((self.steps, self.timestamps, self.values), point):
            column.append(item)
        for column, item in zip(self._text, point):
            column.append(_encode(item))

    def _pop(self) -> tuple[Any, int, Any]:
        for column in self._text:
            column.pop()
        return (self.steps.pop(), self.timestamps.pop(), self.values.pop())

    def to_json(self) -> dict[str, Any]:
        result = super().to_json()
        result["type"] = self.type
        result["data"] = {
            "x_axis": [{"title": "step", "value": self.steps}, {"title": "timestamp", "value": self.timestamps}],
            "y_axis": [{"title": "value", "value": self.values}],
        }
        return result

    def encode(self) -> str:
        head = json.dumps({"key": self.key, "title": self.title, "type": self.type}, separators=_COMPACT)
        steps, stamps, values = (",".join(column) for column in self._text)
        return (
            f'{head[:-1]},"data":{{"x_axis":[{{"title":"step","value":[{steps}]}},'
            f'{{"title":"timestamp","value":[{stamps}]}}],"y_axis":[{{"title":"value","value":[{values}]}}]}}}}'
        )


class FloatMetric(Metric):
    """A ``float`` entry: one number (what a ``Condition`` can test)."""

    type = "float"

    def __init__(self, key: str, value: Any, title: str | None = "") -> None:
        super().__init__(key, title)
        self.value = _finite(value, f"metric '{key}'")

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "type": self.type, "data": {"value": self.value}}


class HistogramMetric(Metric):
    """A ``histogram``: bars at ``x_values`` with heights ``y_values``."""

    type = "histogram"

    def __init__(self, key: str, x_values: Sequence[Any], y_values: Sequence[Any], title: str | None = "",
                 x_title: str = "x", y_title: str = "value") -> None:
        super().__init__(key, title)
        if len(x_values) != len(y_values):
            raise MetricsError(
                f"histogram '{key}': {len(x_values)} x values but {len(y_values)} y values",
                hint="give one y value per x value",
            )
        self.x_values = [_axis_value(v) for v in x_values]
        self.y_values = [_axis_value(v) for v in y_values]
        self.x_title, self.y_title = x_title, y_title

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "type": self.type,
            "data": {
                "x_axis": [{"title": self.x_title, "value": self.x_values}],
                "y_axis": [{"title": self.y_title, "value": self.y_values}],
            },
        }


def _matrix(rows: Any, key: str) -> list[list[float | int]]:
    if hasattr(rows, "tolist"):  # numpy arrays, torch tensors
        rows = rows.tolist()
    out: list[list[float | int]] = []
    for r, row in enumerate(rows):
        if hasattr(row, "tolist"):
            row = row.tolist()
        cells: list[float | int] = []
        for c, v in enumerate(row):
            number = _finite(v, f"metric '{key}' cell [{r}][{c}]")
            cells.append(int(v) if isinstance(v, Integral) else number)
        out.append(cells)
    return out


class TableMetric(Metric):
    """A ``table`` (confusion matrix): ``matrix[row][col]`` with named rows and columns."""

    type = "table"

    def __init__(self, key: str, matrix: Any, row_labels: Sequence[Any], col_labels: Sequence[Any],
                 title: str | None = "", row_title: str = "predictions", col_title: str = "labels") -> None:
        super().__init__(key, title)
        self.cells = _matrix(matrix, key)
        self.row_labels = [str(v) for v in row_labels]
        self.col_labels = [str(v) for v in col_labels]
        self.row_title, self.col_title = row_title, col_title
        if len(self.cells) != len(self.row_labels) or any(len(r) != len(self.col_labels) for r in self.cells):
            shape = f"{len(self.cells)}x{len(self.cells[0]) if self.cells else 0}"
            raise MetricsError(
                f"table '{key}': a {shape} matrix does not fit {len(self.row_labels)} row labels "
                f"and {len(self.col_labels)} column labels"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "type": self.type,
            "data": {
                "cell_value": self.cells,
                "col_labels": {"title": self.col_title, "value": self.col_labels},
                "row_labels": {"title": self.row_title, "value": self.row_labels},
            },
        }


class OneDimensionalTableMetric(Metric):
    """A ``one-dimensional-table``: one row of numbers under named columns."""

    type = "one-dimensional-table"

    def __init__(self, key: str, labels: Sequence[Any], values: Sequence[Any], title: str | None = "") -> None:
        super().__init__(key, title)
        self.labels = [str(v) for v in labels]
        self.row = _matrix([values], key)[0]
        if len(self.row) != len(self.labels):
            raise MetricsError(f"table '{key}': {len(self.row)} values but {len(self.labels)} labels")

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "type": self.type, "data": {"cell_value": [self.row], "labels": self.labels}}


class MetricLogger:
    """Collects metrics and keeps ``<output_url>/<file_name>`` up to date.

    Same API as the ModelArts toolkit's ``MetricLogger`` (``log_metric``,
    ``output_metrics``), plus helpers for the other entry types. Every write replaces the
    file atomically (readers never see half a file) and keeps it under
    :data:`MAX_METRICS_BYTES`: when too big, the longest line charts are thinned to every
    other point.

    Args:
        output_url: local directory to write into (created if missing), usually the
            job's ``--train_url``.
        file_name: name of the file in that directory.
        min_write_interval: seconds; ``0`` (default) rewrites the file on every log call,
            as ModelArts does, so a live chart follows. With a larger value (say ``1.0``
            when logging every batch of a long run) log calls write at most that often;
            what is still unwritten is written by :meth:`output_metrics`, at the end of a
            ``with`` block, or when the interpreter exits.

    Example::

        logger = MetricLogger(args.train_url)
        for epoch in range(epochs):
            logger.log_metric("train_loss", loss, step=epoch)
        logger.log_float("accuracy", accuracy)
        logger.log_confusion_matrix("confusion_matrix", cm, labels=[str(i) for i in range(10)])
    """

    def __init__(self, output_url: PathLike, file_name: str = "metrics.json", *, min_write_interval: float = 0.0) -> None:
        self.output_url = os.fspath(output_url)
        self.file_name = file_name
        self.metrics: dict[str, Metric] = {}
        self.min_write_interval = min_write_interval
        self._last_write = -math.inf
        self._dirty = False
        if min_write_interval > 0:
            atexit.register(_flush_at_exit, weakref.ref(self))
        # Inside an mloop job: points also go to the live endpoint, in batches (charts move
        # while the job trains); without MLOOP_METRICS_URL only the file is written.
        self._live = live_poster()

    @property
    def path(self) -> str:
        """The metrics file's path."""
        return os.path.join(self.output_url, self.file_name)

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.output_metrics()

    # ----- logging

    def log_metric(self, key: str, value: Any, title: str | None = None, step: Any = 0) -> None:
        """Append ``(step, now, value)`` to the line chart ``key`` and rewrite the file."""
        metric = self.metrics.get(key)
        if metric is None:
            metric = self.metrics[key] = ListMetric(key, title)
        elif not isinstance(metric, ListMetric):
            raise MetricsError(f"metric '{key}' was logged as {metric.type}; a line chart needs another key")
        metric.add_value(value, step)
        if self._live is not None:
            self._live.add(key, metric.values[-1], metric.steps[-1], metric.timestamps[-1])
        self._changed()

    def log_float(self, key: str, value: Any, title: str | None = None) -> None:
        """Set the ``float`` entry ``key`` (replacing an earlier value) and rewrite the file."""
        metric = FloatMetric(key, value, title)
        self._put(metric)
        if self._live is not None:
            self._live.add(key, metric.value, 0, get_timestamp())

    def log_histogram(self, key: str, x_values: Sequence[Any], y_values: Sequence[Any], title: str | None = None) -> None:
        """Set the ``histogram`` entry ``key``: bars at ``x_values`` of heights ``y_values``."""
        self._put(HistogramMetric(key, x_values, y_values, title))

    def log_confusion_matrix(self, key: str, matrix: Any, labels: Sequence[Any], title: str | None = None,
                             row_title: str = "predictions", col_title: str = "labels") -> None:
        """Set the ``table`` entry ``key``: a square matrix with ``labels`` on rows and columns.

        Args:
            key: metric key.
            matrix: ``matrix[i][j]``, rows titled ``row_title``, columns ``col_title``
                (nested lists, or a numpy array / tensor).
            labels: class names, one per row and per column.
            title: display title.
            row_title: what the rows are (ModelArts writes ``predictions``).
            col_title: what the columns are (ModelArts writes ``labels``).
        """
        self._put(TableMetric(key, matrix, labels, labels, title, row_title=row_title, col_title=col_title))

    def log_table(self, key: str, labels: Sequence[Any], values: Sequence[Any], title: str | None = None) -> None:
        """Set the ``one-dimensional-table`` entry ``key``: one value per label."""
        self._put(OneDimensionalTableMetric(key, labels, values, title))

    def _put(self, metric: Metric) -> None:
        old = self.metrics.get(metric.key)
        if old is not None and type(old) is not type(metric):
            raise MetricsError(f"metric '{metric.key}' was logged as {old.type}, not {metric.type}; use another key")
        self.metrics[metric.key] = metric
        self._changed()

    def _changed(self) -> None:
        self._dirty = True
        if time.monotonic() - self._last_write >= self.min_write_interval:
            self.output_metrics()

    # ----- writing

    def to_json(self) -> list[dict[str, Any]]:
        """All entries, in the order their keys were first logged."""
        return [m.to_json() for m in self.metrics.values()]

    def serialize(self) -> bytes:
        """The file's bytes, thinning line charts until they fit in :data:`MAX_METRICS_BYTES`.

        Small files are indented like ModelArts writes them; larger ones hold one compact
        entry per line.

        Raises:
            MetricsError: it cannot be made to fit (e.g. a huge table).
        """
        while True:
            text = ("[\n" + ",\n".join(m.encode() for m in self.metrics.values()) + "\n]\n").encode()
            if len(text) <= _PRETTY_BYTES:
                return json.dumps(self.to_json(), indent=4, separators=_COMPACT, allow_nan=False).encode()
            if len(text) <= MAX_METRICS_BYTES:
                return text
            charts = sorted((m for m in self.metrics.values() if isinstance(m, ListMetric)), key=len, reverse=True)
            if not any(chart.thin() for chart in charts):
                raise MetricsError(
                    f"metrics for '{self.path}' take {len(text)} bytes, over the 1 MB limit, "
                    "and no line chart is left to thin",
                    hint="log smaller tables or histograms",
                )

    def output_metrics(self) -> None:
        """Write every metric to the file now (atomically, under 1 MB)."""
        data = self.serialize()
        os.makedirs(self.output_url, exist_ok=True)
        _atomic_write(self.path, data)
        self._last_write = time.monotonic()
        self._dirty = False


def _flush_at_exit(ref: weakref.ref[MetricLogger]) -> None:
    logger = ref()
    if logger is not None and logger._dirty:
        logger.output_metrics()


def _atomic_write(path: str, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{Path(path).name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise

