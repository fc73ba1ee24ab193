"""mloop.metrics: reading, validating and writing ModelArts metrics.json files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mloop.errors import MetricsError
from mloop.metrics import (
    MAX_METRICS_BYTES,
    ListMetric,
    Metric,
    MetricKeyNotFoundError,
    MetricLogger,
    float_values,
    get_timestamp,
    load_metrics_file,
    parse_metrics,
    read_metric_value,
)

# The five examples of the reference, section 9 (seed 002), verbatim.
SEED_EXAMPLES = {
    "float": """[ { "key": "loss", "title": "loss", "type": "float", "data": { "value": 1.2 } },
                 { "key": "accuracy", "title": "accuracy", "type": "float", "data": { "value": 1.6 } } ]""",
    "line chart": """[ { "key": "metric", "title": "metric", "type": "line chart", "data": {
        "x_axis": [ { "title": "step/epoch", "value": [ 1, 2, 3 ] } ],
        "y_axis": [ { "title": "value", "value": [ 0.5, 0.4, 0.3 ] } ] } } ]""",
    "histogram": """[ { "key": "metric", "title": "metric", "type": "histogram", "data": {
        "x_axis": [ { "title": "step/epoch", "value": [ 1, 2, 3 ] } ],
        "y_axis": [ { "title": "value", "value": [ 0.5, 0.4, 0.3 ] } ] } } ]""",
    "table": """[ { "key": "confusion_matrix", "title": "confusion_matrix", "type": "table", "data": {
        "cell_value": [ [ 1, 2 ], [ 2, 3 ] ],
        "col_labels": { "title": "labels", "value": [ "daisy", "dandelion" ] },
        "row_labels": { "title": "predictions", "value": [ "daisy", "dandelion" ] } } } ]""",
    "one-dimensional-table": """[ { "key": "Application Evaluation Results",
        "title": "Application Evaluation Results", "type": "one-dimensional-table", "data": {
        "cell_value": [ [ 10, 2, 0.5 ] ], "labels": [ "samples", "maxResTine", "p99" ] } } ]""",
}

# What ModelArts' own MetricLogger (pipeline_coll util/metric.py) writes: two x series.
TOOLKIT_OUTPUT = [
    {
        "key": "loss",
        "title": "loss",
        "type": "line chart",
        "data": {
            "x_axis": [{"title": "step", "value": [0, 10]}, {"title": "timestamp", "value": [1700000000000, 1700000000500]}],
            "y_axis": [{"title": "value", "value": [2.3, 1.1]}],
        },
    }
]


def write(tmp_path: Path, content: Any, name: str = "metrics.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def problems_of(tmp_path: Path, content: Any) -> tuple[str, MetricsError]:
    path = write(tmp_path, content)
    with pytest.raises(MetricsError) as info:
        load_metrics_file(path)
    message = str(info.value)
    assert str(path) in message, "the message must name the file"
    return message, info.value


def float_entry(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "title": key, "type": "float", "data": {"value": value}}


def table_entry(cells: Any, rows: list[str], cols: list[str], key: str = "cm") -> dict[str, Any]:
    return {
        "key": key,
        "type": "table",
        "data": {"cell_value": cells, "row_labels": {"title": "predictions", "value": rows},
                 "col_labels": {"title": "labels", "value": cols}},
    }


class TestReadsValidFiles:
    @pytest.mark.parametrize("kind", sorted(SEED_EXAMPLES))
    def test_every_reference_example_parses(self, tmp_path: Path, kind: str) -> None:
        entries = load_metrics_file(write(tmp_path, SEED_EXAMPLES[kind]))
        assert entries and all(e.type == kind for e in entries)

    def test_float_entries_carry_their_value(self, tmp_path: Path) -> None:
        entries = load_metrics_file(write(tmp_path, SEED_EXAMPLES["float"]))
        assert [(e.key, e.value) for e in entries] == [("loss", 1.2), ("accuracy", 1.6)]
        assert float_values(entries) == {"loss": 1.2, "accuracy": 1.6}

    def test_other_entries_have_no_value_and_keep_their_data(self, tmp_path: Path) -> None:
        (entry,) = load_metrics_file(write(tmp_path, SEED_EXAMPLES["table"]))
        assert entry.value is None
        assert entry.data["cell_value"] == [[1, 2], [2, 3]]
        assert entry.to_json() == json.loads(SEED_EXAMPLES["table"])[0]

    def test_the_modelarts_toolkit_output_with_two_x_series_parses(self, tmp_path: Path) -> None:
        (entry,) = load_metrics_file(write(tmp_path, TOOLKIT_OUTPUT))
        assert entry.type == "line chart"

    def test_missing_title_defaults_to_key(self, tmp_path: Path) -> None:
        (entry,) = load_metrics_file(write(tmp_path, [{"key": "acc", "type": "float", "data": {"value": 0.5}}]))
        assert entry.title == "acc"

    def test_flat_object_becomes_float_entries(self, tmp_path: Path) -> None:
        entries = load_metrics_file(write(tmp_path, {"accuracy": 0.93, "loss": 1, "note": "ignored", "ok": True}))
        assert [(e.key, e.type, e.value) for e in entries] == [("accuracy", "float", 0.93), ("loss", "float", 1.0)]

    def test_an_empty_array_is_valid(self, tmp_path: Path) -> None:
        assert load_metrics_file(write(tmp_path, "[]")) == []

    def test_parse_metrics_reads_text_in_memory(self) -> None:
        entries = parse_metrics(SEED_EXAMPLES["float"], "inline")
        assert entries[0].key == "loss"
        with pytest.raises(MetricsError, match="inline"):
            parse_metrics("[", "inline")

    def test_exactly_one_megabyte_is_accepted(self, tmp_path: Path) -> None:
        text = json.dumps([float_entry("acc", 0.5)])
        text = text[:-1] + " " * (MAX_METRICS_BYTES - len(text)) + "]"
        assert len(text) == MAX_METRICS_BYTES
        assert load_metrics_file(write(tmp_path, text))[0].value == 0.5


class TestRejectsMalformedFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(MetricsError, match="does not exist") as info:
            load_metrics_file(tmp_path / "nope.json")
        assert "nope.json" in str(info.value)

    def test_bad_json(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, '[{"key": "a",}]')
        assert "not valid JSON" in message and "line 1" in message

    def test_nan_is_not_standard_json(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, '[{"key": "a", "type": "float", "data": {"value": NaN}}]')
        assert "NaN" in message

    def test_larger_than_one_megabyte(self, tmp_path: Path) -> None:
        text = json.dumps([float_entry("acc", 0.5)])
        text = text[:-1] + " " * (MAX_METRICS_BYTES + 1 - len(text)) + "]"
        message, _ = problems_of(tmp_path, text)
        assert "1 MB" in message and str(MAX_METRICS_BYTES + 1) in message

    def test_wrong_top_level(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, '"accuracy"')
        assert "top level must be a JSON array" in message

    def test_a_single_entry_not_in_an_array(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, float_entry("acc", 0.5))
        assert "wrap it in a JSON array" in message

    def test_unknown_type(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, [{"key": "x", "type": "line_chart", "data": {}}])
        assert "entries[0] (key 'x'): unknown type 'line_chart'" in message
        assert "line chart" in message  # lists the valid types

    def test_missing_key_type_and_data(self, tmp_path: Path) -> None:
        message, error = problems_of(tmp_path, [{"title": "t"}])
        assert "entries[0]: missing 'key'" in message
        assert "missing 'type'" in message and "missing 'data'" in message
        assert len(error.problems) == 3

    def test_float_without_value(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, [{"key": "acc", "type": "float", "data": {}}])
        assert "entries[0] (key 'acc'): float entry has no data.value" in message

    def test_bool_is_not_a_number(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, [float_entry("acc", True)])
        assert "entries[0] (key 'acc'): data.value must be a number, not a boolean" in message

    def test_string_is_not_a_number(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, [float_entry("acc", "0.9")])
        assert "data.value must be a number, got a string" in message

    @pytest.mark.parametrize("kind", ["line chart", "histogram"])
    def test_series_of_different_lengths(self, tmp_path: Path, kind: str) -> None:
        entry = {"key": "m", "type": kind, "data": {
            "x_axis": [{"title": "step", "value": [1, 2, 3]}, {"title": "timestamp", "value": [1, 2, 3]}],
            "y_axis": [{"title": "value", "value": [0.5, 0.4]}]}}
        message, _ = problems_of(tmp_path, [entry])
        assert f"entries[0] (key 'm'): {kind} series have different lengths" in message
        assert "x_axis[0]: 3" in message and "y_axis[0]: 2" in message

    def test_chart_without_series(self, tmp_path: Path) -> None:
        entry = {"key": "m", "type": "line chart", "data": {"x_axis": [], "y_axis": [{"value": "1,2"}]}}
        message, _ = problems_of(tmp_path, [entry])
        assert "data.x_axis must hold at least one series" in message
        assert "data.y_axis[0].value must be a list" in message

    def test_table_rows_do_not_match_row_labels(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, [table_entry([[1, 2], [3, 4], [5, 6]], ["a", "b"], ["a", "b"])])
        assert "entries[0] (key 'cm'): table has 3 rows but 2 row labels" in message

    def test_table_row_length_does_not_match_column_labels(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, [table_entry([[1, 2], [3, 4, 5]], ["a", "b"], ["a", "b"])])
        assert "table row 1 has 3 cells but 2 column labels" in message

    def test_table_cells_must_be_numbers(self, tmp_path: Path) -> None:
        message, _ = problems_of(tmp_path, [table_entry([[1, "2"], [3, None]], ["a", "b"], ["a", "b"])])
        assert "data.cell_value[0][1] must be a number" in message
        assert "data.cell_value[1][1] must be a number" in message

    def test_one_dimensional_table_length_mismatch(self, tmp_path: Path) -> None:
        entry = {"key": "perf", "type": "one-dimensional-table",
                 "data": {"cell_value": [[10, 2, 0.5]], "labels": ["samples", "p99"]}}
        message, _ = problems_of(tmp_path, [entry])
        assert "entries[0] (key 'perf'): one-dimensional-table row has 3 cells but 2 labels" in message

    def test_one_dimensional_table_needs_exactly_one_row(self, tmp_path: Path) -> None:
        entry = {"key": "perf", "type": "one-dimensional-table",
                 "data": {"cell_value": [[1, 2], [3, 4]], "labels": ["a", "b"]}}
        message, _ = problems_of(tmp_path, [entry])
        assert "must have exactly one row, got 2" in message

    def test_reports_every_problem_at_once(self, tmp_path: Path) -> None:
        content = [
            float_entry("ok", 0.9),
            float_entry("flag", False),
            table_entry([[1, 2], [3, 4], [5, 6]], ["a", "b"], ["a", "b"]),
            {"key": "x", "type": "pie", "data": {}},
            7,
        ]
        message, error = problems_of(tmp_path, content)
        assert "(4 problems)" in message
        assert error.problems == [
            "entries[1] (key 'flag'): data.value must be a number, not a boolean (false)",
            "entries[2] (key 'cm'): table has 3 rows but 2 row labels",
            "entries[3] (key 'x'): unknown type 'pie' (one of: float, line chart, histogram, table, "
            "one-dimensional-table)",
            "entries[4]: must be an object with key, type and data, got a number",
        ]
        assert error.path == str(tmp_path / "metrics.json")
        assert error.code == "bad_metrics"


class TestReadMetricValue:
    def test_zero_is_a_value_not_missing(self, tmp_path: Path) -> None:
        path = write(tmp_path, [float_entry("accuracy", 0)])
        value = read_metric_value([str(path)], "accuracy")
        assert value == 0.0 and isinstance(value, float)

    def test_first_float_entry_in_file_order_wins(self, tmp_path: Path) -> None:
        first = write(tmp_path, [{"key": "acc", "type": "line chart", "data": {
            "x_axis": [{"value": [1]}], "y_axis": [{"value": [0.1]}]}}, float_entry("loss", 1.0)], "a.json")
        second = write(tmp_path, [float_entry("acc", 0.7), float_entry("acc", 0.8)], "b.json")
        assert read_metric_value([first, second], "acc") == 0.7

    def test_flat_object(self, tmp_path: Path) -> None:
        assert read_metric_value(str(write(tmp_path, {"accuracy": 0.93})), "accuracy") == 0.93

    def test_missing_key_names_key_files_and_existing_keys(self, tmp_path: Path) -> None:
        path = write(tmp_path, [float_entry("loss", 0.3), float_entry("acc", 0.9)])
        gone = tmp_path / "gone.json"
        with pytest.raises(MetricKeyNotFoundError) as info:
            read_metric_value([str(path), str(gone)], "accuracy")
        message = str(info.value)
        assert "'accuracy'" in message and str(path) in message and str(gone) in message
        assert "'loss', 'acc'" in message and "does not exist" in message
        assert isinstance(info.value, KeyError) and isinstance(info.value, MetricsError)
        assert info.value.available_keys == ["acc", "loss"]

    def test_an_invalid_file_is_an_error_not_a_miss(self, tmp_path: Path) -> None:
        path = write(tmp_path, "{not json")
        with pytest.raises(MetricsError, match="not valid JSON"):
            read_metric_value([path], "accuracy")


class TestMetricLogger:
    def test_toolkit_api(self, tmp_path: Path) -> None:
        assert abs(get_timestamp() - __import__("time").time() * 1000) < 5000
        assert Metric("k").to_json() == {"key": "k", "title": "k"}
        chart = ListMetric("loss", "training loss")
        chart.add_value(0.5, step=3)
        data = chart.to_json()["data"]
        assert [a["title"] for a in data["x_axis"]] == ["step", "timestamp"]
        assert data["x_axis"][0]["value"] == [3] and data["y_axis"][0]["value"] == [0.5]

    def test_log_metric_rewrites_the_file_at_once(self, tmp_path: Path) -> None:
        logger = MetricLogger(str(tmp_path), "metrics.json")
        logger.log_metric("loss", 2.0, step=0)
        logger.log_metric("loss", 1.0, step=1)
        (entry,) = load_metrics_file(tmp_path / "metrics.json")
        assert entry.type == "line chart" and entry.title == "loss"
        assert entry.data["x_axis"][0]["value"] == [0, 1]
        assert entry.data["y_axis"][0]["value"] == [2.0, 1.0]
        assert len(entry.data["x_axis"][1]["value"]) == 2  # timestamps

    def test_every_kind_of_entry_reparses(self, tmp_path: Path) -> None:
        out = tmp_path / "new" / "dir"
        logger = MetricLogger(out)
        logger.log_metric("train_loss", 0.7, step=1)
        logger.log_float("accuracy", 0.0)
        logger.log_float("accuracy", 0.97)  # replaces
        logger.log_histogram("sizes", [1, 2, 3], [5, 0, 2], title="sizes")
        logger.log_confusion_matrix("confusion_matrix", [[5, 1], [0, 4]], labels=["cat", "dog"])
        logger.log_table("perf", ["samples", "p99"], [10, 0.5])
        entries = {e.key: e for e in load_metrics_file(out / "metrics.json")}
        assert [entries[k].type for k in entries] == [
            "line chart", "float", "histogram", "table", "one-dimensional-table"]
        assert read_metric_value([out / "metrics.json"], "accuracy") == 0.97
        table = entries["confusion_matrix"].data
        assert table["row_labels"] == {"title": "predictions", "value": ["cat", "dog"]}
        assert table["col_labels"] == {"title": "labels", "value": ["cat", "dog"]}
        assert entries["perf"].data == {"cell_value": [[10, 0.5]], "labels": ["samples", "p99"]}

    def test_accepts_numpy_values(self, tmp_path: Path) -> None:
        np = pytest.importorskip("numpy")
        logger = MetricLogger(tmp_path)
        logger.log_float("accuracy", np.float32(0.5))
        logger.log_metric("loss", np.float64(0.25), step=np.int64(4))
        logger.log_confusion_matrix("cm", np.array([[1, 2], [3, 4]]), labels=range(2))
        entries = load_metrics_file(tmp_path / "metrics.json")
        assert entries[0].value == 0.5
        assert entries[1].data["x_axis"][0]["value"] == [4]
        assert entries[2].data["cell_value"] == [[1, 2], [3, 4]]

    def test_refuses_what_would_make_a_bad_file(self, tmp_path: Path) -> None:
        logger = MetricLogger(tmp_path)
        with pytest.raises(MetricsError, match="finite"):
            logger.log_float("loss", float("nan"))
        with pytest.raises(MetricsError, match="number"):
            logger.log_float("ok", True)
        with pytest.raises(MetricsError, match="row labels"):
            logger.log_confusion_matrix("cm", [[1, 2]], labels=["a", "b"])
        with pytest.raises(MetricsError, match="3 x values but 2 y values"):
            logger.log_histogram("h", [1, 2, 3], [1, 2])
        logger.log_float("acc", 0.5)
        with pytest.raises(MetricsError, match="logged as float"):
            logger.log_metric("acc", 0.5)

    def test_a_nan_point_on_a_chart_is_written_as_a_string(self, tmp_path: Path) -> None:
        logger = MetricLogger(tmp_path)
        logger.log_metric("loss", float("nan"))
        (entry,) = load_metrics_file(tmp_path / "metrics.json")
        assert entry.data["y_axis"][0]["value"] == ["NaN"]

    def test_writes_atomically_and_leaves_no_temp_files(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        logger = MetricLogger(tmp_path)
        for step in range(50):
            logger.log_metric("loss", 1 / (step + 1), step=step)
        assert os.listdir(tmp_path) == ["metrics.json"]

        # A failed write keeps the previous file whole and cleans up its temp file.
        before = (tmp_path / "metrics.json").read_bytes()

        def broken_replace(src: str, dst: str) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError, match="disk full"):
            logger.log_metric("loss", 0.0, step=50)
        assert os.listdir(tmp_path) == ["metrics.json"]
        assert (tmp_path / "metrics.json").read_bytes() == before

    def test_stays_under_one_megabyte_with_200k_points(self, tmp_path: Path) -> None:
        with MetricLogger(tmp_path, min_write_interval=3600) as logger:
            for step in range(200_000):
                logger.log_metric("train_loss", 1.0 / (step + 1), step=step)
            logger.log_float("accuracy", 0.9)
        path = tmp_path / "metrics.json"
        assert path.stat().st_size <= MAX_METRICS_BYTES
        chart, acc = load_metrics_file(path)
        steps = chart.data["x_axis"][0]["value"]
        assert 1000 < len(steps) < 200_000
        assert steps[0] == 0 and steps[-1] == 199_999, "keeps the first and the newest point"
        gaps = {b - a for a, b in zip(steps[:-2], steps[1:-1])}
        assert len(gaps) == 1, "the kept points are evenly spaced"
        assert acc.value == 0.9
        assert os.listdir(tmp_path) == ["metrics.json"]

    def test_keeps_under_the_limit_when_writing_on_every_call(self, tmp_path: Path) -> None:
        logger = MetricLogger(tmp_path)
        chart = logger.metrics.setdefault("loss", ListMetric("loss"))
        assert isinstance(chart, ListMetric)
        for step in range(60_000):  # fill in memory, then let the next call write and thin
            chart.add_value(0.123456789 * step, step)
        logger.log_metric("loss", 1.0, step=60_000)
        assert (tmp_path / "metrics.json").stat().st_size <= MAX_METRICS_BYTES
        (entry,) = load_metrics_file(tmp_path / "metrics.json")
        assert entry.data["x_axis"][0]["value"][-1] == 60_000

    def test_small_files_are_indented_for_people(self, tmp_path: Path) -> None:
        logger = MetricLogger(tmp_path)
        logger.log_float("accuracy", 0.5)
        assert (tmp_path / "metrics.json").read_text().startswith('[\n    {\n        "key":"accuracy"')
