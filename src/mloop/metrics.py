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
"""

from __future__ import annotations

import atexit
import json
import math
import os
import tempfile
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from numbers import Integral
from typing import Any, Callable, Literal, NoReturn, Union, cast

from pydantic import BaseModel, ConfigDict

from mloop.errors import MetricsError, Problem

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
]

#: Largest metrics file accepted (and written), in bytes.
MAX_METRICS_BYTES = 1024 * 1024

MetricType = Literal["float", "line chart", "histogram", "table", "one-dimensional-table"]
METRIC_TYPES: tuple[str, ...] = ("float", "line chart", "histogram", "table", "one-dimensional-table")

# Files smaller than this (written compactly) are written indented instead, for people.
_PRETTY_BYTES = 16 * 1024

# Past this many bad cells in one entry, the rest are counted, not listed.
_MAX_CELL_PROBLEMS = 5

PathLike = Union[str, "os.PathLike[str]"]

# bad(message, hint=None): records one problem of the entry being checked.
_Report = Callable[..., None]


class MetricEntry(BaseModel):
    """One validated entry of a metrics file.

    Attributes:
        key: the metric's key (what ``MetricInfo`` names).
        title: display title; the key when the file gives none.
        type: one of :data:`METRIC_TYPES`.
        data: the entry's ``data`` object, as written.
        value: the number, for ``float`` entries; ``None`` for the other types.
    """

    model_config = ConfigDict(frozen=True)

    key: str
    title: str
    type: MetricType
    data: dict[str, Any]
    value: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as it appears in a metrics file."""
        return {"key": self.key, "title": self.title, "type": self.type, "data": self.data}


class MetricKeyNotFoundError(MetricsError, KeyError):
    """No ``float`` entry with the wanted key in any of the files searched.

    Also a :class:`KeyError`, which is what ModelArts raises for a missing metric.
    """

    code = "metric_not_found"


# --------------------------------------------------------------------------- reading


def load_metrics_file(path: PathLike) -> list[MetricEntry]:
    """Read and validate one metrics file.

    Args:
        path: local path of the file.

    Returns:
        The entries, in file order.

    Raises:
        MetricsError: the file is missing, larger than :data:`MAX_METRICS_BYTES`, not JSON,
            or breaks the format; the message names the file and lists every problem.
    """
    source = os.fspath(path)
    try:
        size = os.path.getsize(source)
    except FileNotFoundError:
        raise MetricsError(
            f"metrics file '{source}' does not exist",
            hint="the job must write it at the path its MetricsConfig names",
            path=source,
        ) from None
    except OSError as exc:
        raise MetricsError(f"cannot read metrics file '{source}': {exc}", path=source) from exc
    if size > MAX_METRICS_BYTES:
        _raise(source, [_too_big(size)])
    try:
        with open(source, "rb") as fh:
            raw = fh.read(MAX_METRICS_BYTES + 1)
    except OSError as exc:
        raise MetricsError(f"cannot read metrics file '{source}': {exc}", path=source) from exc
    return parse_metrics(raw, source)


