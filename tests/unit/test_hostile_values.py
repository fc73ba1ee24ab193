"""Clear errors for hostile values (issue 9, item 17): names with a trailing newline, non-finite
numbers and NUL characters in placeholder values, JSON nested deeper than Python reads, and
non-finite numbers in VOC files and manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mloop.datasets.formats import scan
from mloop.datasets.formats.detection import parse_voc_xml
from mloop.datasets.labeling import parse_labels
from mloop.errors import DatasetFormatError, LabelingError, PlaceholderValueError, SpecValidationError
from mloop.notify.rules import check_target
from mloop.spec import load_spec
from mloop.spec.models import DataRequirementSpec, ParameterSpec, WorkflowSpec
from mloop.spec.values import coerce_parameter, resolve_values

DEEP = "[" * 10_000 + "]" * 10_000
DEEP_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000


@pytest.mark.parametrize(("ptype", "value"), [
    ("float", "nan"), ("float", "inf"), ("float", "-Infinity"), ("float", "1e999"), ("float", float("nan")),
    ("list", "[1e999]"), ("json", '{"lr": NaN}'), ("json", {"lr": float("inf")}),
    ("str", "a\x00b"), ("json", '{"k\\u0000": 1}'), ("list", ["ok", "x\x00"]),
    ("json", DEEP_OBJECT), ("list", DEEP), ("json", {"a": json.loads("[" * 200 + "]" * 200)}),
])
def test_placeholder_values_no_store_keeps_are_refused_naming_the_placeholder(ptype: str, value: object) -> None:
    fmt = "float" if ptype == "list" and isinstance(value, str) and "e999" in value else None
    with pytest.raises(PlaceholderValueError) as caught:
        coerce_parameter(ParameterSpec(name="lr", type=ptype, format=fmt), value)
    [problem] = caught.value.problems
    assert problem.placeholder == "lr" and "refused" in problem.message


def test_data_placeholder_values_are_checked_too() -> None:
    spec = WorkflowSpec(name="w", steps=[], data_requirements=[DataRequirementSpec(name="d", type="obs")])
    with pytest.raises(PlaceholderValueError, match=r"data_requirements\[d\].*NUL"):
        resolve_values(spec, {"d": "./data\x00/"})


def test_ordinary_values_still_pass() -> None:
    assert coerce_parameter(ParameterSpec(name="lr", type="float"), "0.5") == 0.5
    assert coerce_parameter(ParameterSpec(name="c", type="json"), '{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    assert coerce_parameter(ParameterSpec(name="s", type="str"), "nan") == "nan"  # a string, not a number


@pytest.mark.parametrize("text", [DEEP, DEEP_OBJECT, '{"schema_version": 1, "x": NaN}',
                                  '{"schema_version": 1, "x": 1e999}'])
def test_a_spec_json_too_deep_or_non_finite_is_a_validation_error(text: str) -> None:
    with pytest.raises(SpecValidationError, match="not valid JSON"):
        load_spec(text)


def test_names_with_a_trailing_newline_are_refused() -> None:
    with pytest.raises(ValueError):
        check_target("webhook", "http://x.example/hook\nX-Injected: 1")
    from mloop.services.datasets import check_dataset_name  # noqa: PLC0415
    from mloop.store.services import check_service_name  # noqa: PLC0415

    for check in (check_dataset_name, check_service_name):
        with pytest.raises(Exception):
            check("name\n")


def _voc(value: str, where: str) -> bytes:
    size = {"width": "100", "height": "100"}
    box = {"xmin": "1", "ymin": "1", "xmax": "9", "ymax": "9"}
    (size if where in size else box)[where] = value
    return (f"<annotation><size><width>{size['width']}</width><height>{size['height']}</height></size>"
            f"<object><name>car</name><bndbox><xmin>{box['xmin']}</xmin><ymin>{box['ymin']}</ymin>"
            f"<xmax>{box['xmax']}</xmax><ymax>{box['ymax']}</ymax></bndbox></object></annotation>").encode()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "NaN"])
@pytest.mark.parametrize("where", ["xmin", "xmax", "ymax", "width", "height"])
def test_voc_non_finite_values_are_a_per_file_reason(value: str, where: str) -> None:
    reason = parse_voc_xml(_voc(value, where))
    assert isinstance(reason, str) and f"<{where}>" in reason and "not a finite number" in reason


def test_manifest_lines_too_deep_or_non_finite_are_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "ok.png")
    (src / "x.manifest").write_text("\n".join([
        json.dumps({"source": "ok.png"}),
        '{"source": "ok.png", "annotation": [{"type": "modelarts/image_classification", "name": "a", "w": NaN}]}',
        '{"source": "ok.png", "x": 1e999}',
        DEEP,
    ]) + "\n")
    with pytest.raises(DatasetFormatError) as caught:
        scan(src, "manifest")
    message = str(caught.value)
    assert "x.manifest#2: not a JSON object: NaN" in message
    assert "x.manifest#3: not a JSON object: 1e999" in message
    assert "x.manifest#4: not a JSON object: nested too deeply" in message


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_label_files_too_deep_are_a_problem_not_a_traceback(fmt: str) -> None:
    with pytest.raises(LabelingError, match="nested too deeply"):
        parse_labels(DEEP_OBJECT if fmt == "json" else f'{{"id": "a", "labels": ["x"]}}\n{DEEP}\n', fmt)
