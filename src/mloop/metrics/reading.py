"""Reading and validating metrics files (reference section 9)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Literal, NoReturn, Union, cast

from pydantic import BaseModel, ConfigDict

from mloop.errors import MetricsError, Problem


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