def parse_metrics(text: str | bytes, source: str = "<metrics>") -> list[MetricEntry]:
    """Validate metrics already in memory.

    Args:
        text: the file's content.
        source: what to call it in error messages (usually its path).

    Returns:
        The entries, in order.

    Raises:
        MetricsError: listing every problem found.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) > MAX_METRICS_BYTES:
        _raise(source, [_too_big(len(data))])
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        _raise(source, [Problem("file", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")])
    except UnicodeDecodeError as exc:
        _raise(source, [Problem("file", f"not UTF-8 text: {exc.reason}")])
    except ValueError as exc:  # NaN / Infinity, from _reject_constant
        _raise(source, [Problem("file", str(exc))])

    entries: list[MetricEntry] = []
    problems: list[Problem] = []
    if isinstance(doc, list):
        for index, item in enumerate(doc):
            entry = _check_entry(index, item, problems)
            if entry is not None:
                entries.append(entry)
    elif isinstance(doc, dict):
        if {"key", "type", "data"} <= doc.keys():
            problems.append(Problem("file", "top level is a single metric entry", hint="wrap it in a JSON array: [ {...} ]"))
        else:
            entries = _flat_entries(doc)
    else:
        problems.append(
            Problem(
                "file",
                f"top level must be a JSON array of metric entries, got {_json_type(doc)}",
                hint='write [{"key": "accuracy", "type": "float", "data": {"value": 0.9}}]',
            )
        )
    if problems:
        _raise(source, problems)
    return entries


def read_metric_value(paths: PathLike | Sequence[PathLike], key: str) -> float:
    """The value of the first ``float`` entry named ``key``, looking through files in order.

    This is what a ``Condition`` on ``MetricInfo(..., key)`` reads. A stored 0 is a value
    like any other (ModelArts 1.0.0 took it for "missing"; mloop does not).

    Args:
        paths: the metrics files, in the order ``MetricsConfig.metric_files`` lists them.
        key: the metric key.

    Returns:
        The value, as a float.

    Raises:
        MetricsError: a file exists but is invalid.
        MetricKeyNotFoundError: no file has a float entry with that key; the message lists
            the files searched, the missing ones and the float keys that do exist.
    """
    files = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
    missing: list[str] = []
    seen: dict[str, list[str]] = {}
    for file in files:
        if not os.path.exists(file):
            missing.append(file)
            continue
        entries = load_metrics_file(file)
        for entry in entries:
            if entry.type == "float" and entry.key == key:
                assert entry.value is not None
                return entry.value
        seen[file] = [e.key for e in entries if e.type == "float"]

    searched = ", ".join(f"'{f}'" for f in files) or "(no files)"
    lines = [f"metric '{key}' not found: no float entry with key '{key}' in {searched}"]
    for file, keys in seen.items():
        lines.append(f"  - '{file}' has float keys: {', '.join(repr(k) for k in keys) if keys else '(none)'}")
    for file in missing:
        lines.append(f"  - '{file}' does not exist")
    raise MetricKeyNotFoundError(
        "\n".join(lines),
        hint="only float entries can feed a condition; check the key the job writes",
        key=key,
        files=files,
        missing_files=missing,
        available_keys=sorted({k for keys in seen.values() for k in keys}),
    )


def float_values(entries: Iterable[MetricEntry]) -> dict[str, float]:
    """``{key: value}`` of the float entries (the first one wins on a repeated key)."""
    out: dict[str, float] = {}
    for entry in entries:
        if entry.type == "float" and entry.value is not None and entry.key not in out:
            out[entry.key] = entry.value
    return out


# --------------------------------------------------------------------------- validation helpers


def _raise(source: str, problems: list[Problem]) -> NoReturn:
    n = len(problems)
    head = f"metrics file '{source}' is invalid ({n} problem{'s' if n != 1 else ''}):"
    message = "\n".join([head, *(f"  - {p}" for p in problems)])
    raise MetricsError(
        message,
        hint="see the metrics.json formats in the reference, section 9",
        path=source,
        problems=[str(p) for p in problems],
    )


def _too_big(size: int) -> Problem:
    return Problem(
        "file",
        f"{size} bytes is larger than the 1 MB limit ({MAX_METRICS_BYTES} bytes)",
        hint="log fewer points; MetricLogger downsamples long line charts for you",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not standard JSON: {name} is not allowed (write a finite number)")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _flat_entries(doc: dict[str, Any]) -> list[MetricEntry]:
    return [
        MetricEntry(key=k, title=k, type="float", data={"value": v}, value=float(v))
        for k, v in doc.items()
        if _is_number(v)
    ]


def _check_entry(index: int, item: Any, problems: list[Problem]) -> MetricEntry | None:
    where = f"entries[{index}]"
    if not isinstance(item, dict):
        problems.append(Problem(where, f"must be an object with key, type and data, got {_json_type(item)}"))
        return None
    before = len(problems)

    def bad(message: str, hint: str | None = None) -> None:
        problems.append(Problem(where, message, hint))

    key = item.get("key")
    if "key" not in item:
        bad("missing 'key'")
    elif not isinstance(key, str) or not key:
        bad(f"'key' must be a non-empty string, got {_json_type(key)}")
    else:
        where = f"{where} (key '{key}')"

    title = item.get("title", key)
    if "title" in item and not isinstance(title, str):
        bad(f"'title' must be a string, got {_json_type(title)}")

    mtype = item.get("type")
    if "type" not in item:
        bad("missing 'type'", hint=f"one of: {', '.join(METRIC_TYPES)}")
    elif mtype not in METRIC_TYPES:
        bad(f"unknown type {mtype!r}", hint=f"one of: {', '.join(METRIC_TYPES)}")

    data = item.get("data")
    if "data" not in item:
        bad("missing 'data'")
    elif not isinstance(data, dict):
        bad(f"'data' must be an object, got {_json_type(data)}")
    elif mtype == "float":
        _check_float(data, bad)
    elif mtype in ("line chart", "histogram"):
        _check_chart(mtype, data, bad)
    elif mtype == "table":
        _check_table(data, bad)
    elif mtype == "one-dimensional-table":
        _check_one_dim(data, bad)

    if len(problems) > before:
        return None
    assert isinstance(key, str) and isinstance(data, dict)  # checked above
    value = float(data["value"]) if mtype == "float" else None
    return MetricEntry(key=key, title=title if isinstance(title, str) else key, type=cast(MetricType, mtype),
                       data=data, value=value)


def _check_float(data: dict[str, Any], bad: _Report) -> None:
    if "value" not in data:
        bad("float entry has no data.value", hint='write "data": {"value": 0.93}')
    elif isinstance(data["value"], bool):
        bad(f"data.value must be a number, not a boolean ({json.dumps(data['value'])})")
    elif not _is_number(data["value"]):
        bad(f"data.value must be a number, got {_json_type(data['value'])} {json.dumps(data['value'])[:40]}")
    elif not _fits_float(data["value"]):
        bad(f"data.value {data['value']!r} is too large for a float")


def _fits_float(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _check_chart(mtype: str, data: dict[str, Any], bad: _Report) -> None:
    lengths: list[tuple[str, int]] = []
    for axis in ("x_axis", "y_axis"):
        series_list = data.get(axis)
        if axis not in data:
            bad(f"{mtype} has no data.{axis}", hint=f'write "{axis}": [{{"title": "...", "value": [...]}}]')
            continue
        if not isinstance(series_list, list):
            bad(f"data.{axis} must be a list of series, got {_json_type(series_list)}")
            continue
        if not series_list:
            bad(f"data.{axis} must hold at least one series")
            continue
        for i, series in enumerate(series_list):
            at = f"data.{axis}[{i}]"
            if not isinstance(series, dict):
                bad(f"{at} must be an object {{title, value}}, got {_json_type(series)}")
                continue
            if "title" in series and not isinstance(series["title"], str):
                bad(f"{at}.title must be a string, got {_json_type(series['title'])}")
            values = series.get("value")
            if "value" not in series:
                bad(f"{at} has no 'value' list")
            elif not isinstance(values, list):
                bad(f"{at}.value must be a list, got {_json_type(values)}")
            else:
                wrong = [j for j, v in enumerate(values) if not (_is_number(v) or isinstance(v, str))]
                if wrong:
                    j = wrong[0]
                    more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
                    bad(f"{at}.value[{j}] must be a number or a string, got {_json_type(values[j])}{more}")
                lengths.append((f"{axis}[{i}]", len(values)))
    if len({n for _, n in lengths}) > 1:
        listed = ", ".join(f"{name}: {n}" for name, n in lengths)
        bad(f"{mtype} series have different lengths ({listed})", hint="every series needs one value per point")


def _check_labels(data: dict[str, Any], name: str, bad: _Report) -> list[str] | None:
    labels = data.get(name)
    if name not in data:
        bad(f"table has no data.{name}", hint=f'write "{name}": {{"title": "...", "value": ["a", "b"]}}')
        return None
    if not isinstance(labels, dict) or not isinstance(labels.get("value"), list):
        bad(f"data.{name} must be an object with a 'value' list of names")
        return None
    if "title" in labels and not isinstance(labels["title"], str):
        bad(f"data.{name}.title must be a string, got {_json_type(labels['title'])}")
    values: list[str] = labels["value"]
    if not all(isinstance(v, str) for v in values):
        bad(f"data.{name}.value must hold strings", hint='write labels as strings, e.g. ["0", "1"]')
    return values


def _check_cells(rows: list[Any], bad: _Report) -> None:
    wrong = [
        (r, c, v)
        for r, row in enumerate(rows)
        if isinstance(row, list)
        for c, v in enumerate(row)
        if not _is_number(v)
    ]
    for r, c, v in wrong[:_MAX_CELL_PROBLEMS]:
        bad(f"data.cell_value[{r}][{c}] must be a number, got {_json_type(v)}")
    if len(wrong) > _MAX_CELL_PROBLEMS:
        bad(f"... and {len(wrong) - _MAX_CELL_PROBLEMS} more cells that are not numbers")


def _check_table(data: dict[str, Any], bad: _Report) -> None:
    row_labels = _check_labels(data, "row_labels", bad)
    col_labels = _check_labels(data, "col_labels", bad)
    cells = data.get("cell_value")
    if "cell_value" not in data:
        bad("table has no data.cell_value")
        return
    if not isinstance(cells, list) or not all(isinstance(row, list) for row in cells):
        bad("data.cell_value must be a list of rows (lists of numbers)")
        return
    _check_cells(cells, bad)
    if row_labels is not None and len(cells) != len(row_labels):
        bad(f"table has {len(cells)} rows but {len(row_labels)} row labels")
    if col_labels is not None:
        for r, row in enumerate(cells):
            if len(row) != len(col_labels):
                bad(f"table row {r} has {len(row)} cells but {len(col_labels)} column labels")


def _check_one_dim(data: dict[str, Any], bad: _Report) -> None:
    labels = data.get("labels")
    if "labels" not in data:
        bad("one-dimensional-table has no data.labels")
        labels = None
    elif not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        bad("data.labels must be a list of strings", hint='e.g. "labels": ["samples", "p99"]')
        labels = None
    cells = data.get("cell_value")
    if "cell_value" not in data:
        bad("one-dimensional-table has no data.cell_value")
        return
    if not isinstance(cells, list) or not all(isinstance(row, list) for row in cells):
        bad("data.cell_value must be a list holding one row", hint="e.g. [[10, 2, 0.5]]")
        return
    if len(cells) != 1:
        bad(f"one-dimensional-table must have exactly one row, got {len(cells)}")
        return
    _check_cells(cells, bad)
    if labels is not None and len(cells[0]) != len(labels):
        bad(f"one-dimensional-table row has {len(cells[0])} cells but {len(labels)} labels")


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
        self._changed()

    def log_float(self, key: str, value: Any, title: str | None = None) -> None:
        """Set the ``float`` entry ``key`` (replacing an earlier value) and rewrite the file."""
        self._put(FloatMetric(key, value, title))

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
