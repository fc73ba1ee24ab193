"""Conditions are typed comparisons, not eval of formatted strings."""

from __future__ import annotations

from typing import Any

import pytest

from mloop.engine.conditions import ConditionError, evaluate
from mloop.spec.models import ConditionSpec


class FakeRun:
    """Only ``resolve`` is used by evaluate: references map to fixed values."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def resolve(self, v: Any) -> Any:
        if isinstance(v, str) and v.startswith("$ref/"):
            return self.values[v]
        return v


def c(op: str, left: Any, right: Any) -> ConditionSpec:
    return ConditionSpec(type=op, left=left, right=right)


M = "$ref/metric_consumption/train/metrics/accuracy"


@pytest.mark.parametrize("op,left,right,expected", [
    ("==", 1, 1.0, True), ("==", "a", "a", True), ("==", "1", 1, False), ("!=", 2, 3, True),
    (">", 0.9, 0.5, True), (">=", 0.5, 0.5, True), ("<", 0.1, 0.5, True), ("<=", 0.6, 0.5, False),
    ("in", "b", ["a", "b"], True), ("in", 3, [1, 2], False), ("==", True, True, True), ("==", True, 1, False),
])
def test_operators_compare_typed_values(op: str, left: Any, right: Any, expected: bool) -> None:
    assert evaluate(c(op, left, right), FakeRun({})) is expected  # type: ignore[arg-type]


def test_a_metric_of_zero_is_a_value_not_missing() -> None:
    run = FakeRun({M: 0.0})
    assert evaluate(c("<", M, 0.5), run) is True  # type: ignore[arg-type]
    assert evaluate(c("==", M, 0), run) is True  # type: ignore[arg-type]


def test_strings_are_not_evaluated_as_code() -> None:
    run = FakeRun({"$ref/parameters/name": "__import__('os')"})
    assert evaluate(c("==", "$ref/parameters/name", "__import__('os')"), run) is True  # type: ignore[arg-type]


def test_or_and_nested_conditions() -> None:
    nested = c("or", c("==", 1, 2), c(">", 3, 2))
    assert evaluate(nested, FakeRun({})) is True  # type: ignore[arg-type]


def test_bool_placeholder_given_as_text_equals_true() -> None:
    assert evaluate(c("==", "true", True), FakeRun({})) is True  # type: ignore[arg-type]


def test_ordering_needs_numbers() -> None:
    with pytest.raises(ConditionError, match="must be numbers"):
        evaluate(c(">", "a", 1), FakeRun({}))  # type: ignore[arg-type]
